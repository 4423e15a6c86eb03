"""Cache storage: bytes per unit for each modality, write throughput, and whether compression pays.

Extracts a few units per modality at the default settings (real token shapes, random weights)
from a generated sample, then prints side by side:
  - bytes per unit: the token payload (float16) and the shard files on disk;
  - write throughput of the cache writer on those tokens (HDF5 shard + fsync + SHA-256 + index);
  - for HDF5's lzf and gzip-1 (+shuffle) filters on the same tokens: size against uncompressed,
    write and read MB/s, and a verdict (compression pays when it saves >= 20% of the bytes and
    reads at least half as fast as the uncompressed cache; it never did here, so the cache
    writes contiguous float16, which the loader reads with one preadv per unit).

Usage: .venv/bin/python benchmarks/storage.py [--units 8] [--repeat 32]
"""
from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from migue.cache import EntryReader, FeatureStore
from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.pipeline.extraction.modalities import MODALITIES
from migue.synth.sample import write_sample

IMIGUE_CLIPS = 18499
FILTERS = {"none": {}, "lzf": {"compression": "lzf", "shuffle": True},
           "gzip-1": {"compression": "gzip", "compression_opts": 1, "shuffle": True}}


def filter_trade_off(tokens: dict[str, np.ndarray], work: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Size, write MB/s and read MB/s of the tokens written `repeat` times under each filter."""
    out = {}
    payload = sum(a.nbytes for a in tokens.values()) * repeat
    for name, options in FILTERS.items():
        path = work / f"filter-{name}.h5"
        t = time.perf_counter()
        with h5py.File(path, "w") as f:
            for stream, array in tokens.items():
                flat = np.concatenate([array.reshape(-1, array.shape[-1])] * repeat)
                chunks = (min(len(flat), max(1, (1 << 20) // (flat.shape[1] * 2))), flat.shape[1]) if options else None
                f.create_dataset(stream, data=flat, chunks=chunks, **options)
        write_s = time.perf_counter() - t
        read_s = min(_read_all(path, tokens) for _ in range(3))  # the file is in the page cache
        out[name] = {"bytes": path.stat().st_size, "write": payload / write_s, "read": payload / read_s}
    return out


def _read_all(path: Path, streams: dict[str, np.ndarray]) -> float:
    """Seconds to read every stream of an HDF5 file whole."""
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        for stream in streams:
            f[stream][()]
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=8, help="units extracted per modality")
    parser.add_argument("--repeat", type=int, default=32, help="copies of the tokens per write/filter test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="migue-storage-"))
    try:
        write_sample(work / "data", videos=12, seed=3)
        manifest = read_dataset(work / "data")
        store = FeatureStore(work / "cache")
        print(f"{'modality':<9} {'tokens x dim per stream':<34} {'payload/unit':>13} {'on disk/unit':>13} "
              f"{'write MB/s':>11}")
        verdicts = []
        for modality, mod in MODALITIES.items():
            units = sorted(manifest.of_kind(mod.unit_kind), key=lambda u: (u.video_id, u.start))[:args.units]
            report = extract(manifest, store, ExtractOptions(modality=modality, batch_size=1),
                             only={u.unit_id for u in units})
            reader = EntryReader(report.entry)
            n = len(reader)
            tokens = {s: reader.read(s) for s in reader.streams}
            shapes = ", ".join(f"{s} {a.shape[1]}x{a.shape[2]}" for s, a in tokens.items())
            payload = sum(a.nbytes for a in tokens.values()) / n
            on_disk = sum(p.stat().st_size for p in reader.dir.glob("*.h5")) / n

            writer = FeatureStore(work / "rewrite").writer({**reader.config, "manifest": f"rewrite-{modality}"})
            meta = {c: list(reader.units[c]) for c in reader.units.columns if not c.startswith("_")}
            t = time.perf_counter()
            for k in range(args.repeat):
                writer.write({**meta, "unit_id": [f"{u}#{k}" for u in meta["unit_id"]]},
                             {s: list(a) for s, a in tokens.items()})
            write_rate = payload * n * args.repeat / (time.perf_counter() - t)
            print(f"{modality:<9} {shapes:<34} {payload / 1e3:>10.1f} kB {on_disk / 1e3:>10.1f} kB "
                  f"{write_rate / 1e6:>11.0f}")
            if mod.unit_kind == "mg":
                print(f"    iMiGUE's 18,499 MG clips: {on_disk * IMIGUE_CLIPS / 1e9:.1f} GB")
            filters = filter_trade_off(tokens, work, args.repeat)
            base = filters["none"]
            for name, f in filters.items():
                if name == "none":
                    continue
                saved = 1 - f["bytes"] / base["bytes"]
                pays = saved >= 0.2 and f["read"] >= 0.5 * base["read"]
                verdicts.append(pays)
                print(f"    {name:<7} size {f['bytes'] / base['bytes']:.2f} of uncompressed, write "
                      f"{f['write'] / 1e6:.0f} MB/s (uncompressed {base['write'] / 1e6:.0f}), read "
                      f"{f['read'] / 1e6:.0f} MB/s (uncompressed {base['read'] / 1e6:.0f}): "
                      f"{'pays' if pays else 'does not pay'}")
        print("compression " + ("pays for some modality: consider an option" if any(verdicts)
                                else "does not pay on any modality: the cache stays uncompressed float16"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
