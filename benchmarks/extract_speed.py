"""Extraction speed at the release's resolution, measured side by side in one run.

Footage: a generated sample at 1280x720, GOP 250, re-encoded with texture and grain until it
decodes like broadcast H.264 (`broadcast.py`; its bitrate and bare decode rate are printed).
Then, on the units of every video:
  - per video modality: the bare forward on inputs decoded beforehand vs `migue extract` of that
    modality alone (decode workers + forward + shard writes), same batch size (target >= 0.9;
    MViT in bf16);
  - rgb + context + face in one pass vs the three separate runs (target >= 1.5x), and frames
    decoded / frames in the videos for the one pass (target <= 1.1);
  - the decode side alone: bare PyAV decode rate vs migue's (workers, scaling, cuts, shared memory);
  - a loop over mmaction2's `inference_recognizer` on the same rgb clips cut to 720p files
    (float32) vs `migue extract` rgb in bf16 (target >= 2x) and float32 (printed as measured).

Usage: .venv/bin/python benchmarks/extract_speed.py [--videos 6] [--frames 300] [--workers N]
           [--device auto] [--no-baseline] [--out results.json]
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import multiprocessing as mp
import os
import subprocess
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from broadcast import bare_decode_fps, bitrate_mbps, roughen  # noqa: E402

from migue.cache import FeatureStore  # noqa: E402
from migue.pipeline.datasets import read_dataset  # noqa: E402
from migue.common.devices import pick_device as resolve_device  # noqa: E402
from migue.pipeline.datasets.video import read_frames  # noqa: E402
from migue.pipeline.extraction.backbone import build_model, forward as _forward, resolve_precision  # noqa: E402
from migue.pipeline.extraction.decode_pool import DecodePool, cpu_count  # noqa: E402
from migue.pipeline.extraction.extract import ExtractOptions, extract  # noqa: E402
from migue.pipeline.extraction.modalities import MODALITIES  # noqa: E402
from migue.pipeline.extraction.onepass import extract_videos  # noqa: E402
from migue.pipeline.extraction.unit_inputs import UnitInputs  # noqa: E402
from migue.synth.sample import write_sample  # noqa: E402

VIDEO = ("rgb", "context", "face")


def make_footage(work: Path, args: argparse.Namespace) -> tuple[list[str], dict]:
    """The sample, and its first `--use-videos` videos (the timed ones) made broadcast-hard."""
    write_sample(work / "data", videos=args.videos, frames=args.frames, width=args.width, height=args.height)
    chosen = sorted(p.stem for p in (work / "data").rglob("*.mp4"))[:args.use_videos]
    paths = sorted(p for p in (work / "data").rglob("*.mp4") if p.stem in chosen)
    t = time.perf_counter()
    ctx = mp.get_context("forkserver")  # never fork this process (it may hold CUDA)
    with ProcessPoolExecutor(max_workers=min(len(paths), cpu_count()), mp_context=ctx) as pool:
        list(pool.map(partial(roughen, gop=args.gop, crf=args.crf), paths, range(len(paths))))
    fps, frames = bare_decode_fps(paths)
    info = {"videos": len(paths), "frames": frames, "width": args.width, "height": args.height, "gop": args.gop,
            "bitrate_mbps": bitrate_mbps(paths), "bare_decode_fps": fps,
            "encode_s": time.perf_counter() - t}
    return chosen, info


def bare_forward(opts: ExtractOptions, built, manifest, units, batch: int, parsed_dir: Path) -> float:
    """units/s of the model alone on batches decoded beforehand."""
    model, mod = built, MODALITIES[opts.modality]
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    data = UnitInputs(units, manifest.videos, mod, mod.input_config(opts), parsed_dir)
    arrays = [data[i][1] for i in range(len(units))]
    batches = [torch.from_numpy(np.stack(arrays[i:i + batch])) for i in range(0, len(arrays), batch)]
    _forward(model, batches[0], device, precision)  # warm-up
    _sync(device)
    t = time.perf_counter()
    for b in batches:
        _forward(model, b, device, precision)
    _sync(device)
    return len(units) / (time.perf_counter() - t)


class GpuBusy:
    """Share of nvidia-smi's 100 ms samples in which the GPU was busy, over a block (None: no GPU)."""

    def __enter__(self) -> "GpuBusy":
        self.share = None
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "100", "-i", "0"], stdout=subprocess.PIPE, text=True)
        except OSError:
            self.proc = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        samples = [float(x) for x in out.split() if x.replace(".", "").isdigit()]
        self.share = sum(samples) / len(samples) / 100 if samples else None


