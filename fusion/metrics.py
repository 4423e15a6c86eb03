"""Task metrics, computed with scikit-learn. An undefined value is NaN with a note, never a crash."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, softmax
import pandas as pd
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, log_loss, precision_recall_fscore_support,
                             recall_score, roc_auc_score, top_k_accuracy_score)

from migue.cache.labels import class_names


def probabilities(task: str, logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C) for mg; win probabilities (N,) for emotion."""
    return softmax(logits, axis=1) if task == "mg" else expit(logits)


def predictions(task: str, logits: np.ndarray) -> np.ndarray:
    """Predicted class index (mg) or 0/1 (emotion, win if p >= 0.5)."""
    return logits.argmax(axis=1) if task == "mg" else (expit(logits) >= 0.5).astype(np.int64)


def task_metrics(task: str, labels: np.ndarray, logits: np.ndarray, num_classes: int = 32) -> dict[str, Any]:
    """MG: top1, top5, macro_f1, per_class_accuracy (recall; NaN for absent classes), loss.
    Emotion: accuracy, f1 (win = positive), roc_auc, loss. Always n and notes."""
    if len(labels) == 0:
        return {"n": 0, "notes": ["no labelled items in this split"]}
    probs, preds, notes = probabilities(task, logits), predictions(task, logits), []
    out: dict[str, Any] = {"n": int(len(labels))}
    if task == "mg":
        classes = list(range(num_classes))
        out.update(
            top1=accuracy_score(labels, preds),
            top5=top_k_accuracy_score(labels, probs, k=min(5, num_classes), labels=classes),
            macro_f1=f1_score(labels, preds, average="macro", zero_division=0),
            loss=log_loss(labels, probs, labels=classes),
            per_class_accuracy=recall_score(labels, preds, labels=classes, average=None,
                                            zero_division=np.nan).tolist())
    else:
        if len(np.unique(labels)) < 2:
            auc = float("nan")
            notes.append(f"roc_auc undefined: the split holds only class {int(labels[0])}")
        else:
            auc = roc_auc_score(labels, probs)
        out.update(accuracy=accuracy_score(labels, preds), f1=f1_score(labels, preds, zero_division=0),
                   roc_auc=auc, loss=log_loss(labels, probs, labels=[0, 1]))
    out = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in out.items()}
    out["notes"] = notes
    return out


def confusion(task: str, labels: np.ndarray, logits: np.ndarray, num_classes: int = 32) -> np.ndarray:
    """Confusion matrix (rows true, columns predicted) over all classes of the task."""
    classes = list(range(num_classes)) if task == "mg" else [0, 1]
    return confusion_matrix(labels, predictions(task, logits), labels=classes)


def chance_levels(task: str, train_labels: np.ndarray, eval_labels: np.ndarray,
                  num_classes: int = 32) -> dict[str, Any]:
    """Uniform guessing, and always predicting the training split's majority class on eval_labels."""
    majority = int(np.bincount(train_labels).argmax())
    return {"uniform": 1.0 / num_classes if task == "mg" else 0.5,
            "majority_class": majority,
            "majority": (float(accuracy_score(eval_labels, np.full(len(eval_labels), majority)))
                         if len(eval_labels) else float("nan"))}


def per_class_table(task: str, labels: np.ndarray, logits: np.ndarray, num_classes: int = 32) -> pd.DataFrame:
    """One row per class: its name, support (true items), predicted (items predicted as it),
    accuracy (recall: the share of its items predicted right; empty without support) and F1."""
    classes = list(range(num_classes)) if task == "mg" else [0, 1]
    preds = predictions(task, logits)
    _, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=classes, zero_division=0)
    return pd.DataFrame({
        "class_index": classes, "class": class_names(task, num_classes), "support": support.astype(int),
        "predicted": [int((preds == c).sum()) for c in classes],
        "accuracy": np.where(support > 0, recall, np.nan), "f1": f1})
