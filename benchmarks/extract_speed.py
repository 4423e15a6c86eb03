"""Extraction speed, measured side by side in one run on a generated sample.

For each modality it prints units/s of
  - the bare backbone forward on already-decoded batches (same batch size, precision, device),
  - `migue extract` end to end (decode + forward + cache write), and their ratio (target >= 0.9);
    pose and face twice: parsing the skeleton sheets inside the timed run (a dataset's first
    extraction), and with them already parsed (kept by content hash: every later one);
and for rgb, a loop over mmaction2's own `inference_recognizer` (one clip at a time, its default
PyAV pipeline, float32) against `migue extract` in float32 and in bf16 (targets 1.3x and 2x).

Usage: .venv/bin/python benchmarks/extract_speed.py [--units 64] [--device auto] [--precision fp32]
           [--modalities rgb,pose,context,face] [--baseline] [--out results.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import torch

from migue.cache import FeatureStore
from migue.pipeline.datasets import read_dataset
from migue.common.devices import pick_device as resolve_device
from migue.pipeline.datasets.video import read_frames
from migue.pipeline.extraction.backbone import build_model, forward as _forward, resolve_precision
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.pipeline.extraction.modalities import MODALITIES
from migue.pipeline.extraction.unit_inputs import UnitInputs
from migue.synth.sample import write_sample


def bare_forward(opts: ExtractOptions, built, manifest, units, parsed_dir: Path) -> float:
    """units/s of the model alone on batches decoded beforehand."""
    model, mod = built, MODALITIES[opts.modality]
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    data = UnitInputs(units, manifest.videos, mod, mod.input_config(opts), parsed_dir)
    arrays = [data[i][1] for i in range(len(units))]
    batches = [torch.from_numpy(np.stack(arrays[i:i + opts.batch_size]))
               for i in range(0, len(arrays), opts.batch_size)]
    _forward(model, batches[0], device, precision)  # warm-up
    _sync(device)
    t = time.perf_counter()
    for batch in batches:
        _forward(model, batch, device, precision)
    _sync(device)
    return len(units) / (time.perf_counter() - t)


def end_to_end(opts: ExtractOptions, built, manifest, units, root: Path) -> float:
    """units/s of `migue extract` (decode workers, forward, background shard writes)."""
    store = FeatureStore(root)
    t = time.perf_counter()
    report = extract(manifest, store, opts, only={u.unit_id for u in units}, model=built)
    _sync(resolve_device(opts.device))
    assert report.extracted == len(units), report.failures
    return len(units) / (time.perf_counter() - t)


def mmaction_baseline(units, manifest, frames: int, size: int, device: str, work: Path) -> float:
    """clips/s of mmaction2's inference_recognizer over clip files, float32, its default pipeline."""
    from migue.extractors import compat

    compat.apply()
    from mmaction.apis import inference_recognizer, init_recognizer
    from mmengine import Config

    clips = []
    for unit in units:  # the obvious alternative works on one file per clip: cut them first (not timed)
        video = manifest.videos[unit.video_id]
        path = work / f"{unit.unit_id.replace(':', '_')}.mp4"
        _write_clip(path, read_frames(video.video_path, np.arange(unit.start, unit.end + 1)))
        clips.append(str(path))
    cfg = Config(dict(
        model=dict(type="Recognizer3D", backbone=dict(type="MViT", arch="small", spatial_size=size,
                                                       temporal_size=frames),
                   cls_head=dict(type="MViTHead", in_channels=768, num_classes=400),
                   data_preprocessor=dict(type="ActionDataPreprocessor", mean=[114.75] * 3, std=[57.375] * 3,
                                          format_shape="NCTHW")),
        test_pipeline=[dict(type="PyAVInit"),
                       dict(type="UniformSample", clip_len=frames, num_clips=1, test_mode=True),
                       dict(type="PyAVDecode"), dict(type="Resize", scale=(-1, size)),
                       dict(type="CenterCrop", crop_size=size), dict(type="FormatShape", input_format="NCTHW"),
                       dict(type="PackActionInputs")]))
    model = init_recognizer(cfg, None, device=str(resolve_device(device)))
    inference_recognizer(model, clips[0])  # warm-up
    t = time.perf_counter()
    for clip in clips:
        inference_recognizer(model, clip)
    return len(clips) / (time.perf_counter() - t)


