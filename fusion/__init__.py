"""Stage two: light fusion heads trained over the feature cache (depends only on migue.cache).

    from migue.fusion import train_run, evaluate_run, list_heads
    metrics = train_run("mg", {"rgb": rgb_reader, "pose": pose_reader}, "runs/cmtf", {"head": "cmtf"})
"""
from .config import DEFAULTS, resolve_config
from .data import Input, UnitMismatchError, build_data
from .registry import build_head, get_head, head_inputs, heads_help, list_heads
from .sweep import sweep_probes
from .runs import evaluate_run, predict_run, train_run

__all__ = ["DEFAULTS", "Input", "UnitMismatchError", "build_data", "build_head", "evaluate_run", "get_head",
           "head_inputs", "heads_help", "list_heads", "predict_run", "resolve_config", "sweep_probes",
           "train_run"]
