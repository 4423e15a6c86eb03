"""Stage one's steady state at 1280x720, side by side in one run (issue 21 point 5).

Footage: `migue.synth` at 1280x720 (default 12 videos x 500 frames, 17 MG clips each: 204 clips,
84 whole-video context/face windows of 64 frames), re-encoded broadcast-hard by `broadcast.py`
(texture and grain, libx264 GOP 250). On every unit of every video it times, in this order:

  decode  the one pass's jobs (every rgb, context and face unit, video by video) through migue's
          decode workers, against bare PyAV decoding of the same frames (each video from frame 0
          to the last frame migue decoded in it) with the same number of processes, and bare
          PyAV plus the RGB conversion/scaling of the needed frames (where the gap goes);
  bare    each modality's backbone alone on exactly the tensors the decode workers produced,
          same batches (batch size and chunks as the extraction cuts them), no decode, no cache;
  alone   three separate extractions (plan + execute, one modality each) into fresh caches;
  one     one extraction of rgb + context + face: each video decoded once.

It prints each video modality's extract / bare forward (target >= 0.9), the one pass vs the
three separate runs (>= 1.5x), frames decoded / frames needed in the one pass (<= 1.05) and the
decode workers' frames/s vs bare PyAV at the same worker count (>= 0.9), and per extraction where
the seconds went (planning, forward inside the run, the rest: waiting for inputs, stacking,
claims, publishing). Skeleton sheets are parsed once beforehand and found by every extraction
(as every extraction after a dataset's first finds them); input fingerprints are inside the timing.

Usage: .venv/bin/python benchmarks/steady_state.py [--small] [--device cpu|cuda]
           [--precisions bf16[,fp32]] [--decode-workers 2[,4,...]] [--profile] [--out figures.json]
"""
from __future__ import annotations

import argparse
import cProfile
import faulthandler
import contextlib
import io
import json
import logging
import multiprocessing as mp
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from broadcast import bitrate_mbps, roughen  # noqa: E402

from migue.cache import FeatureStore  # noqa: E402
from migue.common.devices import pick_device  # noqa: E402
from migue.pipeline.datasets import read_dataset  # noqa: E402
from migue.pipeline.datasets.manifest import Manifest, Unit  # noqa: E402
from migue.pipeline.extraction import onepass  # noqa: E402
from migue.pipeline.extraction.backbone import build_model, forward  # noqa: E402
from migue.pipeline.extraction.batching import resolve_batch_size  # noqa: E402
from migue.pipeline.extraction.decode_pool import DecodePool, cpu_count  # noqa: E402
from migue.pipeline.extraction.decode_worker import UnitRequest, VideoJob  # noqa: E402
from migue.pipeline.extraction.modalities import get_modality  # noqa: E402
from migue.pipeline.extraction.options import ExtractOptions  # noqa: E402
from migue.pipeline.extraction.plan import plan_extraction, request  # noqa: E402
from migue.pipeline.extraction.unit_inputs import parse_videos  # noqa: E402
from migue.pipeline.extraction.work import chunks_of  # noqa: E402
from migue.synth.sample import write_sample  # noqa: E402

VIDEO = ("rgb", "context", "face")
TARGETS = {"extract/bare": 0.9, "one pass speedup": 1.5, "decoded/needed": 1.05, "decode/bare PyAV": 0.9}


# ---------------------------------------------------------------- footage and the one pass's jobs

def make_footage(data: Path, args: argparse.Namespace) -> dict:
    """The synthetic sample at 1280x720, the timed videos re-encoded broadcast-hard (timed apart)."""
    t = time.perf_counter()
    write_sample(data, videos=args.videos, frames=args.frames, width=args.width, height=args.height,
                 clips_per_video=args.clips_per_video)
    paths = sorted(data.rglob("*.mp4"), key=lambda p: p.stem)[:args.use_videos or None]
    if not args.no_roughen:
        ctx = mp.get_context("forkserver")  # never fork this process (it may hold CUDA later)
        with ProcessPoolExecutor(max_workers=min(len(paths), cpu_count()), mp_context=ctx) as pool:
            list(pool.map(partial(roughen, gop=args.gop, crf=args.crf), paths, range(len(paths))))
    return {"videos": len(list(data.rglob("*.mp4"))), "roughened": 0 if args.no_roughen else len(paths),
            "frames_per_video": args.frames, "width": args.width, "height": args.height,
            "gop": args.gop, "bitrate_mbps": bitrate_mbps(paths), "seconds": time.perf_counter() - t}