def _write_clip(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--modalities", default="rgb,pose,context,face")
    parser.add_argument("--arch", default="small")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: migue's CPU defaults (rgb/context 1, pose/face 4), 32 on CUDA")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--baseline", action="store_true", help="also time mmaction2's inference_recognizer")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = resolve_device(args.device)
    def batch_for(modality: str) -> int:
        return args.batch_size or (32 if device.type == "cuda" else MODALITIES[modality].cpu_batch)

    work = Path(tempfile.mkdtemp(prefix="migue-speed-"))
    write_sample(work / "data", videos=args.videos)
    manifest = read_dataset(work / "data")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    results = {"device": name, "modalities": {}}
    print(f"{'modality':<9} {'batch':>5} {'precision':<9} {'bare units/s':>13} {'extract units/s':>16} {'ratio':>7}")
    for modality in args.modalities.split(","):
        mod = MODALITIES[modality]
        units = sorted(manifest.of_kind(mod.unit_kind), key=lambda u: (u.video_id, u.start))[:args.units]
        size = {"rgb": args.size, "context": args.size}.get(modality)
        batch = batch_for(modality)
        opts = ExtractOptions(modality=modality, arch=args.arch, size=size, batch_size=batch,
                              workers=args.workers, device=args.device, precision=args.precision,
                              shard_size=max(64, batch))
        precisions = [opts.precision] if modality != "rgb" or not args.baseline else ["fp32", "bf16"]
        for precision in precisions:
            run = replace(opts, precision=precision)
            built = build_model(run)
            built.to(device)
            bare = bare_forward(run, built, manifest, units, work / "cache" / "parsed")
            shown = resolve_precision(precision, device)
            root = work / f"cache-{modality}-{precision}"
            if modality in ("pose", "face"):  # first, parsing every skeleton sheet (once per dataset)
                cold = end_to_end(run, built, manifest, units, root / "cold")
                print(f"{modality:<9} {batch:>5} {shown:<9} {bare:>13.2f} {cold:>16.2f} {cold / bare:>7.2f}"
                      "  (sheets parsed inside the timed run)")
                results["modalities"][f"{modality}/{shown}/sheets-unparsed"] = {
                    "bare": bare, "extract": cold, "ratio": cold / bare}
                shutil.copytree(work / "cache" / "parsed", root / "parsed")  # parsed by the bare step
            e2e = end_to_end(run, built, manifest, units, root)
            print(f"{modality:<9} {batch:>5} {shown:<9} {bare:>13.2f} {e2e:>16.2f} {e2e / bare:>7.2f}"
                  + ("  (sheets already parsed: kept by content hash)" if modality in ("pose", "face") else ""))
            results["modalities"][f"{modality}/{shown}"] = {"bare": bare, "extract": e2e, "ratio": e2e / bare}
    if args.baseline:
        units = sorted(manifest.of_kind("mg"), key=lambda u: (u.video_id, u.start))[:args.units]
        with contextlib.suppress(FileExistsError):
            (work / "clips").mkdir()
        base = mmaction_baseline(units, manifest, 16, args.size, args.device, work / "clips")
        ours = {p: results["modalities"].get(f"rgb/{p}", {}).get("extract") for p in ("fp32", "bf16")}
        print(f"mmaction2 inference_recognizer loop (fp32): {base:.2f} clips/s")
        for p, v in ours.items():
            if v:
                print(f"migue extract rgb {p} / inference_recognizer: {v / base:.2f}x")
        results["mmaction_inference_recognizer"] = base
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