def timed(fn, *a, **kw):
    """(result, seconds, GPU busy share or None)."""
    with GpuBusy() as busy:
        t = time.perf_counter()
        out = fn(*a, **kw)
        _sync(torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        seconds = time.perf_counter() - t
    return out, seconds, busy.share


def decode_only(manifest, options: list[ExtractOptions], built: dict, workers: int, root: Path,
                parsed_dir: Path) -> dict:
    """migue's decode side alone: the one pass's jobs through the pool, no model (frames/s)."""
    from migue.pipeline.extraction.onepass import _jobs, _ModalityRun, _Pass
    from migue.pipeline.extraction.plan import plan_extraction, request
    from migue.pipeline.extraction.summary import Progress

    device = torch.device("cpu")
    store = FeatureStore(root)
    plan = plan_extraction(manifest, store, [request(o) for o in options])
    runs = {e.name: _ModalityRun(e, store, built[e.request.options.modality], device) for e in plan.entries}
    step = _Pass(runs, bar=_NoBar(), progress=Progress(plan.pending))
    with DecodePool(workers) as pool:
        t = time.perf_counter()
        count = sum(1 for item in pool.decode(_jobs(manifest, runs, parsed_dir, None, step, [0]))
                    if item.array is not None)
        seconds = time.perf_counter() - t
    step.close(ok=False)  # releases the claims; nothing was forwarded
    frames = pool.totals.frames_decoded
    return {"seconds": seconds, "units": count, "frames_decoded": frames, "fps": frames / seconds,
            "frames_in_videos": pool.totals.frames_in_videos}


class _NoBar:
    def update(self, n: int) -> None:
        pass


def mmaction_baseline(units, manifest, arch: str, frames: int, size: int, device: str, work: Path) -> float:
    """clips/s of mmaction2's inference_recognizer over 720p clip files, float32, its PyAV pipeline."""
    from migue.extractors import compat

    compat.apply()
    from mmaction.apis import inference_recognizer, init_recognizer
    from mmengine import Config

    work.mkdir(exist_ok=True)
    clips = []
    for unit in units:  # the obvious alternative works on one file per clip: cut them first (not timed)
        video = manifest.videos[unit.video_id]
        path = work / f"{unit.unit_id.replace(':', '_')}.mp4"
        _write_clip(path, read_frames(video.video_path, np.arange(unit.start, unit.end + 1)))
        clips.append(str(path))
    cfg = Config(dict(
        model=dict(type="Recognizer3D", backbone=dict(type="MViT", arch=arch, spatial_size=size,
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


def _warm_fork_server(workers: int) -> None:
    """Start the fork server once (a real run pays it once per dataset, not per modality)."""
    with DecodePool(workers) as pool:
        list(pool.decode([]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=400, help="frames per generated video")
    parser.add_argument("--use-videos", type=int, default=4, help="videos whose units are timed")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--gop", type=int, default=250)
    parser.add_argument("--crf", type=int, default=26)
    parser.add_argument("--modalities", default=",".join(VIDEO))
    parser.add_argument("--arch", default="small")
    parser.add_argument("--mvit-frames", type=int, default=16, help="frames per rgb/context unit")
    parser.add_argument("--mvit-size", type=int, default=224, help="rgb/context input side")
    parser.add_argument("--batch-size", type=int, default=None, help="default: migue's auto batch size")
    parser.add_argument("--workers", type=int, default=cpu_count(), help="decoding processes (default: cores)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--mvit-precision", default="bf16")
    parser.add_argument("--face-precision", default="auto")
    parser.add_argument("--no-baseline", action="store_true", help="skip mmaction2's inference_recognizer")
    parser.add_argument("--no-fp32", action="store_true", help="skip the float32 rgb run")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--max-seconds", type=float, default=0,
                        help="print every thread's stack and exit after this long (a hang shows where it is)")
    args = parser.parse_args()
    if args.max_seconds:
        faulthandler.dump_traceback_later(args.max_seconds, exit=True)
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="migue-speed-"))
    print(f"load average {os.getloadavg()[0]:.1f} on {cpu_count()} cores; making the footage in {work}", flush=True)
    chosen, footage = make_footage(work, args)  # before anything touches CUDA
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}", flush=True)
    print(f"footage: {footage['videos']} videos, {footage['frames']} frames {args.width}x{args.height}, GOP "
          f"{args.gop}: {footage['bitrate_mbps']:.1f} Mbit/s, bare PyAV decode {footage['bare_decode_fps']:.0f} fps "
          f"(real 720p25 broadcast H.264: about 2-8 Mbit/s)", flush=True)
    manifest = read_dataset(work / "data")
    only = {u.unit_id for u in manifest.units if u.video_id in chosen}
    _warm_fork_server(args.workers)
    results: dict = {"device": name, "footage": footage, "workers": args.workers, "modalities": {}}
    names = args.modalities.split(",")
    options, built, separate = {}, {}, {}
    print(f"{'modality':<9} {'units':>5} {'batch':>5} {'precision':<9} {'bare units/s':>13} "
          f"{'extract units/s':>16} {'ratio':>7}  (target >= 0.9)", flush=True)
    for m in names:
        precision = args.mvit_precision if MODALITIES[m].extractor == "mvit" else args.face_precision
        mvit = MODALITIES[m].extractor == "mvit"
        opts = ExtractOptions(modality=m, arch=args.arch, batch_size=args.batch_size, workers=args.workers,
                              device=args.device, precision=precision, frames=args.mvit_frames if mvit else None,
                              size=args.mvit_size if mvit else None)
        built[m] = build_model(opts)
        built[m].to(device)
        units = [u for u in manifest.of_kind(MODALITIES[m].unit_kind) if u.unit_id in only]
        report, seconds, busy = timed(extract, manifest, FeatureStore(work / f"alone-{m}"), opts, only=only,
                                      model=built[m])
        assert report.extracted == len(units), report.failures
        bare = bare_forward(opts, built[m], manifest, units, report.batch_size, work / f"alone-{m}" / "parsed")
        ours = len(units) / seconds
        shown = resolve_precision(precision, device)
        options[m], separate[m] = replace(opts, batch_size=report.batch_size), seconds
        fps = report.decode.frames_decoded / seconds
        print(f"{m:<9} {len(units):>5} {report.batch_size:>5} {shown:<9} {bare:>13.2f} {ours:>16.2f} "
              f"{ours / bare:>7.2f}  decode {fps:.0f} fps" + (f", GPU busy {busy:.0%}" if busy is not None else ""),
              flush=True)
        results["modalities"][f"{m}/{shown}"] = {"units": len(units), "batch": report.batch_size, "bare": bare,
                                                 "extract": ours, "ratio": ours / bare, "seconds": seconds,
                                                 "frames_decoded": report.decode.frames_decoded,
                                                 "decode_fps": fps, "gpu_busy": busy}
    video_names = [m for m in names if m in VIDEO]
    if len(video_names) > 1:
        one, seconds, busy = timed(extract_videos, manifest, FeatureStore(work / "one-pass"),
                             [options[m] for m in video_names], only=only, built=built)
        totals = one[video_names[0]].decode
        apart = sum(separate[m] for m in video_names)
        share = totals.frames_decoded / totals.frames_in_videos
        print(f"one pass {'+'.join(video_names)}: {seconds:.1f} s vs separate runs {apart:.1f} s: "
              f"{apart / seconds:.2f}x (target >= 1.5x); frames decoded / frames in the videos "
              f"{totals.frames_decoded}/{totals.frames_in_videos} = {share:.2f} (target <= 1.1)"
              + (f"; GPU busy {busy:.0%}" if busy is not None else ""), flush=True)
        parsed = work / "one-pass" / "parsed"
        dec_one = decode_only(manifest, [options[m] for m in video_names], built, args.workers, work / "dec-one",
                              parsed)
        dec_apart = [decode_only(manifest, [options[m]], built, args.workers, work / f"dec-{m}", parsed)
                     for m in video_names]
        apart_s = sum(d["seconds"] for d in dec_apart)
        print(f"decode side alone: one pass {dec_one['seconds']:.1f} s vs separate {apart_s:.1f} s "
              f"({apart_s / dec_one['seconds']:.2f}x); migue decode {dec_one['fps']:.0f} fps with {args.workers} "
              f"workers (decode + scale + cut + shared memory) vs bare PyAV decode {footage['bare_decode_fps']:.0f} "
              f"fps ({dec_one['fps'] / footage['bare_decode_fps']:.2f})", flush=True)
        results["one_pass"] = {"seconds": seconds, "gpu_busy": busy, "separate_seconds": apart, "speedup": apart / seconds,
                               "frames_decoded": totals.frames_decoded, "frames_in_videos": totals.frames_in_videos,
                               "decode_only": dec_one, "decode_only_separate_seconds": apart_s}
    if not args.no_baseline and "rgb" in names:
        units = [u for u in manifest.of_kind("mg") if u.unit_id in only]
        base = mmaction_baseline(units, manifest, args.arch, args.mvit_frames, args.mvit_size, args.device,
                                 work / "clips")
        ours = {resolve_precision(args.mvit_precision, device): len(units) / separate["rgb"]}
        if not args.no_fp32 and "fp32" not in ours:
            fp32 = replace(options["rgb"], precision="fp32")
            report, seconds, _ = timed(extract, manifest, FeatureStore(work / "rgb-fp32"), fp32, only=only,
                                    model=built["rgb"])
            ours["fp32"] = len(units) / seconds
        print(f"mmaction2 inference_recognizer loop (fp32, 720p clip files): {base:.2f} clips/s", flush=True)
        for p, v in ours.items():
            print(f"migue extract rgb {p}: {v:.2f} clips/s = {v / base:.2f}x"
                  + ("  (target >= 2x)" if p == "bf16" else ""), flush=True)
        results["mmaction_inference_recognizer"] = {"clips_per_s": base, "migue": ours}
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
