"""Training-side speed over an iMiGUE-sized cache, measured side by side in one run.

Generates an MG cache with the real token shapes of the default extractors (rgb: MViTv2-S at
16x224, 8x7x7 = 392 tokens x 768; pose: 2s-AGCN at 64 frames, 16x22 = 352 tokens x 256 per
stream), float16, written through the cache writer, then prints:
  - write throughput of the cache writer (HDF5 shard + fsync + SHA-256 + index), MB/s;
  - raw read throughput of the token bytes (plain preadv of every shard, sequential) against
    the fuse-train loader delivering the same tokens (streaming, shuffled batches of 32,
    float16 as it ships them to a device), and their ratio (target >= 0.8);
  - one epoch of the default CMTF head over the whole cache: seconds and peak RSS, held in
    memory (auto) and streamed;
  - peak RSS of a streamed epoch as the cache grows (1k, 4k, 16k units): flat is the target.
Each training figure comes from a fresh child process (its own peak RSS).

Usage: .venv/bin/python benchmarks/train_speed.py [--units 18499] [--sizes 1000,4000,16000]
           [--workdir DIR] [--keep]        (18,499 units take 17 GB of disk)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from migue.cache import EntryReader, FeatureStore
from migue.cache.index import read_index, write_index

SHAPES = {"rgb": {"tokens": (8, 7, 7, 768), "cls": (1, 768)}, "pose": {"joint": (16, 22, 256), "bone": (16, 22, 256)}}
SHARD_UNITS = 64  # units per shard, as `migue extract --shard-size` writes by default
BATCH = 32


def spec(shape: tuple[int, ...]) -> dict:
    grid, dim = shape[:-1], shape[-1]
    return {"tokens": int(np.prod(grid)), "dim": dim, "grid": list(grid)}


def generate(root: Path, units: int) -> dict:
    """Write the rgb and pose entries; return the writer's throughput."""
    rng = np.random.default_rng(0)
    splits = np.array(["train", "val", "test"])[np.minimum(rng.integers(0, 20, units) // 14, 2)]
    labels = np.arange(units) % 32
    written, seconds = 0, 0.0
    for modality, streams in SHAPES.items():
        config = {"modality": modality, "backbone": "benchmark", "arch": "real-shapes", "manifest": "train-speed",
                  "streams": {name: spec(shape) for name, shape in streams.items()}}
        writer = FeatureStore(root).writer(config)
        base = {name: rng.standard_normal((SHARD_UNITS, int(np.prod(s[:-1])), s[-1])).astype(np.float16)
                for name, s in streams.items()}
        for start in range(0, units, SHARD_UNITS):
            rows = np.arange(start, min(start + SHARD_UNITS, units))
            meta = {"unit_id": [f"u{i:06d}" for i in rows], "kind": ["mg"] * len(rows),
                    "video_id": [f"v{i // 12:05d}" for i in rows], "split": list(splits[rows]),
                    "mg_label": labels[rows].tolist(), "emotion": [-1] * len(rows),
                    "start": (rows * 10).tolist(), "end": (rows * 10 + 9).tolist()}
            tokens = {name: list(b[:len(rows)] + np.float16(start % 7)) for name, b in base.items()}
            t = time.perf_counter()
            path = writer.write(meta, tokens)
            seconds += time.perf_counter() - t
            written += path.stat().st_size
        print(f"  {modality}: {units} units, {sum(p.stat().st_size for p in writer.dir.glob('*.h5')) / units / 1e6:.2f} "
              "MB/unit on disk", flush=True)
    return {"bytes": written, "seconds": seconds}


def subset(root: Path, units: int, out: Path) -> Path:
    """A cache holding the first `units` (whole shards) of `root`'s entries: hard links, no copies."""
    for entry in (p for p in root.iterdir() if (p / "index.json").exists()):
        index = read_index(entry)
        keep, total = [], 0
        for shard in index["shards"]:
            if total >= units:
                break
            keep.append(shard)
            total += len(shard["unit_ids"])
        target = out / entry.name
        target.mkdir(parents=True, exist_ok=True)
        for shard in keep:
            if not (target / shard["file"]).exists():
                os.link(entry / shard["file"], target / shard["file"])
        write_index(target, {**index, "shards": keep})
    return out


def raw_read(entries: list[EntryReader], streams: dict[str, list[str]]) -> tuple[int, float]:
    """(bytes, seconds) of reading every shard's token bytes with sequential preadv calls."""
    buffer = bytearray(64 << 20)
    view = memoryview(buffer)
    total, t = 0, time.perf_counter()
    for reader in entries:
        for shard_no, shard in enumerate(reader.index["shards"]):
            fd = os.open(reader.dir / shard["file"], os.O_RDONLY)
            try:
                for stream in streams[reader.config["modality"]]:
                    group, _ = reader._stream(shard_no, stream)
                    start, size = group["tokens"].id.get_offset(), group["tokens"].id.get_storage_size()
                    done = 0
                    while done < size:
                        n = os.preadv(fd, [view[:min(len(buffer), size - done)]], start + done)
                        done += n
                    total += size
            finally:
                os.close(fd)
    return total, time.perf_counter() - t


def loader(root: Path) -> Callable[[], tuple[int, float]]:
    """A function timing one epoch of the fuse-train loader: every train/val/test unit's full
    token maps (pool none) in shuffled batches of BATCH, float16 as shipped to a device,
    streaming from the cache through the trainer's prefetching iterator -> (bytes delivered, seconds). Opening the entries (each shard's
    unit table) happens here, untimed, as the raw read opens nothing either."""
    import torch

    from migue.fusion.data import Input, build_data, iter_batches

    entries = {m: EntryReader(p) for m, p in _entries(root).items()}
    inputs = {"rgb": Input("rgb", "tokens", "none"), "joint": Input("pose", "joint", "none"),
              "bone": Input("pose", "bone", "none")}
    data = build_data("mg", entries, inputs, in_memory=False)
    rng = np.random.default_rng(0)

    def epoch() -> tuple[int, float]:
        total, t = 0, time.perf_counter()
        for part in data.splits.values():
            for batch in iter_batches(part, rng.permutation(len(part)), BATCH, dtype=torch.float16):
                total += sum(v.numel() * v.element_size() for k, v in batch.items() if k != "label")
        return total, time.perf_counter() - t

    return epoch


def _entries(root: Path) -> dict[str, Path]:
    return {json.loads((p / "index.json").read_text())["config"]["modality"]: p
            for p in root.iterdir() if (p / "index.json").exists()}


def child(root: Path, in_memory: str) -> None:
    """One epoch of the default CMTF head; prints JSON with its seconds and this process's peak RSS."""
    import torch

    from migue.fusion import train_run

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    entries = {m: EntryReader(p) for m, p in _entries(root).items()}
    with tempfile.TemporaryDirectory() as out:
        train_run("mg", entries, Path(out), {"epochs": 1, "in_memory": {"auto": "auto", "true": True,
                                                                          "false": False}[in_memory]})
        history = json.loads(Path(out, "config.json").read_text())
        seconds = float(pd.read_csv(Path(out, "history.csv"))["seconds"].iloc[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"epoch_s": seconds, "peak_rss": peak, "in_memory": history["data"]["in_memory"],
                      "units": sum(history["data"]["items"].values())}))


def run_child(root: Path, in_memory: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", str(root), "--in-memory", in_memory],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=18499)
    parser.add_argument("--sizes", default="1000,4000,16000", help="cache sizes for the streamed-memory check")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the generated cache")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.in_memory)

    work = Path(tempfile.mkdtemp(prefix="migue-train-bench-", dir=args.workdir))
    try:
        root = work / "cache"
        print(f"generating {args.units} MG units with the real token shapes in {root}", flush=True)
        write = generate(root, args.units)
        print(f"cache writer: {write['bytes'] / 1e9:.2f} GB in {write['seconds']:.1f} s = "
              f"{write['bytes'] / write['seconds'] / 1e6:.0f} MB/s (shard + fsync + SHA-256 + index)", flush=True)

        entries = [EntryReader(p) for p in _entries(root).values()]
        streams = {"rgb": ["tokens"], "pose": ["joint", "bone"]}
        raw_read(entries, streams)  # warm the page cache: both sides read from memory
        epoch = loader(root)
        first_bytes, first_s = epoch()  # the loader's first epoch also checks every shard once
        raw_rates, load_rates = [], []
        for _ in range(3):  # interleaved, medians: the machine is noisy
            size, seconds = raw_read(entries, streams)
            raw_rates.append(size / seconds)
            size, seconds = epoch()
            load_rates.append(size / seconds)
        raw_rate, load_rate = float(np.median(raw_rates)), float(np.median(load_rates))
        print(f"raw read:     {size / 1e9:.2f} GB per pass, {raw_rate / 1e9:.2f} GB/s (plain preadv, sequential; "
              "median of 3)")
        print(f"loader:       {load_rate / 1e9:.2f} GB/s (shuffled batches of {BATCH}, float16, streaming; median of "
              f"3 epochs); first epoch {first_bytes / first_s / 1e9:.2f} GB/s (opens and checks every shard)")
        print(f"loader / raw: {load_rate / raw_rate:.2f} (target >= 0.8); first epoch "
              f"{first_bytes / first_s / raw_rate:.2f}", flush=True)

        for mode in ("auto", "false"):
            r = run_child(root, mode)
            print(f"CMTF epoch, {r['units']} units, {'in memory' if r['in_memory'] else 'streamed'}: "
                  f"{r['epoch_s']:.1f} s, peak RSS {r['peak_rss'] / 2**30:.2f} GiB", flush=True)

        peaks = []
        for size in [int(s) for s in args.sizes.split(",")]:
            r = run_child(subset(root, size, work / f"subset-{size}"), "false")
            peaks.append(r["peak_rss"])
            print(f"streamed epoch, {r['units']:>6} units: {r['epoch_s']:.1f} s, peak RSS "
                  f"{r['peak_rss'] / 2**30:.2f} GiB", flush=True)
        print(f"peak RSS largest / smallest: {peaks[-1] / peaks[0]:.2f} (flat = 1.0)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
