"""The `migue` command line."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from migue.cache import FeatureStore
from migue.common.splits import SPLITS
from migue.extractors.skeleton_layouts import LAYOUTS as JOINT_LAYOUT_TABLE
from migue.pipeline.datasets import LAYOUTS as DATA_LAYOUT_TABLE
from migue.pipeline.datasets.common import DEFAULT_WINDOW
from migue.pipeline.extraction.modalities import MODALITIES
from migue.pipeline.extraction.options import ExtractOptions
from migue.pipeline.extraction.decode_pool import cpu_count

log = logging.getLogger("migue")

CACHE_HELP = "Feature store root (default: $MIGUE_CACHE or ~/.cache/migue)."
DATA_LAYOUTS = ("auto", *DATA_LAYOUT_TABLE)
JOINT_LAYOUTS = tuple(JOINT_LAYOUT_TABLE)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not verbose:  # Dask's own start/stop chatter is noise at the command line
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.core",
                     "distributed.http.proxy"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input, a bad file or a full disk: printed as one line, no traceback."""
    from migue.cache import DiskFullError, DuplicateUnitsError, ShardError
    from migue.extractors.checkpoints import CheckpointError
    from migue.pipeline.datasets.skeleton import SkeletonError
    from migue.pipeline.datasets.video import VideoError

    return (ShardError, DiskFullError, DuplicateUnitsError, CheckpointError, SkeletonError, VideoError,
            ValueError, LookupError, OSError)


