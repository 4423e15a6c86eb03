"""Task metrics, computed with scikit-learn. An undefined value is NaN with a note, never a crash.

Each metric is a named function of (labels, probabilities, predictions, classes); a task names the
ones it reports (`Task.metrics`, `Task.details`), and its loss says how logits become
probabilities: softmax over classes, or one sigmoid (the second class) for a binary task.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit, softmax
import pandas as pd
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, log_loss, precision_recall_fscore_support,
                             recall_score, roc_auc_score, top_k_accuracy_score)

from .tasks import TaskNotReadyError, get_task


class Undefined(ValueError):
    """A metric that has no value on these labels; the message is the note reported with its NaN."""


def _roc_auc(labels: np.ndarray, probs: np.ndarray, preds: np.ndarray, classes: list[int]) -> float:
    if len(np.unique(labels)) < 2:
        raise Undefined(f"roc_auc undefined: the split holds only class {int(labels[0])}")
    return roc_auc_score(labels, probs)


MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray, list[int]], Any]  # (labels, probs, preds, classes)
METRICS: dict[str, MetricFn] = {
    "top1": lambda y, p, yhat, classes: accuracy_score(y, yhat),
    "top5": lambda y, p, yhat, classes: top_k_accuracy_score(y, p, k=min(5, len(classes)), labels=classes),
    "macro_f1": lambda y, p, yhat, classes: f1_score(y, yhat, average="macro", zero_division=0),
    "per_class_accuracy": lambda y, p, yhat, classes: recall_score(y, yhat, labels=classes, average=None,
                                                                   zero_division=np.nan).tolist(),
    "accuracy": lambda y, p, yhat, classes: accuracy_score(y, yhat),
    "f1": lambda y, p, yhat, classes: f1_score(y, yhat, zero_division=0),  # the positive (second) class
    "roc_auc": _roc_auc,
}
LABELS = {"top1": "top-1", "top5": "top-5", "macro_f1": "macro-F1", "accuracy": "accuracy", "f1": "F1",
          "roc_auc": "ROC-AUC"}  # how summaries name a metric (others: its key)


def _classes(task: str, num_classes: int | None) -> list[int]:
    return list(range(get_task(task).num_classes if num_classes is None else num_classes))


def probabilities(task: str, logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C); for a binary task the positive class's (N,)."""
    return expit(logits) if get_task(task).binary else softmax(logits, axis=1)


def predictions(task: str, logits: np.ndarray) -> np.ndarray:
    """Predicted class index (a binary task: 1 if its probability is >= 0.5)."""
    return (expit(logits) >= 0.5).astype(np.int64) if get_task(task).binary else logits.argmax(axis=1)


def task_metrics(task: str, labels: np.ndarray, logits: np.ndarray, num_classes: int | None = None) -> dict[str, Any]:
    """The task's metrics (mg: top1, top5, macro_f1, then loss and per_class_accuracy, recall with NaN
    for absent classes; emotion: accuracy, f1 with win positive, roc_auc, loss). Always n and notes."""
    spec = get_task(task)
    if len(labels) == 0:
        return {"n": 0, "notes": ["no labelled items in this split"]}
    unknown = [m for m in (*spec.metrics, *spec.details) if m not in METRICS]
    if unknown:
        raise TaskNotReadyError(f"task {task!r}: no metric function for {', '.join(unknown)} here "
                                  f"(known: {', '.join(METRICS)})")
    classes = _classes(task, num_classes)
    probs, preds, notes = probabilities(task, logits), predictions(task, logits), []
    out: dict[str, Any] = {"n": int(len(labels))}
    for name in (*spec.metrics, "loss", *spec.details):
        if name == "loss":
            out[name] = log_loss(labels, probs, labels=classes)
            continue
        try:
            out[name] = METRICS[name](labels, probs, preds, classes)
        except Undefined as why:
            out[name] = float("nan")
            notes.append(str(why))
    out = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in out.items()}
    out["notes"] = notes
    return out


def confusion(task: str, labels: np.ndarray, logits: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Confusion matrix (rows true, columns predicted) over all classes of the task."""
    return confusion_matrix(labels, predictions(task, logits), labels=_classes(task, num_classes))


def chance_levels(task: str, train_labels: np.ndarray, eval_labels: np.ndarray,
                  num_classes: int | None = None) -> dict[str, Any]:
    """Uniform guessing, and always predicting the training split's majority class on eval_labels."""
    majority = int(np.bincount(train_labels).argmax())
    return {"uniform": 1.0 / len(_classes(task, num_classes)),
            "majority_class": majority,
            "majority": (float(accuracy_score(eval_labels, np.full(len(eval_labels), majority)))
                         if len(eval_labels) else float("nan"))}


def per_class_table(task: str, labels: np.ndarray, logits: np.ndarray, num_classes: int | None = None) -> pd.DataFrame:
    """One row per class: its name, support (true items), predicted (items predicted as it),
    accuracy (recall: the share of its items predicted right; empty without support) and F1."""
    classes = _classes(task, num_classes)
    preds = predictions(task, logits)
    _, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=classes, zero_division=0)
    return pd.DataFrame({
        "class_index": classes, "class": get_task(task).names(len(classes)), "support": support.astype(int),
        "predicted": [int((preds == c).sum()) for c in classes],
        "accuracy": np.where(support > 0, recall, np.nan), "f1": f1})