def decode_jobs(manifest: Manifest, options: list[ExtractOptions], parsed_dir: Path,
                only: set[str]) -> list[VideoJob]:
    """The one pass's decode jobs: per video, every unit (of `only`) of every option's modality."""
    by_video: dict[str, list[UnitRequest]] = defaultdict(list)
    for opts in options:
        mod = get_modality(opts.modality)
        cfg = mod.input_config(opts)
        for u in manifest.of_kind(mod.kind(opts)):
            if u.unit_id not in only:
                continue
            video = manifest.videos[u.video_id]
            by_video[u.video_id].append(UnitRequest((opts.modality, u.unit_id), mod.takes(u, video, cfg, parsed_dir)))
    return [VideoJob(vid, str(manifest.videos[vid].video_path), manifest.videos[vid].width,
                     manifest.videos[vid].height, tuple(reqs)) for vid, reqs in sorted(by_video.items())]


def frames_needed(job: VideoJob) -> int:
    """Frames a video's units need decoded: the union over units of [first, last] frame taken
    (decoding reaches a frame only through those before it, so a unit needs its whole span)."""
    spans = sorted((min(t.index for t in r.takes), max(t.index for t in r.takes)) for r in job.requests)
    total, reach = 0, -1
    for first, last in spans:
        if last > reach:
            total += last - max(first, reach + 1) + 1
            reach = last
    return total


# ---------------------------------------------------------------- the decode side

def bare_decode(path: str, frames: int) -> int:
    """PyAV alone: the first `frames` frames of the video, threading on, nothing converted."""
    n = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            n += 1
            if n >= frames:
                break
    return n


def bare_convert(job: VideoJob) -> int:
    """PyAV plus the RGB conversion of every needed frame at every size the units take it at
    (what the decode workers must do at least); returns the frames decoded."""
    scales: dict[int, set] = defaultdict(set)
    for unit_request in job.requests:
        for take in unit_request.takes:
            scales[take.index].add(take.scale)
    last, n = max(scales), 0
    with av.open(job.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            for scale in scales.get(n, ()):
                frame.to_ndarray(format="rgb24", **({} if scale is None else {"width": scale[0], "height": scale[1]}))
            n += 1
            if n > last:
                break
    return n


def _noop(_: int) -> int:
    return 0


def bare_pool_fps(fn, items: list, workers: int) -> tuple[float, int]:
    """(frames/s, frames) of `fn` over the items in `workers` fork-server processes (started and
    warm before the clock starts)."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("forkserver")) as pool:
        list(pool.map(_noop, range(workers)))
        t = time.perf_counter()
        frames = sum(pool.map(fn, *zip(*items)))
        return frames / (time.perf_counter() - t), frames


def migue_decode(jobs: list[VideoJob], workers: int, keep: bool) -> tuple[dict, dict]:
    """migue's decode workers alone on the jobs (decode, scale, cut, shared memory, copy out):
    figures, and every unit's input when `keep` (the bare forward's tensors)."""
    arrays: dict[tuple[str, str], np.ndarray] = {}
    with DecodePool(workers) as pool:
        first = jobs[0]
        list(pool.decode([replace(first, requests=first.requests[:1])]))  # workers up and warm
        pool.totals.videos.clear()
        t = time.perf_counter()
        failed = 0
        for item in pool.decode(jobs):
            if item.array is None:
                failed += 1
            elif keep:
                arrays[item.key] = item.array
        seconds = time.perf_counter() - t
        stats = pool.totals.videos
    decoded = sum(v.frames_decoded for v in stats)
    return ({"workers": workers, "seconds": seconds, "frames_decoded": decoded, "fps": decoded / seconds,
             "failed": failed, "per_video": {v.video_id: v.frames_decoded for v in stats}}, arrays)


def decode_side(jobs: list[VideoJob], workers: int, keep: bool) -> tuple[dict, dict]:
    """migue's decode workers vs bare PyAV (and PyAV + conversion) on the same frames, `workers` each."""
    ours, arrays = migue_decode(jobs, workers, keep)
    items = [(job.path, ours["per_video"][job.video_id]) for job in jobs]
    bare_fps, bare_frames = bare_pool_fps(bare_decode, items, workers)
    conv_fps, _ = bare_pool_fps(bare_convert, [(job,) for job in jobs], workers)
    ours.update(bare_fps=bare_fps, bare_frames=bare_frames, convert_fps=conv_fps, ratio=ours["fps"] / bare_fps)
    return ours, arrays


# ---------------------------------------------------------------- forwards and extractions

