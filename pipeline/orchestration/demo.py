"""`migue demo`: the whole job on the built-in synthetic sample, with one summary table."""
from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from migue.cache import FeatureStore

from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.decode_pool import cpu_count as cpu_threads
from migue.pipeline.extraction.modalities import get_modality
from migue.pipeline.extraction.onepass import execute_plan
from migue.pipeline.extraction.options import ExtractOptions
from migue.pipeline.extraction.plan import plan_extraction, request
from migue.pipeline.extraction.summary import ExtractSummary
from migue.synth.sample import write_sample
from .entries import head_roles, select_entries

log = logging.getLogger("migue.demo")

# Small enough for 2 CPU cores: the synthetic frames are 160x120, so 112px inputs lose nothing.
# Each modality's options of the demo's one extraction plan.
DEMO_EXTRACT = {
    "rgb": {"size": 112, "frames": 16},
    "context": {"size": 112, "frames": 16},
    "pose": {"frames": 32},
    "face": {"frames": 4},
}
# --quick: half the frames of every video modality's units (rgb and context 8, face 2); pose as is
QUICK_EXTRACT = {m: {**o, "frames": o["frames"] // 2} if get_modality(m).takes else o
                 for m, o in DEMO_EXTRACT.items()}
DEMO_RUNS = (  # (task, head)
    ("mg", "cmtf"),
    ("mg", "probe-linear-rgb"),
    ("mg", "probe-linear-pose-joint"),
    ("emotion", "interfusion"),
    ("emotion", "probe-linear-face"),
    ("emotion", "probe-linear-context"),
)


DEMO_VIDEOS = 30  # ~7 training clips per MG class: the fewest at which 32 classes are learnable
# The online track on its own small SMG sample (long skeleton sequences with planted gestures): dense
# pose windows of 32 frames every 8, 8 frames fed to 2s-AGCN, then the detection head for 80 epochs.
# Measured on the idle 2-core machine: 10 sequences of 600 frames (8 gestures each, 750 windows), pose
# 13 s, training 14 s, test F1@0.3 0.78 (40 epochs: 0.33; 4 sequences of 480 frames: 0.00).
DEMO_ONLINE = {"videos": 10, "frames": 600, "gestures": 8, "window": 32, "stride": 8, "pose_frames": 8,
               "config": {"head": "detect", "window_pool": "space", "batch_size": 1, "lr": 0.005, "epochs": 80}}


def run_demo(workdir: Path, videos: int = DEMO_VIDEOS, arch: str = "small", epochs: int | None = None,
             seed: int = 0, quick: bool = False) -> pd.DataFrame:
    """Synth -> extract rgb, pose, context, face -> train heads -> summary.{md,json} in `workdir`; then
    the online track on its own small SMG sample (one line: dense pose windows, the detection head)."""
    workdir = Path(workdir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    stage = _Stages(2 + len(DEMO_RUNS) + 2, t0)
    stage(f"synth a sample of {videos} videos")
    data_dir = workdir / "data"
    if not (data_dir / "README.txt").exists():  # written last: the sample is complete
        write_sample(data_dir, videos=videos, seed=seed)
    timings["synth"] = time.perf_counter() - t0
    manifest = read_dataset(data_dir)
    if manifest.problems:
        raise RuntimeError("the generated sample has problems:\n" + "\n".join(manifest.problems))
    store = FeatureStore(workdir / "cache")
    workers = min(2, cpu_threads())
    stage(f"extract rgb, context, pose and face in one pass ({len(manifest.units)} units; rate and ETA below)")
    t = time.perf_counter()
    plan = plan_extraction(manifest, store, [request(ExtractOptions(modality=modality, arch=arch, workers=workers,
                                                                    **overrides))
                                             for modality, overrides in (QUICK_EXTRACT if quick else DEMO_EXTRACT).items()])
    run = execute_plan(plan, store)  # one pass: each video decoded once for rgb, context and face
    for name, report in run.reports.items():
        if report.failures:
            raise RuntimeError(f"{name}: {len(report.failures)} units failed: {report.failures}")
    print(f"extract: {run.summary.line()}")
    timings["extract"] = time.perf_counter() - t
    from migue.fusion.runs import train_run

    rows = []
    for task, head in DEMO_RUNS:
        stage(f"train {head} ({task}; a bar or log line per epoch below)")
        t = time.perf_counter()
        config: dict[str, Any] = {"head": head, "seed": seed}
        if epochs is not None:
            config["epochs"] = epochs
        entries = select_entries(store, task, roles=head_roles(task, config), head=head)
        metrics = train_run(task, entries, workdir / "runs" / f"{task}-{head}", config)
        timings[f"train {task} {head}"] = time.perf_counter() - t
        rows.append({"task": task, "head": head, **_headline(task, metrics)})
    rows.append(_online(workdir, arch, seed, epochs, timings, stage))
    timings["total"] = time.perf_counter() - t0
    summary = pd.DataFrame(rows)
    _write_summary(workdir, summary, timings, manifest, run.summary)
    print("\n" + _tables(summary))
    print(f"\ndemo finished in {timings['total']:.0f} s; summary in {workdir / 'summary.md'}")
    return summary


def _online(workdir: Path, arch: str, seed: int, epochs: int | None, timings: dict[str, float],
            stage: Callable[[str], None]) -> dict[str, Any]:
    """The online track's one line: synth SMG -> dense pose windows -> the detection head (its own
    sample and cache folder in `workdir`: smg/, cache/ shared, runs/online-detect)."""
    from migue.fusion.runs import train_run
    from migue.synth.smg import write_smg

    stage("online track: synth SMG sequences, extract dense pose windows")
    t = time.perf_counter()
    data_dir = workdir / "smg"
    if not any(data_dir.glob("*/*_finelabels.csv")):
        write_smg(data_dir, videos=DEMO_ONLINE["videos"], seed=seed, frames=DEMO_ONLINE["frames"],
                  gestures=DEMO_ONLINE["gestures"])
    grid = (DEMO_ONLINE["window"], DEMO_ONLINE["stride"])
    manifest = read_dataset(data_dir, dense=grid)
    store = FeatureStore(workdir / "cache")
    options = ExtractOptions(modality="pose", arch=arch, workers=0, frames=DEMO_ONLINE["pose_frames"],
                             layout=manifest.joint_layout or "kinect25",  # the release's own joints
                             unit_kind="dense", dense_window=grid[0], dense_stride=grid[1])
    run = execute_plan(plan_extraction(manifest, store, [request(options)]), store)
    for name, report in run.reports.items():
        if report.failures:
            first = next(iter(report.failures.items()))
            raise RuntimeError(f"{name}: {len(report.failures)} units failed, e.g. {first[0]}: {first[1]}")
    print(f"extract (online): {run.summary.line()}")
    timings["extract online pose@dense"] = time.perf_counter() - t
    stage("online track: train the detection head")
    t = time.perf_counter()
    config: dict[str, Any] = {**DEMO_ONLINE["config"], "seed": seed}
    if epochs is not None:
        config["epochs"] = epochs
    entries = select_entries(store, "online", roles=head_roles("online", config), head=config["head"])
    metrics = train_run("online", entries, workdir / "runs" / "online-detect", config)
    timings["train online detect"] = time.perf_counter() - t
    return {"task": "online", "head": config["head"], **_headline("online", metrics)}


class _Stages:
    """Prints `demo [k/N] what (elapsed so far)` as each stage starts: where a long demo is, at a glance
    (each stage shows its own rate and ETA: extract after its first batch, training per epoch)."""

    def __init__(self, total: int, started: float) -> None:
        self.total, self.started, self.done = total, started, 0

    def __call__(self, what: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        print(f"demo [{self.done}/{self.total}] {what} ({elapsed:.0f} s elapsed)", flush=True)


def _tables(summary: pd.DataFrame) -> str:
    """One Markdown table per task (in the order of the runs), each with its own metric columns."""
    from migue.fusion.tasks import get_task

    parts = []
    for task in dict.fromkeys(summary["task"]):
        table = summary[summary["task"] == task].dropna(axis=1, how="all").drop(columns="task")
        parts.append(f"### {get_task(task).heading}\n\n" + table.to_markdown(index=False, floatfmt=".3f"))
    return "\n\n".join(parts)


def _headline(task: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The task's metrics on test (mg: top-1, top-5, macro-F1), then chance on its first one."""
    from migue.fusion.metrics import LABELS
    from migue.fusion.tasks import get_task

    test, names = metrics["test"], get_task(task).metrics
    row = {f"test {LABELS.get(m, m)}": test.get(m, float("nan")) for m in names}
    if "chance" not in metrics:  # a task without a chance level (online: segments, not items)
        return row
    return {**row, f"chance {LABELS.get(names[0], names[0])}": _chance(metrics["chance"])}


def _chance(chance: dict[str, Any]) -> float:
    """The better of uniform guessing and always answering the training majority class, on test."""
    majority = chance.get("majority")
    return max(chance["uniform"], majority) if majority is not None and majority == majority else chance["uniform"]


def _write_summary(workdir: Path, summary: pd.DataFrame, timings: dict[str, float], manifest: Any,
                   extracted: ExtractSummary) -> None:
    machine = {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": cpu_threads(),
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    (workdir / "summary.md").write_text(
        "# migue demo\n\nSynthetic sample, random-weight backbones (no pretrained checkpoints).\n\n"
        + _tables(summary)
        + f"\n\nExtract (one pass): {extracted.line()}"
        + "\n\n## Time (s)\n\n" + "\n".join(f"- {k}: {v:.1f}" for k, v in timings.items()) + "\n")
    (workdir / "summary.json").write_text(json.dumps(
        {"results": summary.to_dict(orient="records"), "timings_s": timings, "machine": machine,
         "extract": asdict(extracted),
         "units": {"mg": len(manifest.of_kind("mg")), "window": len(manifest.of_kind("window"))}},
        indent=1, default=str))
