"""Time `migue demo` end to end on this machine and print each stage beside the 10-minute budget.

Usage: .venv/bin/python benchmarks/demo_time.py [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

from migue.pipeline.orchestration.demo import run_demo
from migue.pipeline.extraction.decode_pool import cpu_count as cpu_threads

BUDGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="migue-demo-bench-"))
    t0 = time.perf_counter()
    run_demo(workdir)
    wall = time.perf_counter() - t0
    timings = json.loads((workdir / "summary.json").read_text())["timings_s"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {cpu_threads()} threads")
    print(f"{'stage':<36} {'seconds':>8} {'share':>7}")
    for stage, seconds in timings.items():
        if stage != "total":
            print(f"{stage:<36} {seconds:>8.1f} {seconds / timings['total']:>7.1%}")
    print(f"{'demo total (wall, with start-up)':<36} {wall:>8.1f}")
    print(f"budget ratio: {wall / BUDGET_S:.2f} of the 10-minute budget")


if __name__ == "__main__":
    main()
