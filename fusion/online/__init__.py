"""Online micro-gesture recognition (MiGA Track 2) without a model: the metric (`score`), steps <->
segments (`segments`), segment files (`files`), the timeline figure (`timeline`), the probe baseline
(`baseline`) and synthetic sequences (`synthetic`). The detection head is `fusion/detection.py`.

    from migue.fusion.online import score_files
    score_files("pred.csv", "truth.csv", iou=0.3, matching="strict")   # {'precision': ..., 'f1': ...}
"""
from .files import SegmentFileError, read_segments, score_files, write_csv, write_miga
from .score import MATCHING, Segment, mean_average_precision, metrics_table, online_metrics, score_segments, tiou
from .segments import DECODE_KEYS, DecodeSettings, StepGrid, decode_steps, encode_targets, merge_steps, nms

__all__ = ["DECODE_KEYS", "MATCHING", "DecodeSettings", "Segment", "SegmentFileError", "StepGrid", "decode_steps",
           "encode_targets", "mean_average_precision", "merge_steps", "metrics_table", "nms", "online_metrics",
           "read_segments", "score_files", "score_segments", "tiou", "write_csv", "write_miga"]
