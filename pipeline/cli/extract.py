"""`migue extract`: run frozen backbones over a dataset and cache their token embeddings."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from migue.cache import FeatureStore
from migue.cache.units import DENSE_KIND, KINDS
from migue.extractors.skeleton_layouts import LAYOUTS as JOINT_LAYOUT_TABLE
from migue.pipeline.extraction.decode_pool import cpu_count
from migue.pipeline.extraction.modalities import MODALITIES, Modality, get_modality
from migue.pipeline.extraction.options import ExtractOptions
from migue.pipeline.extraction.summary import ExtractSummary

from .options import CACHE_HELP, DATA_HELP, DEFAULT_WINDOW, data_layouts, modality_plugin_option, refuse_empty_train

log = logging.getLogger("migue")
DATA_LAYOUTS = data_layouts()
JOINT_LAYOUTS = tuple(JOINT_LAYOUT_TABLE)
DEFAULT_JOINTS = "imigue22"  # the joint layout of a dataset that names none (its manifest's joint_layout)


class _ArchChoice(click.ParamType):
    """An --arch value some registered modality takes (checked after --plugin loaded its rows)."""

    name = "arch"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        known = arch_choices()
        if value not in known:
            self.fail(f"{value!r} is not an arch of any modality; choose from: {', '.join(known)}", param, ctx)
        return str(value)


class _ModalitiesCommand(click.Command):
    """`migue extract`, whose help ends with the registered modalities (plugins included)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.epilog = "\b\nModalities (--modality):\n" + modalities_help()
        super().format_epilog(ctx, formatter)


def arch_choices() -> list[str]:
    """Every `--arch` value of a registered modality, in registration order."""
    return list(dict.fromkeys(a for m in MODALITIES.values() for a in m.archs))


def modalities_help() -> str:
    """One line per registered modality: name, unit kind, defaults, --arch values, streams, origin."""
    width = max(len(n) for n in MODALITIES)
    lines = []
    for m in MODALITIES.values():
        defaults = f"frames {m.frames}" + (f", size {m.size}" if m.size else "")
        archs = f", --arch {'|'.join(m.archs)}" if m.archs else ""
        streams = ", ".join(s.name for s in m.streams)
        origin = "" if m.source == "built-in" else f"  (plugin: {m.source})"
        lines.append(f"{m.name:<{width}}  [{m.unit_kind}] {m.extractor}: {defaults}{archs}; streams {streams}"
                     + (" (one pass)" if m.takes is not None else "") + origin)
    return "\n".join(lines)


@click.command(cls=_ModalitiesCommand)
@modality_plugin_option
@click.option("--modality", "modalities", required=True, metavar="NAMES",
              help="One modality (listed below), several joined by commas, or 'all'. Every modality asked "
                   "is extracted in one pass: each video decoded once, each skeleton parsed once.")
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
@click.option("--arch", type=_ArchChoice(), default="small", show_default=True,
              help="Backbone size, for the modalities that take one (their --arch values are listed below).")
@click.option("--frames", type=int, default=None, help="Frames per unit (default: each modality's, listed below).")
@click.option("--size", type=int, default=None, help="Input side in pixels (default: each modality's, listed below).")
@click.option("--layout", "data_layout", default="auto", show_default=True,
              help=f"Dataset layout ({', '.join(DATA_LAYOUTS)}); auto detects it.")
@click.option("--joints", "joint_layout", type=click.Choice(JOINT_LAYOUTS), default=None,
              help="Joint layout for pose (default: the dataset's: kinect25 for SMG, imigue22 otherwise).")
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True, help="Frames per emotion window.")
@click.option("--units", "unit_kind", type=click.Choice(KINDS), default=None,
              help="Which units to cover (default: each modality's own, listed below; an SMG release's: "
                   "dense): mg clips, emotion windows, or dense windows over every whole sequence (the "
                   "online task's; the entry is named <modality>@dense, apart from the modality's own).")
@click.option("--dense-window", type=click.IntRange(min=1), default=32, show_default=True,
              help="Dense units (--units dense; an SMG release's default): frames per window (part of the cache key).")
@click.option("--dense-stride", type=click.IntRange(min=1), default=8, show_default=True,
              help="Dense units: frames between window starts; a last, shorter window reaches the last "
                   "frame (part of the cache key).")
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
              help="Extract on Dask: shards of videos are tasks (each video decoded once for every "
                   "modality asked) on the cluster at ADDRESS, or on a LocalCluster of --workers processes "
                   "with 'local'. The entries are the same bytes as a local run's.")
