"""Ablations over one cache on Dask: parallel efficiency, and what the cache saves.

Prints, in one run on a generated sample:
  - wall time of K ablation runs on one worker and on two, and the parallel efficiency;
  - K ablations over the cache against K x (extraction + training), as a ratio;
  - 12 linear probes as separate runs against the same 12 in one pass (many heads, one read).

Usage: .venv/bin/python benchmarks/ablation_scaling.py [--videos 30] [--runs 6] [--epochs 20]
"""
from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from migue.cache import FeatureStore
from migue.pipeline.orchestration.ablate import Grid, run_ablation
from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.synth.sample import write_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--runs", type=int, default=6, help="K: ablation runs (CMTF, one seed each)")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="migue-ablate-bench-"))
    write_sample(work / "data", videos=args.videos)
    manifest = read_dataset(work / "data")
    store = FeatureStore(work / "cache")

    t = time.perf_counter()  # what one run costs without a cache: extract both MG modalities
    for modality, kw in (("rgb", {"size": 112}), ("pose", {"frames": 32})):
        extract(manifest, store, ExtractOptions(modality=modality, **kw))
    extraction = time.perf_counter() - t

    grid = Grid("mg", {"head": "cmtf", "epochs": args.epochs, "patience": 0},
                {"seed": list(range(args.runs))})
    walls = {}
    for workers in (1, 2):
        out = work / f"ablate-{workers}"
        t = time.perf_counter()
        run_ablation(grid, store.root, out, workers=workers)
        walls[workers] = time.perf_counter() - t
        shutil.rmtree(out)
    per_run = walls[1] / args.runs
    without_cache = args.runs * (extraction + per_run)

    print(f"\nK = {args.runs} CMTF runs, {args.epochs} epochs each, on {len(manifest.of_kind('mg'))} MG clips")
    print(f"{'':<44} {'seconds':>8}")
    print(f"{'extraction (rgb MViTv2-S 16x112 + pose)':<44} {extraction:>8.1f}")
    print(f"{'K runs, 1 worker':<44} {walls[1]:>8.1f}")
    print(f"{'K runs, 2 workers':<44} {walls[2]:>8.1f}")
    print(f"speed-up 2 vs 1 worker: {walls[1] / walls[2]:.2f}x; parallel efficiency {walls[1] / (2 * walls[2]):.2f}")
    print(f"K x (extraction + training) = {without_cache:.1f} s vs K ablations over the cache = {walls[1]:.1f} s: "
          f"ratio {without_cache / walls[1]:.1f}x")

    # many heads, one read: P linear probes as P runs, or in one pass over the cache (1 worker)
    probes = {"head": ["probe-linear-rgb", "probe-linear-pose-joint"], "lr": [1e-4, 5e-4, 2e-3],
              "weight_decay": [0.0, 0.05], "seed": [0]}
    sweep = {}
    for one_pass in (False, True):
        out = work / f"probes-{one_pass}"
        t = time.perf_counter()
        run_ablation(Grid("mg", {"epochs": args.epochs, "patience": 0}, probes, one_pass=one_pass), store.root, out,
                     workers=1)
        sweep[one_pass] = time.perf_counter() - t
    count = len(Grid("mg", {}, probes).runs())
    print(f"{count} linear probes, 1 worker: {sweep[False]:.1f} s as separate runs, {sweep[True]:.1f} s in one pass "
          f"(one_pass: true): {sweep[False] / sweep[True]:.1f}x")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
