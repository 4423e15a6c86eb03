"""`migue demo`: the whole job on the built-in synthetic sample, with one summary table."""
from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from migue.cache import FeatureStore

from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.decode_pool import cpu_count as cpu_threads
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.synth.sample import write_sample
from .entries import head_roles, select_entries

log = logging.getLogger("migue.demo")

# Small enough for 2 CPU cores: the synthetic frames are 160x120, so 112px inputs lose nothing.
DEMO_EXTRACT = {
    "rgb": {"size": 112, "frames": 16},
    "context": {"size": 112, "frames": 16},
    "pose": {"frames": 32},
    "face": {"frames": 4},
}
# --quick: half the frames of every video modality's units (rgb and context 8, face 2); pose as is
QUICK_EXTRACT = {m: {**o, "frames": o["frames"] // 2} if m != "pose" else o for m, o in DEMO_EXTRACT.items()}
DEMO_RUNS = (  # (task, head)
    ("mg", "cmtf"),
    ("mg", "probe-linear-rgb"),
    ("mg", "probe-linear-pose-joint"),
    ("emotion", "interfusion"),
    ("emotion", "probe-linear-face"),
    ("emotion", "probe-linear-context"),
)


DEMO_VIDEOS = 30  # ~7 training clips per MG class: the fewest at which 32 classes are learnable


def run_demo(workdir: Path, videos: int = DEMO_VIDEOS, arch: str = "small", epochs: int | None = None,
             seed: int = 0, quick: bool = False) -> pd.DataFrame:
    """Synth -> extract rgb, pose, context, face -> train heads -> summary.{md,json} in `workdir`."""
    workdir = Path(workdir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data_dir = workdir / "data"
    if not (data_dir / "README.txt").exists():  # written last: the sample is complete
        write_sample(data_dir, videos=videos, seed=seed)
    timings["synth"] = time.perf_counter() - t0
    manifest = read_dataset(data_dir)
    if manifest.problems:
        raise RuntimeError("the generated sample has problems:\n" + "\n".join(manifest.problems))
    store = FeatureStore(workdir / "cache")
    workers = min(2, cpu_threads())
    for modality, overrides in (QUICK_EXTRACT if quick else DEMO_EXTRACT).items():
        t = time.perf_counter()
        report = extract(manifest, store, ExtractOptions(modality=modality, arch=arch, workers=workers,
                                                         **overrides))
        if report.failures:
            raise RuntimeError(f"{modality}: {len(report.failures)} units failed: {report.failures}")
        timings[f"extract {modality}"] = time.perf_counter() - t
    from migue.fusion.runs import train_run

    rows = []
    for task, head in DEMO_RUNS:
        t = time.perf_counter()
        config: dict[str, Any] = {"head": head, "seed": seed}
        if epochs is not None:
            config["epochs"] = epochs
        entries = select_entries(store, task, roles=head_roles(task, config), head=head)
        metrics = train_run(task, entries, workdir / "runs" / f"{task}-{head}", config)
        timings[f"train {task} {head}"] = time.perf_counter() - t
        rows.append({"task": task, "head": head, **_headline(task, metrics)})
    timings["total"] = time.perf_counter() - t0
    summary = pd.DataFrame(rows)
    _write_summary(workdir, summary, timings, manifest)
    print("\n" + _tables(summary))
    print(f"\ndemo finished in {timings['total']:.0f} s; summary in {workdir / 'summary.md'}")
    return summary


def _tables(summary: pd.DataFrame) -> str:
    """One Markdown table per task, each with its own metric columns."""
    parts = []
    for task, title in (("mg", "Micro-gesture classification (32 classes), test split"),
                        ("emotion", "Emotion (win/lose per video), test split")):
        table = summary[summary["task"] == task].dropna(axis=1, how="all").drop(columns="task")
        parts.append(f"### {title}\n\n" + table.to_markdown(index=False, floatfmt=".3f"))
    return "\n\n".join(parts)


def _headline(task: str, metrics: dict[str, Any]) -> dict[str, float]:
    test = metrics["test"]
    if task == "mg":
        return {"test top-1": test["top1"], "test top-5": test["top5"], "test macro-F1": test["macro_f1"],
                "chance top-1": _chance(metrics["chance"])}
    return {"test accuracy": test["accuracy"], "test F1": test["f1"], "test ROC-AUC": test["roc_auc"],
            "chance accuracy": _chance(metrics["chance"])}


def _chance(chance: dict[str, Any]) -> float:
    """The better of uniform guessing and always answering the training majority class, on test."""
    majority = chance.get("majority")
    return max(chance["uniform"], majority) if majority is not None and majority == majority else chance["uniform"]


def _write_summary(workdir: Path, summary: pd.DataFrame, timings: dict[str, float], manifest: Any) -> None:
    machine = {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": cpu_threads(),
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    (workdir / "summary.md").write_text(
        "# migue demo\n\nSynthetic sample, random-weight backbones (no pretrained checkpoints).\n\n"
        + _tables(summary)
        + "\n\n## Time (s)\n\n" + "\n".join(f"- {k}: {v:.1f}" for k, v in timings.items()) + "\n")
    (workdir / "summary.json").write_text(json.dumps(
        {"results": summary.to_dict(orient="records"), "timings_s": timings, "machine": machine,
         "units": {"mg": len(manifest.of_kind("mg")), "window": len(manifest.of_kind("window"))}},
        indent=1, default=str))
