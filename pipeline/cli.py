"""The `migue` command line."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from migue.cache import FeatureStore, default_cache_root

from .extract import MODALITIES, ExtractOptions

log = logging.getLogger("migue")

CACHE_HELP = "Feature store root (default: $MIGUE_CACHE or ~/.cache/migue)."


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
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
def synth(out: Path, videos: int, seed: int, frames: int, width: int, height: int) -> None:
    """Write a deterministic synthetic sample in the MiGA 2025 release layout."""
    from .synth import write_sample

    summary = write_sample(out, videos=videos, seed=seed, frames=frames, width=width, height=height)
    click.echo(f"wrote {len(summary.video_ids)} videos, {summary.n_clips} MG clips to {out} "
               f"(train {len(summary.splits['train'])}, validate {len(summary.splits['validate'])}, "
               f"test {len(summary.splits['test'])} videos)")


@main.group()
def data() -> None:
    """Inspect a dataset folder."""


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--layout", default="auto", show_default=True)
def data_check(root: Path, layout: str) -> None:
    """Print what the dataset holds and every problem; exit 1 when there are problems."""
    from .datasets import read_dataset
    from .report import describe_manifest

    manifest = read_dataset(root, layout)
    click.echo(describe_manifest(manifest))
    if manifest.problems:
        click.secho(f"{len(manifest.problems)} problem(s):", fg="red", err=True)
        for problem in manifest.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)


@main.command()
@click.option("--modality", type=click.Choice(sorted(MODALITIES)), required=True)
@click.option("--data", "data_root", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, help="Dataset folder (a release layout, or `migue synth` output).")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--checkpoint", multiple=True,
              help="Released weights (pose: give two, joint then bone). Without it weights are RANDOM.")
@click.option("--trust-checkpoint", is_flag=True,
              help="Allow full pickle loading of the checkpoint. Pickle can run arbitrary code, so "
                   "only for files you trust; by default only tensors are loaded (weights_only).")
@click.option("--arch", type=click.Choice(["small", "tiny"]), default="small", show_default=True,
              help="MViTv2 size (rgb, context).")
@click.option("--frames", type=int, default=None, help="Frames per unit (default: rgb/context 16, pose 64, face 8).")
@click.option("--size", type=int, default=None, help="Input side in pixels (default: rgb/context 224, face 112).")
@click.option("--layout", "joint_layout", default="imigue22", show_default=True,
              help="Joint layout for pose (imigue22, coco, openpose18).")
@click.option("--window", type=int, default=64, show_default=True, help="Frames per emotion window.")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Decoding processes.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CUDA, fp32 on CPU. Part of the cache key.")
def extract(modality: str, data_root: Path, cache: Path | None, checkpoint: tuple[str, ...],
            trust_checkpoint: bool, arch: str, frames: int | None, size: int | None, joint_layout: str,
            window: int, batch_size: int, workers: int, device: str, precision: str) -> None:
    """Run a frozen backbone over the dataset and cache its token embeddings."""
    from .datasets import read_dataset
    from .extract import extract as run_extract

    manifest = read_dataset(data_root, window=window)
    for problem in manifest.problems:
        log.warning("data: %s", problem)
    opts = ExtractOptions(modality=modality, arch=arch, frames=frames, size=size, layout=joint_layout,
                          batch_size=batch_size, device=device, precision=precision,
                          checkpoints=checkpoint, trust_checkpoint=trust_checkpoint, workers=workers)
    if not checkpoint:
        click.secho(f"WARNING: no --checkpoint given: the {modality} backbone has RANDOM weights "
                    "(seeded). Features are reproducible but not pretrained.", fg="red", bold=True, err=True)
    report = run_extract(manifest, FeatureStore(cache), opts)
    click.echo(f"{modality}: {report.extracted} extracted, {report.done_before} already cached, "
               f"{len(report.failures)} failed -> {report.entry}")
    for unit_id, reason in sorted(report.failures.items()):
        click.echo(f"  failed {unit_id}: {reason}", err=True)


@main.group()
def cache() -> None:
    """Inspect the feature store."""


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


class _FusionChoice(click.ParamType):
    name = "head"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "HEAD"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from migue.fusion.registry import list_heads

        if value not in list_heads():
            self.fail(f"{value!r} is not a head; choose from: {', '.join(list_heads())}", param, ctx)
        return value


@main.command("fuse-train")
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
def fuse_train(task: str, cache: Path | None, out: Path, fusion: str | None, entries: tuple[str, ...],
               epochs: int | None, seed: int, overrides: tuple[str, ...]) -> None:
    """Train a fusion head (or a baseline) on cached features."""
    from migue.fusion.train import train_run

    from .train import select_entries

    readers = select_entries(FeatureStore(cache), task, _pairs(entries))
    config = {k: _json_value(v) for k, v in _pairs(overrides).items()}
    config["seed"] = seed
    if fusion:
        config["head"] = fusion
    if epochs is not None:
        config["epochs"] = epochs
    metrics = train_run(task, readers, out, config)
    click.echo(json.dumps(metrics.get("test", metrics), indent=1, default=str))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
def evaluate(run_dir: Path, split: str) -> None:
    """Recompute a run's metrics on a split from the cache."""
    from migue.fusion.train import evaluate_run

    click.echo(json.dumps(evaluate_run(run_dir, split), indent=1, default=str))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
def predict(run_dir: Path, split: str, out: Path) -> None:
    """Write predictions in the MiGA submission format (emotion: video_id,label; MG: per clip)."""
    from migue.fusion.train import predict_run

    table = predict_run(run_dir, split)
    table.to_csv(out, index=False)
    click.echo(f"wrote {len(table)} predictions to {out}")


@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("migue-demo"), show_default=True,
              help="Where the sample, the cache and the runs go.")
@click.option("--videos", default=30, show_default=True)
@click.option("--arch", type=click.Choice(["small", "tiny"]), default="small", show_default=True)
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the heads' own).")
def demo(workdir: Path, videos: int, arch: str, epochs: int | None) -> None:
    """Synth a sample, extract all four modalities, train both heads, print a summary."""
    from .demo import run_demo

    run_demo(workdir, videos=videos, arch=arch, epochs=epochs)


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


def _install_fusion_epilog() -> None:
    from migue.fusion import heads_help

    main.commands["fuse-train"].epilog = "\b\nHeads (--fusion):\n" + heads_help()


_install_fusion_epilog()