class _Migue(click.Group):
    """The top-level group: the project's own errors become `error: <message>` and exit code 2
    (with -v, the traceback too)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if not isinstance(exc, _user_errors()):
                raise
            if ctx.params.get("verbose"):
                import traceback

                traceback.print_exc()
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            click.echo(f"error: {' '.join(str(message).splitlines())}", err=True)
            ctx.exit(2)


@click.group(cls=_Migue, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging; with an error, its traceback.")
def main(verbose: bool) -> None:
    """migue: micro-gesture and emotion recognition on iMiGUE over cached backbone features."""
    _setup_logging(verbose)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the sample to.")
@click.option("--videos", default=12, show_default=True, help="Number of long videos.")
@click.option("--seed", default=0, show_default=True)
@click.option("--frames", default=400, show_default=True, help="Frames per video.")
@click.option("--width", default=160, show_default=True)
@click.option("--height", default=120, show_default=True)
@click.option("--layout", type=click.Choice(DATA_LAYOUTS[1:]), default="miga2025", show_default=True,
              help="Release layout to write the (same) sample in.")
@click.option("--rgb/--no-rgb", default=True, show_default=True,
              help="Write the videos too (--no-rgb: skeletons and labels only, as the MiGA skeleton download).")
def synth(out: Path, videos: int, seed: int, frames: int, width: int, height: int, layout: str,
          rgb: bool) -> None:
    """Write a deterministic synthetic sample in a release layout (default MiGA 2025)."""
    from migue.synth.sample import write_sample

    try:
        summary = write_sample(out, videos=videos, seed=seed, frames=frames, width=width, height=height,
                               layout=layout, rgb=rgb)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(summary.video_ids)} videos, {summary.n_clips} MG clips to {out} as {layout} "
               f"(train {len(summary.splits['train'])}, validate {len(summary.splits['validate'])}, "
               f"test {len(summary.splits['test'])} videos)")


@main.group()
def data() -> None:
    """Inspect a dataset folder."""


DATA_HELP = ("Dataset folder as it unpacks (a release layout, or `migue synth` output); give it again "
             "for each folder read as one dataset (e.g. phase 1 and phase 2, skeletons and RGB apart).")


def _empty_train(manifest: object) -> None:
    """Refuse to extract or train on nothing: the sentence says where the reader looked."""
    reason = getattr(manifest, "empty_splits", {}).get("train")
    if reason:
        raise click.ClickException(f"{reason}; nothing to train on (`migue data check` lists what was found)")


@data.command("check")
@click.argument("roots", nargs=-1, required=True, metavar="ROOT...",
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--layout", type=click.Choice(DATA_LAYOUTS), default="auto", show_default=True,
              help="Dataset layout; auto detects it.")
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True, help="Frames per emotion window.")
@click.option("--skeletons/--no-skeletons", default=True, show_default=True,
              help="Parse every skeleton file to report bad ones (kept parsed under <cache>/parsed, so "
                   "extract reuses them). --no-skeletons parses only those of videos without a video file.")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
def data_check(roots: tuple[Path, ...], layout: str, window: int, skeletons: bool, cache: Path | None) -> None:
    """Print what the dataset (one folder, or several read as one) holds per split, what under it
    no reader used, and every problem; exit 1 when there are problems (an empty train split, a
    validation split whose folder is there but yields nothing, a split folder without videos and
    videos matching no skeleton among them). A split the download lacks altogether is a note."""
    from migue.pipeline.datasets import read_dataset
    from .report import describe_manifest

    try:
        manifest = read_dataset(roots, layout, window, read_skeletons=skeletons,
                                parsed_dir=FeatureStore(cache).root / "parsed")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(describe_manifest(manifest))
    problems = [*manifest.empty_splits.values(), *manifest.problems]
    if problems:
        click.secho(f"{len(problems)} problem(s):", fg="red", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)


@main.command()
@click.option("--modality", "modalities", required=True, metavar="NAMES",
              help=f"One of {', '.join(sorted(MODALITIES))}, several joined by commas, or 'all'. The video "
                   "modalities (rgb, context, face) are extracted together in one pass: each video decoded once.")
@click.option("--data", "data_root", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, multiple=True, help=DATA_HELP)
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--checkpoint", multiple=True, metavar="PATH|KEY",
              help="Released weights: a file, or a `migue weights` catalogue key resolved in the weights "
                   "store (pose: give two, joint then bone). Without it weights are RANDOM.")
@click.option("--trust-checkpoint", is_flag=True,
              help="Allow full pickle loading of the checkpoint. Pickle can run arbitrary code, so "
                   "only for files you trust; by default only tensors are loaded (weights_only).")
@click.option("--non-strict-checkpoint", is_flag=True,
              help="Load what fits of a checkpoint that does not fully fit, warn naming the keys left "
                   "RANDOM, instead of refusing it. Recorded in the cache key.")
@click.option("--arch", type=click.Choice(["small", "tiny"]), default="small", show_default=True,
              help="MViTv2 size (rgb, context).")
@click.option("--frames", type=int, default=None, help="Frames per unit (default: rgb/context 16, pose 64, face 8).")
@click.option("--size", type=int, default=None, help="Input side in pixels (default: rgb/context 224, face 112).")
@click.option("--layout", "data_layout", default="auto", show_default=True,
              help=f"Dataset layout ({', '.join(DATA_LAYOUTS)}); auto detects it.")
@click.option("--joints", "joint_layout", type=click.Choice(JOINT_LAYOUTS), default="imigue22",
              show_default=True, help="Joint layout for pose.")
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True, help="Frames per emotion window.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Units per forward. Default: on CPU 1 for rgb/context (MViTv2 is slower per clip in "
                   "larger CPU batches), 4 for pose/face; on CUDA as many as fit in 60% of the free "
                   "memory, measured with one unit.")
@click.option("--shard-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Units per shard: the unit of publishing, resuming and splitting work between runs.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoding processes (default: one per core; 0 decodes in this process). With "
                   "--scheduler local: Dask worker processes (default 2).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CUDA, fp32 on CPU. Part of the cache key.")
@click.option("--scheduler", default=None, metavar="ADDRESS|local",
              help="Extract on Dask: chunks of units are tasks on the cluster at ADDRESS, or on a "
                   "LocalCluster of --workers processes with 'local'.")
def extract(modalities: str, data_root: tuple[Path, ...], cache: Path | None, checkpoint: tuple[str, ...],
            trust_checkpoint: bool, non_strict_checkpoint: bool, arch: str, frames: int | None,
            size: int | None, data_layout: str,
            joint_layout: str, window: int, batch_size: int | None, shard_size: int, workers: int | None, device: str,
            precision: str, scheduler: str | None) -> None:
    """Run frozen backbones over the dataset and cache their token embeddings."""
    from migue.pipeline.datasets import read_dataset

    if data_layout in JOINT_LAYOUTS:  # `--layout` named the joint layout before `--joints` existed
        click.secho(f"note: --layout {data_layout} is a joint layout; use --joints {data_layout}", err=True)
        joint_layout, data_layout = data_layout, "auto"
    if data_layout not in DATA_LAYOUTS:
        raise click.BadParameter(f"{data_layout!r} is not one of {', '.join(DATA_LAYOUTS)}",
                                 param_hint="--layout")
    checkpoint = _resolve_checkpoints(checkpoint, cache)
    manifest = read_dataset(data_root, data_layout, window=window,
                            parsed_dir=FeatureStore(cache).root / "parsed")
    for problem in manifest.problems:
        log.warning("data: %s", problem)
    _empty_train(manifest)
    try:
        names = resolve_modalities(modalities)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--modality") from None
    base = ExtractOptions(modality=names[0], arch=arch, frames=frames, size=size, layout=joint_layout,
                          batch_size=batch_size, device=device, precision=precision,
                          checkpoints=checkpoint, trust_checkpoint=trust_checkpoint,
                          strict_checkpoint=not non_strict_checkpoint,
                          workers=cpu_count() if workers is None else workers, shard_size=shard_size)
    if not checkpoint:
        click.secho(f"WARNING: no --checkpoint given: the {', '.join(names)} backbone(s) have RANDOM weights "
                    "(seeded). Features are reproducible but not pretrained.", fg="red", bold=True, err=True)
    elif len({MODALITIES[m].extractor for m in names}) > 1:
        raise click.BadParameter("--checkpoint names one backbone's weights: give only modalities of that "
                                 "backbone with it", param_hint="--modality")
    from migue.extractors.checkpoints import CheckpointError

    try:
        reports = _run_extract(manifest, data_root, data_layout, window, FeatureStore(cache), base, names,
                               scheduler, workers)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    for modality, report in reports.items():
        click.echo(f"{modality}: {report.extracted} extracted, {report.done_before} already cached, "
                   f"{len(report.failures)} failed -> {report.entry}")
        if report.changed:
            click.echo(f"  {len(report.changed)} of them re-extracted because their inputs changed")
        for unit_id, why in sorted(report.changed.items()):
            log.info("re-extracted %s: %s", unit_id, why)
        for unit_id, reason in sorted(report.failures.items()):
            click.echo(f"  failed {unit_id}: {reason}", err=True)
    decoded = next((r.decode for r in reports.values() if r.decode is not None), None)
    if decoded is not None and decoded.videos:
        click.echo(f"decoded {len(decoded.videos)} videos once each: {decoded.frames_decoded} of "
                   f"{decoded.frames_in_videos} frames")


def _run_extract(manifest, data_root: tuple[Path, ...], data_layout: str, window: int, store: FeatureStore,
                 base: ExtractOptions, names: list[str], scheduler: str | None, workers: int | None) -> dict:
    """Video modalities in one pass (or one Dask run each with --scheduler), pose on its own."""
    from dataclasses import replace

    from migue.pipeline.extraction.extract import extract as run_extract
    from migue.pipeline.extraction.onepass import VIDEO_MODALITIES, extract_videos

    if scheduler:
        from migue.pipeline.orchestration.distributed import extract_distributed

        return {m: extract_distributed(manifest, data_root, data_layout, window, store, replace(base, modality=m),
                                       scheduler=scheduler, workers=workers or 2) for m in names}
    reports = {}
    video = [m for m in names if m in VIDEO_MODALITIES]
    if video:
        reports.update(extract_videos(manifest, store, [replace(base, modality=m) for m in video]))
    for m in names:
        if m not in VIDEO_MODALITIES:
            reports[m] = run_extract(manifest, store, replace(base, modality=m))
    return {m: reports[m] for m in names}


def resolve_modalities(text: str) -> list[str]:
    """'rgb,context,face' or 'all' -> the modality names, in the order given."""
    names = sorted(MODALITIES) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODALITIES]
    if unknown or not names:
        raise ValueError(f"unknown modality {', '.join(unknown) or text!r}; known: {', '.join(sorted(MODALITIES))}, all")
    return list(dict.fromkeys(names))


def _resolve_checkpoints(values: tuple[str, ...], cache: Path | None) -> tuple[str, ...]:
    """`--checkpoint` values as paths: catalogue keys become their files in the weights store."""
    from migue.pipeline.weights import WeightsError, WeightsStore, resolve_checkpoint, store_dir

    store = WeightsStore(store_dir(cache=cache))
    try:
        return tuple(resolve_checkpoint(v, store) for v in values)
    except WeightsError as exc:
        raise click.ClickException(str(exc)) from None


def _check_head(run_dir: Path) -> None:
    """A run's head.pt must load with the safe loader (tensors and plain values only, as fuse-train
    writes it): a refused or corrupt one is one sentence, before the run's entries are read."""
    import pickle

    import torch

    path = run_dir / "head.pt"
    if not path.is_file():
        return  # not a finished run: evaluate_run / predict_run say so
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        why = next((line.split("error:", 1)[-1].split(" was not")[0].strip() for line in str(exc).splitlines()
                    if "WeightsUnpickler error" in line), "an object the safe loader does not allow")
        raise click.ClickException(f"{path} holds objects beyond tensors ({why}), which the safe loader refuses: "
                                   "fuse-train writes no such file; train the run again") from None
    except Exception as exc:  # any failure of this one load: truncated, not a zip, bad magic, struct errors
        first = (str(exc).splitlines() or [""])[0][:160] or type(exc).__name__
        raise click.ClickException(f"{path} is not a readable head checkpoint ({first}); train the run again") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise click.ClickException(f"{path} is not a readable head checkpoint (no state_dict in it); "
                                   "train the run again")


