"""`mg`: micro-gesture classification of trimmed clips (MiGA Track 1), 32 iMiGUE classes."""
from __future__ import annotations

from migue.cache import COLUMN, MG_KIND
from migue.cache.labels import MG_CLASS_NAMES

from .base import SubmissionFormat, Task, register_task

MG = register_task(Task(
    name="mg",
    description="micro-gesture classification of labelled clips (MiGA Track 1)",
    title=f"Micro-gesture classification ({len(MG_CLASS_NAMES)} classes), test split",
    unit_kind=MG_KIND,
    items="clip",
    labels=COLUMN.mg_label,
    class_names=MG_CLASS_NAMES,
    loss="cross-entropy",
    metrics=("top1", "top5", "macro_f1"),
    details=("per_class_accuracy",),
    default_head="cmtf",
    modalities=("rgb", "pose"),
    streams=("rgb", "joint", "bone"),
    figures=("curves", "confusion", "per_class"),
    # Target is the 0-based class index (raw 1 -> 0, raw 99 -> 31): see submission.track1_target
    submissions={"miga": SubmissionFormat("miga-track1", "Track 1", "prediction.csv", ("Id", "Target"),
                                          "test clip")},
))