def batches_of(units: list[Unit], batch: int, shard: int) -> Iterator[list[Unit]]:
    """The batches an extraction forwards: each chunk (a video's units cut every `shard`) cut every `batch`."""
    for chunk in chunks_of(units, shard):
        for i in range(0, len(chunk), batch):
            yield chunk[i:i + batch]


def bare_forward(model: torch.nn.Module, opts: ExtractOptions, units: list[Unit], arrays: dict, batch: int,
                 device: torch.device, precision: str) -> float:
    """Seconds of the backbone alone over the units' decoded tensors (stacked per batch, as the
    engine does), after one warm-up batch."""
    groups = list(batches_of(units, batch, opts.shard_size))

    def stacked(group: list[Unit]) -> torch.Tensor:
        return torch.from_numpy(np.stack([arrays[(opts.modality, u.unit_id)] for u in group]))

    forward(model, stacked(groups[0]), device, precision)
    _sync(device)
    t = time.perf_counter()
    for group in groups:
        forward(model, stacked(group), device, precision)
    _sync(device)
    return time.perf_counter() - t


@dataclass
class Timer:
    """Seconds spent inside a wrapped function (the one-pass engine's forward)."""

    seconds: float = 0.0
    calls: int = 0

    def wrap(self, fn):
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t
                self.calls += 1
        return timed


@contextlib.contextmanager
def forward_timer() -> Iterator[Timer]:
    timer, original = Timer(), onepass.forward
    onepass.forward = timer.wrap(original)
    try:
        yield timer
    finally:
        onepass.forward = original


@dataclass
class Run:
    """One extraction: seconds (plan, execute), forward seconds inside it, decode figures."""

    names: list[str]
    units: dict[str, int]
    plan_s: float
    exec_s: float
    forward_s: float
    frames_decoded: int
    batch: dict[str, int] = field(default_factory=dict)
    profile: str = ""

    @property
    def seconds(self) -> float:
        return self.plan_s + self.exec_s


def extract_run(manifest: Manifest, root: Path, options: list[ExtractOptions], built: dict, parsed: Path,
                device: torch.device, only: set[str], profile: bool = False) -> Run:
    """Plan and execute these options in one extraction into a fresh cache at `root` (the skeleton
    sheets parsed beforehand are copied in, as a dataset's later extractions find them)."""
    shutil.copytree(parsed, root / "parsed")
    store = FeatureStore(root)
    prof = cProfile.Profile() if profile else None
    with forward_timer() as timer:
        t = time.perf_counter()
        if prof:
            prof.enable()
        plan = plan_extraction(manifest, store, [request(o) for o in options], only)
        plan_s, t = time.perf_counter() - t, time.perf_counter()
        reports = onepass.execute_plan(plan, store, {o.modality: built[o.modality] for o in options}).reports
        _sync(device)
        exec_s = time.perf_counter() - t
        if prof:
            prof.disable()
    for name, report in reports.items():
        if report.failures:
            raise RuntimeError(f"{name}: {len(report.failures)} units failed, e.g. {next(iter(report.failures.items()))}")
    first = next(iter(reports.values()))
    text = ""
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
        text = out.getvalue()
    return Run(list(reports), {n: r.extracted for n, r in reports.items()}, plan_s, exec_s, timer.seconds,
               first.decode.frames_decoded if first.decode else 0, {n: r.batch_size for n, r in reports.items()},
               text)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- the run

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true",
                   help="a ~2 minute check that it all runs: the units of 2 of 8 videos x 400 frames, MViTv2-tiny 8x112")
    p.add_argument("--videos", type=int, default=12)
    p.add_argument("--frames", type=int, default=500, help="frames per generated video")
    p.add_argument("--clips-per-video", type=int, default=17)
    p.add_argument("--use-videos", type=int, default=0, help="time the units of this many videos (0: all)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--gop", type=int, default=250)
    p.add_argument("--crf", type=int, default=26)
    p.add_argument("--no-roughen", action="store_true", help="keep the flat synthetic encode (decodes ~10x faster)")
    p.add_argument("--footage", type=Path, default=None,
                   help="make the footage here, or reuse it when this folder already holds a sample")
    p.add_argument("--arch", default="small", help="MViTv2 arch of rgb and context")
    p.add_argument("--mvit-frames", type=int, default=16)
    p.add_argument("--mvit-size", type=int, default=224)
    p.add_argument("--device", default="auto")
    p.add_argument("--precisions", default=None,
                   help="comma list, each a full table (default: bf16 on CUDA and on CPUs with avx512_bf16/amx, "
                        "else fp32)")
    p.add_argument("--workers", type=int, default=cpu_count(), help="decode workers of the extractions")
    p.add_argument("--decode-workers", default=None, help="comma list of worker counts for the decode table "
                   "(default: --workers)")
    p.add_argument("--profile", action="store_true", help="cProfile each extraction (main process), print the top")
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    p.add_argument("--max-seconds", type=float, default=0,
                   help="print every thread's stack and exit after this long (a hang shows where it is)")
    args = p.parse_args()
    if args.small:
        args.videos, args.frames, args.clips_per_video, args.use_videos = 8, 400, 16, 2
        args.arch, args.mvit_frames, args.mvit_size = "tiny", 8, 112
    return args