@main.group()
def cache() -> None:
    """Inspect, check and clean the feature store."""


@cache.command("ls")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
def cache_ls(root: Path | None) -> None:
    """List entries with their unit counts and sizes."""
    store = FeatureStore(root)
    entries = store.entries()
    if not entries:
        click.echo(f"no entries in {store.root}")
        return
    click.echo(f"{'entry':<48} {'modality':<8} {'units':>7} {'shards':>6} {'failed':>6} {'MB':>9}")
    for e in entries:
        click.echo(f"{e.name:<48} {e.modality:<8} {e.units:>7} {e.shards:>6} {e.failures:>6} "
                   f"{e.bytes / 1e6:>9.2f}")


def _entry_dirs(store: FeatureStore, names: tuple[str, ...]) -> list[Path]:
    dirs = [store.resolve(n) for n in names] if names else store.entry_dirs()
    if not dirs:
        raise click.ClickException(f"no entries in {store.root}")
    return dirs


@cache.command("verify", short_help="Check shards against the index; name the bad ones.")
@click.argument("entries", nargs=-1, metavar="[ENTRY]...")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Also list the units whose inputs under this dataset folder changed since they were "
                   "extracted (content fingerprints of their video, skeleton and label row).")
@click.option("--layout", "data_layout", type=click.Choice(DATA_LAYOUTS), default="auto", show_default=True,
              help="Layout of --data.")
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True,
              help="Frames per emotion window (as extracted).")
