"""`migue synth` and `migue data check`: write a sample, inspect a dataset."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from migue.cache import FeatureStore

from .options import CACHE_HELP, DEFAULT_WINDOW, data_layouts

DATA_LAYOUTS = data_layouts()


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the sample to.")
@click.option("--videos", default=12, show_default=True, help="Number of long videos (smg: sequences).")
@click.option("--seed", default=0, show_default=True)
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Frames per video (default 400; smg 1200, at 30 fps).")
@click.option("--clips-per-video", type=click.IntRange(min=1), default=None,
              help="MG clips (gesture segments) per video (default 12; smg 10).")
@click.option("--width", default=160, show_default=True)
@click.option("--height", default=120, show_default=True)
@click.option("--layout", type=click.Choice(DATA_LAYOUTS[1:]), default="miga2025", show_default=True,
              help="Release layout to write the (same) sample in; smg writes the SMG release instead "
                   "(long Kinect skeleton sequences with planted gestures of 17 classes, no RGB).")
@click.option("--rgb/--no-rgb", default=True, show_default=True,
              help="Write the videos too (--no-rgb: skeletons and labels only, as the MiGA skeleton download).")
def synth(out: Path, videos: int, seed: int, frames: int | None, clips_per_video: int | None, width: int,
          height: int, layout: str, rgb: bool) -> None:
    """Write a deterministic synthetic sample in a release layout (default MiGA 2025)."""
    from migue.synth.sample import write_sample

    try:
        summary = write_sample(out, videos=videos, seed=seed, frames=frames, width=width, height=height,
                               clips_per_video=clips_per_video, layout=layout, rgb=rgb)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    what = "sequences" if layout == "smg" else "videos"
    click.echo(f"wrote {len(summary.video_ids)} {what}, {summary.n_clips} MG clips to {out} as {layout} "
               f"(train {len(summary.splits['train'])}, validate {len(summary.splits['validate'])}, "
               f"test {len(summary.splits['test'])} {what})")


@click.group()
def data() -> None:
    """Inspect a dataset folder."""


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
