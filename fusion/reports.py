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
CONFUSION_CSV, CURVES_DATA = "confusion.csv", "curves.json"  # the numbers the two figures show, beside them
TIMELINE_FILE = "timeline.png"  # the online task's figure: truth and predicted gestures per sequence
RESULT_FILES = (METRICS_FILE, HEAD_FILE, HISTORY_FILE, PER_CLASS_FILE, CONFUSION_FILE, CONFUSION_CSV, CURVES_FILE,
                CURVES_DATA, TENSORBOARD_DIR)


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


CONFUSION_FONT = 9  # points, at 100 dpi: class names and counts readable without zooming
CELL_INCHES = 0.38  # one confusion cell: room for a 3-digit count at CONFUSION_FONT - 1


def plot_confusion(matrix: np.ndarray, path: Path, title: str, names: list[str] | None = None) -> None:
    """Row-normalised confusion matrix (true class per row; colour = share of that class's items),
    each cell showing its count (above 12 classes only the non-zero ones), axes named by the class
    `names`; its counts, with the names, also go to a CSV beside it (`path` with .csv: the exact
    numbers, whatever the class count).
    The figure grows with the class count, so that names and counts stay at a legible size."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    n = len(matrix)
    names = [str(k) for k in range(n)] if names is None else [str(k) for k in names]
    write_confusion_csv(matrix, path.with_suffix(".csv"), names)
    true_names = [f"{name} ({int(total)})" for name, total in zip(names, rows[:, 0])]  # with its support
    margin = 1.0 + 0.075 * max(map(len, true_names), default=1)  # inches for the longest name at CONFUSION_FONT
    side = max(CELL_INCHES * n, 3.0)
    fig = Figure(figsize=(max(side + margin + 1.6, 7.0), side + margin + 1.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).set_label("share of the true class's items")
    ax.set_title(f"{title}\nrows normalised (colour = share of the true class)\nnumbers = counts, "
                 f"n = {int(matrix.sum())}; (k) after a true class = its items", fontsize=CONFUSION_FONT + 2)
    ax.set_xlabel("predicted", fontsize=CONFUSION_FONT + 1)
    ax.set_ylabel("true (items)", fontsize=CONFUSION_FONT + 1)
    ax.set_xticks(range(n), names, rotation=90)
    ax.set_yticks(range(n), true_names)
    ax.tick_params(labelsize=CONFUSION_FONT)
    dense = n > 12
    for (i, j), count in np.ndenumerate(matrix):
        if count or not dense:  # zeros left blank when dense: a 32 x 32 grid of zeros hides the counts that matter
            ax.text(j, i, str(count), ha="center", va="center", fontsize=CONFUSION_FONT - 1 if dense else 12,
                    color="white" if norm[i, j] > 0.5 else "black")
    save_figure(fig, path)


def write_confusion_csv(matrix: np.ndarray, path: Path, names: list[str]) -> None:
    """Counts per (true class row, predicted class column), both named, with each row's total."""
    table = pd.DataFrame(np.asarray(matrix, dtype=np.int64), index=pd.Index(names, name="true / predicted"),
                         columns=names)
    table["total"] = table.sum(axis=1)
    atomic_write_text(path, table.to_csv())


def best_epoch_of(history: pd.DataFrame, monitor: str) -> int:
    """The epoch early stopping keeps: highest val `monitor` (NaN counts as worst), ties to the lower
    val loss, then the earlier epoch; without val the last epoch."""
    column = f"val_{monitor}"
    if history.empty:
        return 0
    if column not in history:
        return int(history["epoch"].iloc[-1])
    score = history[column].astype(float).fillna(-np.inf)
    loss = history["val_loss"].astype(float) if "val_loss" in history else pd.Series(0.0, index=history.index)
    order = pd.DataFrame({"score": -score, "loss": loss.fillna(np.inf), "epoch": history["epoch"]})
    return int(order.sort_values(["score", "loss", "epoch"]).iloc[0]["epoch"])


SHARE_LIMITS = (0.0, 1.05)  # the whole [0, 1] range, and room above it for a curve at 1.0


def metric_limits(values: pd.Series | np.ndarray) -> tuple[float, float]:
    """Y-limits of a metric axis: SHARE_LIMITS for shares (every value within [0, 1]), so that a flat
    1.0 reads as 1.0, not as the middle of 0.96-1.04, and runs compare by eye; else the values'
    range padded by 5% (at least 0.05) each side."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1):
        return SHARE_LIMITS
    low, high = float(finite.min()), float(finite.max())
    pad = max(0.05 * (high - low), 0.05)
    return low - pad, high + pad


def plot_curves(history: pd.DataFrame, path: Path, monitor: str, best_epoch: int | None = None,
                title: str | None = None) -> None:
    """Loss (train and val) on its own axis and the val metrics (the monitored one bold) on theirs,
    per epoch, the best epoch marked on both; what the figure shows (monitor, best epoch and its
    values, axis limits) also goes to a JSON beside it (`path` with .json).
    `best_epoch`: the one the run kept (default: `best_epoch_of` the history)."""
    best = best_epoch_of(history, monitor) if best_epoch is None else int(best_epoch)
    title = title or path.parent.name
    metrics = [c for c in history.columns if c.startswith("val_") and c != "val_loss"]
    column = f"val_{monitor}"
    at_best = history[history["epoch"] == best]
    best_row = {k: _scalar(at_best[k].iloc[0]) for k in at_best.columns} if len(at_best) else {}
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    loss_ax.plot(history["epoch"], history["train_loss"], label="train", marker="." if len(history) < 30 else None)
    if "val_loss" in history:
        loss_ax.plot(history["epoch"], history["val_loss"], label="val", marker="." if len(history) < 30 else None)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (lower is better)")
    loss_ax.set_ylim(bottom=0)
    ylim = metric_limits(history[metrics].to_numpy().ravel()) if metrics else SHARE_LIMITS
    for name in metrics:
        bold = name == column
        label = name.removeprefix("val_") + (" (monitored)" if bold else "")
        label += " (undefined: all NaN)" if history[name].isna().all() else ""
        metric_ax.plot(history["epoch"], history[name], label=label, linewidth=2.2 if bold else 1.0,
                       alpha=1.0 if bold else 0.7, marker="." if len(history) < 30 else None)
    metric_ax.set(xlabel="epoch", ylabel="val metric", ylim=ylim,
                  title="val metrics" if metrics else "no labelled val split: no val metrics")
    for ax in (loss_ax, metric_ax):
        if len(at_best):
            ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch {best}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    headline = f"{title}: best epoch {best} of {len(history)}"
    if column in best_row and best_row[column] is not None:
        headline += f" (val {monitor} {best_row[column]:.3f})"
        right = best > (history["epoch"].min() + history["epoch"].max()) / 2  # the label toward the middle
        metric_ax.annotate(f"{best_row[column]:.3f}", (best, best_row[column]), textcoords="offset points",
                           xytext=(-4 if right else 4, 6), ha="right" if right else "left", color="tab:red",
                           fontsize=9)
    fig.suptitle(headline, fontsize=12)
    save_figure(fig, path)
    write_json(path.with_suffix(".json"), {"title": title, "monitor": monitor, "best_epoch": best,
                                           "epochs_run": len(history), "best": best_row,
                                           "metric_ylim": list(ylim), "metrics": metrics})


def _scalar(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


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