def cache_verify(entries: tuple[str, ...], root: Path | None, data_root: Path | None, data_layout: str,
                 window: int) -> None:
    """Check every shard of the entries (default: all) against its SHA-256 and size in the index,
    its HDF5 structure, finiteness and token counts; name each bad shard and unit. With --data,
    also list units whose inputs changed. Exit 1 if any is bad."""
    from migue.cache import verify_entry

    from migue.pipeline.extraction.fingerprints import changed_inputs

    bad = 0
    store = FeatureStore(root)
    for entry_dir in _entry_dirs(store, entries):
        report = verify_entry(entry_dir)
        if data_root is not None and report.ok:
            stale = changed_inputs(entry_dir, data_root, data_layout, window, store.root)
            report.problems.extend(f"input changed: unit {uid}: {why}" for uid, why in sorted(stale.items()))
        status = "ok" if report.ok else "FAILED"
        click.echo(f"{status:<6} {report.entry}: {report.shards} shards, {report.units} units verified")
        for problem in report.problems:
            click.echo(f"  bad shard {problem}" if problem.startswith("shard-") else f"  {problem}")
        for warning in report.warnings:
            click.echo(f"  note: {warning}")
        bad += not report.ok
    if bad:
        click.echo(f"{bad} entr{'y' if bad == 1 else 'ies'} failed verification", err=True)
        sys.exit(1)


@cache.command("digest", short_help="Content hash of an entry's unit ids and tokens.")
@click.argument("entry")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
def cache_digest(entry: str, root: Path | None) -> None:
    """Print a content hash of ENTRY's unit ids and token bytes (first line), then one per stream.
    It ignores shard layout and unit order: equal digests mean the same units with bit-identical
    tokens, on two machines or after an interrupted and resumed run."""
    from migue.cache import digest_entry

    digest = digest_entry(FeatureStore(root).resolve(entry))
    click.echo(f"{digest.entry}  {Path(entry).name}")
    click.echo(f"  unit_ids  {digest.units:>7} units  {digest.unit_ids}")
    for stream, value in digest.streams.items():
        click.echo(f"  {stream:<9} {digest.units:>7} units  {value}")


