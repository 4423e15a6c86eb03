"""What bounding an xlsx costs beside reading it: the byte scan of `check_workbook_bounds`
and python-calamine's read of the same MiGA 2025 `<id>_openpose.xlsx`, side by side.

    python benchmarks/sheet_bounds.py [--frames 10500]

The release's videos average ~10,500 frames (3.77 M frames over 359 videos); each frame is a
row of 411 numbers. Prints seconds for both and their ratio (target: the check <= 1x the read).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from migue.pipeline.datasets.sheet_bounds import check_workbook_bounds
from migue.synth.sample import _write_xlsx


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from python_calamine import CalamineWorkbook

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "0001_openpose.xlsx"
        rng = np.random.default_rng(0)
        _write_xlsx(path, np.round(rng.uniform(0, 1280, (args.frames, 411)), 3))
        check = best_of(args.repeat, lambda: check_workbook_bounds(path, 200_000, 1000))
        read = best_of(args.repeat, lambda: CalamineWorkbook.from_path(str(path))
                       .get_sheet_by_index(0).to_python(skip_empty_area=False))
        print(f"sheet: {args.frames} frames x 411 columns, {path.stat().st_size / 1e6:.1f} MB xlsx")
        print(f"bounds check {check:.3f} s | calamine read {read:.3f} s | check/read {check / read:.2f} (target <= 1)")


if __name__ == "__main__":
    main()