def default_precision(device: torch.device) -> str:
    """bf16 autocast where the hardware has bf16 units (CUDA; CPUs with avx512_bf16 or AMX), else fp32."""
    if device.type == "cuda":
        return "bf16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def main() -> None:
    args = parse_args()
    if args.max_seconds:
        faulthandler.dump_traceback_later(args.max_seconds, exit=True)
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="migue-steady-"))
    load0 = os.getloadavg()
    t_all = time.perf_counter()
    print(f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on {cpu_count()} cores; work in {work}",
          flush=True)
    data = args.footage or work / "data"
    if args.footage and any(data.rglob("*.mp4")):
        paths = sorted(data.rglob("*.mp4"), key=lambda p: p.stem)[:args.use_videos or None]
        footage = {"videos": len(list(data.rglob("*.mp4"))), "reused": str(data),
                   "bitrate_mbps": bitrate_mbps(paths), "seconds": 0.0}
    else:
        footage = make_footage(data, args)  # before anything touches CUDA
    print(f"footage: {footage['videos']} videos (units of {args.use_videos or 'all'} timed) x {args.frames} frames {args.width}x{args.height}, GOP {args.gop}, "
          f"{footage['bitrate_mbps']:.1f} Mbit/s{'' if args.no_roughen else ' (roughened)'}, "
          f"made in {footage['seconds']:.0f} s", flush=True)
    device = pick_device(args.device)
    precisions = (args.precisions or default_precision(device)).split(",")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else (platform.processor() or platform.machine())
    manifest = read_dataset(data)
    parsed = work / "parsed"
    chosen = sorted(manifest.videos)[:args.use_videos or None]
    bad = parse_videos({v: "" for v in chosen}, manifest.videos, parsed)
    if bad:
        raise RuntimeError(f"skeletons that do not parse: {bad}")
    units = {m: [u for u in manifest.of_kind(get_modality(m).unit_kind) if u.video_id in chosen] for m in VIDEO}
    only = {u.unit_id for m in VIDEO for u in units[m]}
    base = {m: ExtractOptions(modality=m, arch=args.arch, workers=args.workers, device=args.device,
                              frames=args.mvit_frames if get_modality(m).extractor == "mvit" else None,
                              size=args.mvit_size if get_modality(m).extractor == "mvit" else None)
            for m in VIDEO}
    print(f"device: {name}; torch {torch.__version__}, {torch.get_num_threads()} threads; units: "
          f"{len(units['rgb'])} MG clips (rgb), {len(units['context'])} windows (context, face); "
          f"rgb/context MViTv2-{args.arch} {args.mvit_frames}x{args.mvit_size}, face SwinFace 8x112; "
          f"{args.workers} decode workers", flush=True)
    jobs = decode_jobs(manifest, list(base.values()), parsed, only)
    needed = sum(frames_needed(j) for j in jobs)
    results: dict = {"device": name, "settings": vars(args) | {"out": str(args.out)}, "footage": footage,
                     "load_start": load0, "frames_needed": needed, "decode": [], "tables": {}}

    counts = [int(n) for n in (args.decode_workers or str(args.workers)).split(",")]
    arrays: dict = {}
    print(f"\n== decode side: the one pass's jobs (rgb + context + face), {needed} frames needed", flush=True)
    print(f"{'workers':>7} {'migue fps':>10} {'bare PyAV fps':>14} {'ratio':>6}  {'PyAV+convert fps':>16}  "
          f"(target >= {TARGETS['decode/bare PyAV']})", flush=True)
    for n in sorted(set(counts) | {args.workers}):
        row, got = decode_side(jobs, n, keep=n == args.workers)
        arrays = got or arrays
        results["decode"].append({k: v for k, v in row.items() if k != "per_video"})
        print(f"{n:>7} {row['fps']:>10.0f} {row['bare_fps']:>14.0f} {row['ratio']:>6.2f}  {row['convert_fps']:>16.0f}"
              f"  ({row['frames_decoded']} frames, {row['seconds']:.1f} s)", flush=True)

    for precision in precisions:
        results["tables"][precision] = table(args, manifest, units, base, precision, arrays, parsed, work, device,
                                             needed, only)
    load1 = os.getloadavg()
    results["load_end"] = load1
    results["seconds"] = time.perf_counter() - t_all
    print(f"\nload average at the end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; whole run "
          f"{results['seconds'] / 60:.1f} min", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))