@cache.command("gc", short_help="Remove what killed runs left behind.")
@click.argument("entries", nargs=-1, metavar="[ENTRY]...")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
def cache_gc(entries: tuple[str, ...], root: Path | None, dry_run: bool) -> None:
    """Remove what killed runs left in the entries (default: all): temp files of dead writers,
    shards never recorded in the index whose units are published already or that cannot be read
    (others are adopted into the index), stale claim files; without ENTRY also torn parsed
    skeletons and dead writers' temp files under parsed/. Published shards are never touched."""
    from migue.cache import collect_garbage, collect_parsed

    verb = "would remove" if dry_run else "removed"
    store = FeatureStore(root)
    if not entries:
        swept = collect_parsed(store.root, dry_run=dry_run)
        click.echo(f"parsed/: {verb} {len(swept)} files")
        for name, why in swept:
            click.echo(f"  {verb} parsed/{name}: {why}")
    for entry_dir in _entry_dirs(store, entries):
        report = collect_garbage(entry_dir, dry_run=dry_run)
        removed = len(report.temp_files) + len(report.orphans) + len(report.claims)
        click.echo(f"{report.entry}: {verb} {len(report.temp_files)} temp files, {len(report.orphans)} "
                   f"orphan shards, {len(report.claims)} claim files ({report.bytes_freed / 1e6:.2f} MB); "
                   f"{'would adopt' if dry_run else 'adopted'} {len(report.adopted)} shards")
        for name in report.temp_files:
            click.echo(f"  {verb} temp file {name}")
        for name, why in report.orphans:
            click.echo(f"  {verb} orphan shard {name}: {why}")
        for name in report.adopted:
            click.echo(f"  {'would adopt' if dry_run else 'adopted'} shard {name}")
        if not removed and not report.adopted:
            click.echo("  nothing to do")


class _FusionChoice(click.ParamType):
    name = "head"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "HEAD"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from migue.fusion.registry import list_heads

        if value not in list_heads():
            self.fail(f"{value!r} is not a head; choose from: {', '.join(list_heads())}", param, ctx)
        return value


def _load_plugins(ctx: click.Context, param: click.Parameter, modules: tuple[str, ...]) -> tuple[str, ...]:
    """--plugin: import the modules (or .py files) that register heads, before --help or --fusion
    are looked at (an eager option)."""
    from migue.fusion import load_plugins

    try:
        load_plugins(modules)
    except ImportError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return modules


class _HeadsCommand(click.Command):
    """A command whose help ends with the registered heads, plugins included (listed when shown)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from migue.fusion import heads_help

        self.epilog = "\b\nHeads (--fusion):\n" + heads_help()
        super().format_epilog(ctx, formatter)


SCOPE_HELP = ("The dataset to use (as given to `migue extract`): exactly its units are read from the cache "
              "entries, refusing units it has that an entry lacks or holds from other inputs. Without it, an entry "
              "holding units of another dataset than the one last extracted into it is refused. ")


def _scope_options(command: click.Command) -> click.Command:
    """--data, --layout and --window of fuse-train and evaluate: the dataset whose units to use."""
    command = click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True,
                           help="Frames per emotion window, as given to extract (with --data).")(command)
    command = click.option("--layout", "data_layout", type=click.Choice(DATA_LAYOUTS), default="auto",
                           show_default=True, help="Layout of --data.")(command)
    return click.option("--data", "data_root", type=click.Path(path_type=Path, exists=True, file_okay=False),
                        multiple=True, help=SCOPE_HELP + DATA_HELP)(command)


def _scope(task: str, data_root: tuple[Path, ...], data_layout: str, window: int, readers: dict) -> dict | None:
    """The unit ids of --data's dataset per entry role (None without --data)."""
    if not data_root:
        return None
    from .scope import dataset_scope

    return dataset_scope(task, data_root, data_layout, window, readers)


ALLOW_PARTIAL_HELP = ("Use an entry that `migue extract` is still writing (its published units only); by default "
                      "such an entry is refused, naming what is still claimed.")


@main.command("fuse-train", cls=_HeadsCommand)
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE", is_eager=True, callback=_load_plugins,
              expose_value=False,
              help="Import MODULE (a module name or a .py file) that registers heads with "
                   "migue.fusion.register_head; repeatable. Heads of the `migue.heads` entry-point group load "
                   "by themselves.")
