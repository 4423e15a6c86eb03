"""Run reports: JSON with NaN as null, the confusion matrix and the training curves as PNG.

Uses matplotlib's object API (Figure + Agg canvas): no pyplot state, no global backend. Every file
is published whole (temp name, fsync, rename): a kill or a full disk leaves the old file or the new."""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from migue.cache.atomic import TMP_PREFIX, atomic_write_bytes, atomic_write_text, fsync_dir
from matplotlib.figure import Figure


def jsonable(obj: Any) -> Any:
    """Nested dicts/lists with NaN and infinities as None and numpy scalars as Python ones."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


DONE_FILE = "done.json"  # written last: a run folder without a valid one is not finished
# the results of a run, each written once by `runs.write_results` (and taken away by `clear_results`)
HEAD_FILE, METRICS_FILE, HISTORY_FILE, PER_CLASS_FILE = "head.pt", "metrics.json", "history.csv", "per_class.csv"
CONFUSION_FILE, CURVES_FILE, TENSORBOARD_DIR = "confusion.png", "curves.png", "tensorboard"
RESULT_FILES = (METRICS_FILE, HEAD_FILE, HISTORY_FILE, PER_CLASS_FILE, CONFUSION_FILE, CURVES_FILE, TENSORBOARD_DIR)


def write_json(path: Path, obj: Any) -> None:
    """JSON by temp name + fsync + rename: a kill leaves the old file or the new, never half."""
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def mark_done(run_dir: Path) -> None:
    """The completion marker, written after every other result: it records metrics.json's
    size and SHA-256, so a marker over a torn or replaced metrics file does not count."""
    metrics = (run_dir / METRICS_FILE).read_bytes()
    write_json(run_dir / DONE_FILE, {"metrics_sha256": hashlib.sha256(metrics).hexdigest(),
                                     "metrics_bytes": len(metrics)})


def finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's metrics, or None when the run must be (re)run: no valid marker, or a
    metrics.json that is not the one the marker names. Never raises on torn files."""
    try:
        marker = json.loads((run_dir / DONE_FILE).read_text())
        metrics = (run_dir / METRICS_FILE).read_bytes()
        if not isinstance(marker, dict) or marker.get("metrics_sha256") != hashlib.sha256(metrics).hexdigest():
            return None
        loaded = json.loads(metrics)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def plot_confusion(matrix: np.ndarray, path: Path, title: str, names: list[str] | None = None) -> None:
    """Row-normalised confusion matrix (true class per row), its axes labelled with the class `names`."""
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    n = len(matrix)
    fig = Figure(figsize=(4.5 + 0.22 * n, 4 + 0.22 * n), layout="constrained")  # room for the names
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n))
    if names is not None:
        ax.set_xticklabels(names, rotation=90)
        ax.set_yticklabels(names)
    ax.tick_params(labelsize=6 if n > 8 else 9)
    if n <= 8:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    save_figure(fig, path)


def plot_curves(history: pd.DataFrame, path: Path, monitor: str) -> None:
    """Train and val loss per epoch, and the monitored val metric."""
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    loss_ax.plot(history["epoch"], history["train_loss"], label="train")
    if "val_loss" in history:
        loss_ax.plot(history["epoch"], history["val_loss"], label="val")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    column = f"val_{monitor}"
    if column in history:
        metric_ax.plot(history["epoch"], history[column], color="tab:green")
    metric_ax.set(xlabel="epoch", ylabel=column, title=column)
    save_figure(fig, path)


def save_figure(fig: Figure, path: Path, dpi: int = 100) -> None:
    """A figure as PNG, rendered in memory and published atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())


def write_tensorboard(history: pd.DataFrame, folder: Path) -> bool:
    """Per-epoch scalars as TensorBoard event files in `folder`, when tensorboard is installed.
    Written into a temp folder beside it, then swapped in: the old folder is renamed aside, the new
    one renamed into place, the old one removed. A `folder` that is a file or a link is refused."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; history.csv and curves.png hold the same numbers
        return False
    folder = Path(folder)
    _require_folder_or_nothing(folder)
    temp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{folder.name}-", dir=folder.parent))
    try:
        with SummaryWriter(log_dir=str(temp)) as writer:
            for row in history.to_dict(orient="records"):
                for name, value in row.items():
                    if name != "epoch" and pd.notna(value):
                        writer.add_scalar(name.replace("_", "/", 1), float(value), int(row["epoch"]))
        for event in temp.iterdir():
            fd = os.open(event, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _swap_in(temp, folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return True


def _require_folder_or_nothing(folder: Path) -> None:
    """A ValueError sentence when `folder` exists as something else than a folder (a file, a link)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        kind = "link" if folder.is_symlink() else "file"
        raise ValueError(f"{folder}: not a folder (a {kind}); TensorBoard events go in a folder of that name: "
                         "move it away or choose another --out")


def _swap_in(temp: Path, folder: Path) -> None:
    """Rename folder `temp` to `folder`: the old one aside first, removed once the new one is in."""
    aside = None
    if folder.is_dir():
        aside = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{folder.name}-old-", dir=folder.parent))
        os.replace(folder, aside)  # an empty folder of ours: a folder renames over it
    os.replace(temp, folder)
    fsync_dir(folder.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