def table(args: argparse.Namespace, manifest: Manifest, units: dict, base: dict, precision: str, arrays: dict,
          parsed: Path, work: Path, device: torch.device, needed: int, only: set[str]) -> dict:
    """Bare forwards, the three separate runs and the one pass at one precision; prints the table."""
    options = {m: replace(base[m], precision=precision) for m in VIDEO}
    built = {m: build_model(options[m]).to(device) for m in VIDEO}
    for m in VIDEO:  # the batch size an extraction resolves (auto), fixed for every variant
        sample = arrays[(m, units[m][0].unit_id)]
        options[m] = replace(options[m], batch_size=resolve_batch_size(options[m], built[m], device, precision,
                                                                       sample))
    out: dict = {"modalities": {}}
    print(f"\n== {precision}: bare forward vs extraction of one modality (same tensors, same batches)", flush=True)
    print(f"{'modality':<8} {'units':>5} {'batch':>5} {'bare u/s':>9} {'extract u/s':>12} {'ratio':>6}  "
          f"{'plan s':>6} {'fwd in run s':>12} {'bare fwd s':>10} {'rest s':>7}  (target >= {TARGETS['extract/bare']})",
          flush=True)
    alone: dict[str, Run] = {}
    for m in VIDEO:
        bare_s = bare_forward(built[m], options[m], units[m], arrays, options[m].batch_size, device, precision)
        run = extract_run(manifest, work / f"{precision}-alone-{m}", [options[m]], built, parsed, device, only,
                          args.profile)
        alone[m] = run
        n = len(units[m])
        bare, ours = n / bare_s, run.units[m] / run.seconds
        rest = run.exec_s - run.forward_s
        out["modalities"][m] = {"units": n, "batch": options[m].batch_size, "bare_units_s": bare, "extract_units_s": ours,
                                "ratio": ours / bare, "seconds": run.seconds, "plan_s": run.plan_s,
                                "forward_in_run_s": run.forward_s, "bare_forward_s": bare_s, "rest_s": rest,
                                "frames_decoded": run.frames_decoded}
        print(f"{m:<8} {n:>5} {options[m].batch_size:>5} {bare:>9.2f} {ours:>12.2f} {ours / bare:>6.2f}  "
              f"{run.plan_s:>6.1f} {run.forward_s:>12.1f} {bare_s:>10.1f} {rest:>7.1f}", flush=True)
        if run.profile:
            print(run.profile, flush=True)
    one = extract_run(manifest, work / f"{precision}-one", [options[m] for m in VIDEO], built, parsed, device, only,
                      args.profile)
    apart = sum(r.seconds for r in alone.values())
    bare_total = sum(v["bare_forward_s"] for v in out["modalities"].values())
    out["one_pass"] = {"seconds": one.seconds, "plan_s": one.plan_s, "forward_in_run_s": one.forward_s,
                       "separate_seconds": apart, "speedup": apart / one.seconds, "frames_decoded": one.frames_decoded,
                       "frames_needed": needed, "decoded_over_needed": one.frames_decoded / needed,
                       "bare_forward_total_s": bare_total, "vs_bare_total": bare_total / one.seconds}
    print(f"one pass rgb+context+face: {one.seconds:.1f} s (plan {one.plan_s:.1f}, forward in run {one.forward_s:.1f}, "
          f"the three bare forwards {bare_total:.1f} s: {bare_total / one.seconds:.2f} of the one pass's rate)", flush=True)
    print(f"three separate runs {apart:.1f} s / one pass {one.seconds:.1f} s = {apart / one.seconds:.2f}x "
          f"(target >= {TARGETS['one pass speedup']}x)", flush=True)
    print(f"frames decoded / frames needed (one pass) {one.frames_decoded}/{needed} = "
          f"{one.frames_decoded / needed:.3f} (target <= {TARGETS['decoded/needed']}); separate runs decoded "
          f"{sum(r.frames_decoded for r in alone.values())}", flush=True)
    if one.profile:
        print(one.profile, flush=True)
    return out


if __name__ == "__main__":
    main()