@click.option("--task", type=click.Choice(["mg", "emotion"]), required=True)
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option("--fusion", type=_FusionChoice(), default=None,
              help="Head to train (default: cmtf for mg, interfusion for emotion); list below.")
@click.option("--entry", "entries", multiple=True, metavar="MODALITY=NAME",
              help="Pick a cache entry when several exist for a modality.")
@click.option("--epochs", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any head/training config value (JSON-parsed), e.g. --set lr=3e-4.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last completed epoch (same config and entries; "
                   "the result equals an uninterrupted run's).")
@click.option("--overwrite", is_flag=True,
              help="Replace the run already in --out (its results go before the new run starts). Without "
                   "--resume or --overwrite, a folder that holds anything is refused.")
@click.option("--allow-partial", is_flag=True, help=ALLOW_PARTIAL_HELP)
@_scope_options
def fuse_train(task: str, cache: Path | None, out: Path, fusion: str | None, entries: tuple[str, ...],
               epochs: int | None, seed: int, overrides: tuple[str, ...], resume: bool, overwrite: bool,
               allow_partial: bool, data_root: tuple[Path, ...], data_layout: str, window: int) -> None:
    """Train a fusion head (or a baseline) on cached features."""
    from migue.fusion.runs import check_run_dir, train_run

    from migue.pipeline.orchestration.entries import head_roles, select_entries

    check_run_dir(out, resume, overwrite)
    config = {k: _json_value(v) for k, v in _pairs(overrides).items()}
    config["seed"] = seed
    if fusion:
        config["head"] = fusion
    if epochs is not None:
        config["epochs"] = epochs
    readers = select_entries(FeatureStore(cache), task, _pairs(entries), head_roles(task, config),
                             head=fusion or "")
    if resume:
        config["resume"] = True
    if allow_partial:
        config["allow_partial"] = True
    scope = _scope(task, data_root, data_layout, window, readers)
    metrics = train_run(task, readers, out, config, scope=scope)
    click.echo(json.dumps(metrics.get("test", metrics), indent=1, default=str))


def _run_plugin_options(command: click.Command) -> click.Command:
    """--plugin and --trust-run of evaluate / predict: a plugin run's code loads only when named."""
    command = click.option("--trust-run", is_flag=True,
                           help="Import the plugin module or file the run's config.json names (run folders "
                                "from others can name any file: prefer --plugin).")(command)
    return click.option("--plugin", "plugins", multiple=True, metavar="MODULE", is_eager=True,
                        callback=_load_plugins, expose_value=False,
                        help="Import MODULE (a module name or a .py file) that registers the run's head; "
                             "a plugin run says which it needs. Repeatable.")(command)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@_run_plugin_options
@click.option("--allow-partial", is_flag=True, help=ALLOW_PARTIAL_HELP)
@_scope_options
def evaluate(run_dir: Path, split: str, trust_run: bool, allow_partial: bool, data_root: tuple[Path, ...],
             data_layout: str, window: int) -> None:
    """Recompute a run's metrics on a split from the cache."""
    from migue.fusion.runs import evaluate_run

    from .scope import run_entries, run_task

    _check_head(run_dir)
    entries = run_entries(run_dir) if data_root else None
    scope = _scope(run_task(run_dir), data_root, data_layout, window, entries) if data_root else None
    metrics = evaluate_run(run_dir, split, entries, trust_run=trust_run, partial=allow_partial, scope=scope)
    click.echo(json.dumps(metrics, indent=1, default=str))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@_run_plugin_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="File to write (CSV, or zip with --zip).")
@click.option("--format", "fmt", type=click.Choice(["migue", "miga"]), default="migue", show_default=True,
              help="migue: ids, predicted label, release names, label rows and class probabilities. "
                   "miga: the challenge's file (mg run: Track 1 Id,Target, Target the 0-based class index: "
                   "raw label 1 -> 0, raw 31 -> 30, raw 99 -> 31, as the 2025 winners' scored file; "
                   "emotion run: Track 3 video_id,label, 1 win, 0 lose).")
@click.option("--zip", "zipped", is_flag=True,
              help="Write the CSV inside a zip at --out (Track 1: prediction.csv in prediction.zip).")
