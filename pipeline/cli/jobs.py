"""`migue demo` and `migue ablate`: the whole job on a sample, and grids of trainings on Dask."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import CACHE_HELP


@click.command()
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


@click.command()
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
      entries: {pose: NAME}     # optional: which cache entry a modality reads, where several exist
                                #   (names as `migue cache ls` shows them)
      plugins: [my_heads.py]    # optional: modules or .py files (beside the grid) that register heads
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
