"""Stage two: light fusion heads trained over the feature cache (depends only on migue.cache).

    from migue.fusion import train_run, evaluate_run, list_heads
    metrics = train_run("mg", {"rgb": rgb_reader, "pose": pose_reader}, "runs/cmtf", {"head": "cmtf"})
"""
# The built-in heads register themselves, in the order `heads_help` lists them.
from . import cmtf, interfusion  # noqa: F401,I001
from . import baselines  # noqa: F401
from .config import DEFAULTS, config_for, resolve_config
from .data import Input, UnitMismatchError, build_data
from .heads import HeadContractError, build_head, check_head, head_inputs
from .registry import get_head, heads_help, list_heads, load_plugins, register_head
from .runs import evaluate_run, predict_run, train_run
from .sweep import sweep_probes

__all__ = ["DEFAULTS", "HeadContractError", "config_for", "Input", "UnitMismatchError", "build_data", "build_head", "check_head",
           "evaluate_run", "get_head", "head_inputs", "heads_help", "list_heads", "load_plugins", "predict_run",
           "register_head", "resolve_config", "sweep_probes", "train_run"]