@click.option("--data", "data_root", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, help=SCOPE_HELP + "With --format miga: check completeness against this dataset's "
                                  "split (default: the run's cache entries and their failed units). " + DATA_HELP)
@click.option("--layout", "data_layout", type=click.Choice(DATA_LAYOUTS), default="auto", show_default=True)
@click.option("--allow-partial", is_flag=True, help=ALLOW_PARTIAL_HELP)
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True,
              help="Frames per emotion window, as given to extract (with --data).")
def predict(run_dir: Path, split: str, out: Path, fmt: str, zipped: bool, data_root: tuple[Path, ...],
            data_layout: str, trust_run: bool, allow_partial: bool, window: int) -> None:
    """Predict every item of a split, labelled or not. --format miga writes the MiGA submission file
    and refuses an incomplete one (every test clip or video exactly once), naming what is missing."""
    from migue.fusion.runs import predict_run

    from .submission import expected_from_manifest, expected_from_run, miga_table, write_submission

    _check_head(run_dir)
    task = json.loads((run_dir / "config.json").read_text())["task"]
    from .scope import run_entries

    entries = run_entries(run_dir) if data_root else None
    scope = _scope(task, data_root, data_layout, window, entries) if data_root else None
    table = predict_run(run_dir, split, entries, trust_run=trust_run, partial=allow_partial, scope=scope)
    if fmt == "miga":
        if data_root:
            from migue.pipeline.datasets import read_dataset

            expected = expected_from_manifest(task, read_dataset(data_root, data_layout), split)
        else:
            expected = expected_from_run(task, run_dir, split)
        table = miga_table(task, table, expected)
    write_submission(table, out, task, zipped)
    track = {"mg": "Track 1", "emotion": "Track 3"}[task] if fmt == "miga" else "migue"
    click.echo(f"wrote {len(table)} {split} predictions ({track}, {', '.join(table.columns[:2])}) to {out}")


@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("migue-demo"), show_default=True,
              help="Where the sample, the cache and the runs go.")
@click.option("--videos", default=30, show_default=True)
@click.option("--arch", type=click.Choice(["small", "tiny"]), default="small", show_default=True)
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the heads' own).")
@click.option("--quick", is_flag=True, help="Half the frames per rgb/context clip, 2 per face window: about half "
                                            "the extraction time (what the end-to-end test runs).")
def demo(workdir: Path, videos: int, arch: str, epochs: int | None, quick: bool) -> None:
    """Synth a sample, extract all four modalities, train both heads, print a summary."""
    from migue.pipeline.orchestration.demo import run_demo

    run_demo(workdir, videos=videos, arch=arch, epochs=epochs, quick=quick)


@main.command()
@click.argument("grid_file", metavar="GRID.yaml", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for runs and results.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (e.g. tcp://host:8786); default: a LocalCluster here.")
@click.option("--workers", type=int, default=2, show_default=True, help="LocalCluster worker processes.")
@click.option("--max-runs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Refuse a grid of more than N runs (default 1000), before anything starts.")
@click.option("--overwrite", is_flag=True,
              help="Replace the results of another grid in --out (the same grid resumes there without it; "
                   "finished runs of identical configs are reused).")
def ablate(grid_file: Path, cache: Path | None, out: Path, scheduler: str | None, workers: int,
           max_runs: int | None, overwrite: bool) -> None:
    """Run every combination of a grid's axes as Dask tasks over one cache (resumable).

    \b
    GRID.yaml:
      task: mg                  # or emotion
      base: {epochs: 60}        # shared settings (any `fuse-train --set` key)
      axes: {head: [cmtf, concat], lr: [5.0e-4, 1.0e-3], seed: [0, 1, 2]}
      one_pass: true            # optional: train the probe-* runs together, one read of the cache
    """
    from migue.pipeline.orchestration.ablate import MAX_RUNS, Grid, run_ablation

    max_runs = max_runs or MAX_RUNS
    table = run_ablation(Grid.load(grid_file, max_runs), cache, out, scheduler=scheduler, workers=workers,
                         max_runs=max_runs, overwrite=overwrite)
    failed = int((table["status"] != "ok").sum())
    click.echo((out / "results.md").read_text())
    if failed:
        click.secho(f"{failed} run(s) failed; see {out / 'results.csv'}", fg="red", err=True)
        sys.exit(1)


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _install_weights() -> None:
    from migue.pipeline.weights.cli import weights

    main.add_command(weights)


_install_weights()
