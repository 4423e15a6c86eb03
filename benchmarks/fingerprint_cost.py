"""What content fingerprints cost: seconds per GB hashed on a first run, and seconds for a rerun
over an unchanged generated sample (every file answered by the memo).

    python benchmarks/fingerprint_cost.py [--gb 1.0] [--videos 12]

Prints one line per measurement; the first-run figure includes reading the files (from the
page cache when they were just written: the hash, not the disk, is then what is measured).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from migue.cache.files import FingerprintMemo


def file_set(folder: Path, gb: float, file_mb: int = 128) -> list[Path]:
    """~`gb` GB of random bytes in files of `file_mb` MB."""
    block = os.urandom(1 << 20)
    paths = []
    for i in range(max(1, round(gb * 1024 / file_mb))):
        path = folder / f"f{i:03d}.bin"
        with open(path, "wb") as f:
            for _ in range(file_mb):
                f.write(block)
        paths.append(path)
    return paths


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--videos", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "files").mkdir()
        paths = file_set(root / "files", args.gb)
        total = sum(p.stat().st_size for p in paths) / 1e9
        memo = FingerprintMemo(root / "cache")
        first = timed(lambda: [memo.file(p) for p in paths])
        memo.flush()
        again = FingerprintMemo(root / "cache")
        second = timed(lambda: [again.file(p) for p in paths])
        print(f"file set: {total:.2f} GB in {len(paths)} files: first run {first:.3f} s = {first / total:.3f} s/GB; "
              f"rerun (memo) {second * 1e3:.1f} ms ({again.hits} hits, {again.hashed_bytes} bytes hashed)")

        from migue.pipeline.datasets import read_dataset
        from migue.pipeline.extraction.fingerprints import unit_fingerprints
        from migue.synth import write_sample

        write_sample(root / "sample", videos=args.videos, seed=0)
        manifest = read_dataset(root / "sample")
        units = manifest.units
        size = sum(p.stat().st_size for p in (root / "sample").rglob("*") if p.is_file()) / 1e9
        for modality in ("pose", "rgb"):
            memo = FingerprintMemo(root / f"cache-{modality}")
            kind = [u for u in units if u.kind == "mg"]
            first = timed(lambda: unit_fingerprints(kind, manifest.videos, modality, memo))
            rerun_memo = FingerprintMemo(root / f"cache-{modality}")
            second = timed(lambda: unit_fingerprints(kind, manifest.videos, modality, rerun_memo))
            print(f"sample ({args.videos} videos, {size * 1e3:.0f} MB on disk), {modality} ({len(kind)} units): "
                  f"first {first:.3f} s ({memo.hashed_bytes / 1e6:.1f} MB hashed), unchanged rerun "
                  f"{second:.3f} s ({rerun_memo.hashed_bytes} bytes hashed)")


if __name__ == "__main__":
    main()
