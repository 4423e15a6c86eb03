"""`emotion`: win or lose per long video (MiGA Track 3), from the windows tiling it."""
from __future__ import annotations

from migue.cache import COLUMN, WINDOW_KIND
from migue.cache.labels import EMOTION_CLASS_NAMES

from .base import SubmissionFormat, Task, register_task

EMOTION = register_task(Task(
    name="emotion",
    description="emotion (win/lose) per video from its windows (MiGA Track 3)",
    title="Emotion (win/lose per video), test split",
    unit_kind=WINDOW_KIND,
    items="video",
    labels=COLUMN.emotion,
    class_names=EMOTION_CLASS_NAMES,  # 0 lose, 1 win: the positive class is the second
    loss="binary-cross-entropy",
    metrics=("accuracy", "f1", "roc_auc"),
    default_head="interfusion",
    modalities=("face", "context"),
    streams=("face", "context"),
    figures=("curves", "confusion", "per_class"),
    submissions={"miga": SubmissionFormat("miga-track3", "Track 3", "submission.csv", ("video_id", "label"),
                                          "test video")},
))