def extract(modalities: str, data_root: tuple[Path, ...], cache: Path | None, checkpoint: tuple[str, ...],
            trust_checkpoint: bool, non_strict_checkpoint: bool, arch: str, frames: int | None,
            size: int | None, data_layout: str,
            joint_layout: str | None, window: int, unit_kind: str | None, dense_window: int, dense_stride: int,
            batch_size: int | None, shard_size: int, workers: int | None, device: str,
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
    unit_kind = unit_kind or _release_units(data_root, data_layout, dense_window, dense_stride)
    manifest = read_dataset(data_root, data_layout, window=window,
                            parsed_dir=FeatureStore(cache).root / "parsed",
                            dense=(dense_window, dense_stride) if unit_kind == DENSE_KIND else None)
    for problem in manifest.problems:
        log.warning("data: %s", problem)
    refuse_empty_train(manifest)
    joint_layout = joint_layout or manifest.joint_layout or DEFAULT_JOINTS
    try:
        names = resolve_modalities(modalities)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--modality") from None
    base = ExtractOptions(modality=names[0], arch=arch, frames=frames, size=size, layout=joint_layout,
                          batch_size=batch_size, device=device, precision=precision,
                          checkpoints=checkpoint, trust_checkpoint=trust_checkpoint,
                          strict_checkpoint=not non_strict_checkpoint,
                          workers=cpu_count() if workers is None else workers, shard_size=shard_size,
                          unit_kind=unit_kind, dense_window=dense_window, dense_stride=dense_stride)
    if not checkpoint:
        click.secho(f"WARNING: no --checkpoint given: the {', '.join(names)} backbone(s) have RANDOM weights "
                    "(seeded). Features are reproducible but not pretrained.", fg="red", bold=True, err=True)
    elif len({get_modality(m).extractor for m in names}) > 1:
        raise click.BadParameter("--checkpoint names one backbone's weights: give only modalities of that "
                                 "backbone with it", param_hint="--modality")
    from migue.extractors.checkpoints import CheckpointError

    try:
        reports, summary = _run_extract(manifest, FeatureStore(cache), base, names, scheduler, workers)
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
    click.echo(summary.line())


def _release_units(data_root: tuple[Path, ...], data_layout: str, dense_window: int, dense_stride: int) -> str | None:
    """The units the release's own track uses when --units is not given (SMG: dense windows), said on stderr."""
    from migue.pipeline.datasets import default_units

    found = default_units(data_root, data_layout)
    if found is None:
        return None
    kind, why = found
    grid = f" ({dense_window} frames every {dense_stride})" if kind == DENSE_KIND else ""
    click.echo(f"note: {why}: extracting its {kind} windows{grid}; --units mg extracts its gesture clips instead",
               err=True)
    return kind


def _run_extract(manifest, store: FeatureStore, base: ExtractOptions, names: list[str], scheduler: str | None,
                 workers: int | None) -> tuple[dict, "ExtractSummary"]:
    """One plan for every modality asked; executed here (each video decoded once) or on Dask."""
    from dataclasses import replace

    from migue.pipeline.extraction.onepass import execute_plan
    from migue.pipeline.extraction.plan import plan_extraction, request

    plan = plan_extraction(manifest, store, [request(replace(base, modality=m)) for m in names])
    log.info("%s", plan)
    if scheduler:
        from migue.pipeline.extraction.dask_run import extract_dask

        run = extract_dask(plan, store, scheduler, workers or 2)
    else:
        run = execute_plan(plan, store)
    return {e.name: run.reports[e.name] for e in plan.entries}, run.summary


def resolve_modalities(text: str) -> list[str]:
    """'rgb,context,face' or 'all' -> the modality names, in the order given (`rows` gives the rows)."""
    return [m.name for m in rows(text)]


def rows(text: str) -> list[Modality]:
    """'rgb,rgb-small' or 'all' -> the registered rows, in the order given; an unknown name is an error
    listing the known ones (a plugin's row needs --plugin)."""
    names = sorted(MODALITIES) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODALITIES]
    if unknown or not names:
        raise ValueError(f"unknown modality {', '.join(unknown) or text!r}; known: {', '.join(sorted(MODALITIES))}, "
                         "all (a plugin's modality needs --plugin MODULE)")
    return [MODALITIES[n] for n in dict.fromkeys(names)]


def _resolve_checkpoints(values: tuple[str, ...], cache: Path | None) -> tuple[str, ...]:
    """`--checkpoint` values as paths: catalogue keys become their files in the weights store."""
    from migue.pipeline.weights import WeightsError, WeightsStore, resolve_checkpoint, store_dir

    store = WeightsStore(store_dir(cache=cache))
    try:
        return tuple(resolve_checkpoint(v, store) for v in values)
    except WeightsError as exc:
        raise click.ClickException(str(exc)) from None
