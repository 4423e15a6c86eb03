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
from .registry import get_head, heads_help, list_heads, load_plugins, register_head, tasks_help
from .tasks import SubmissionFormat, Task, UnknownTaskError, get_task, list_tasks, register_task

__all__ = ["DEFAULTS", "HeadContractError", "config_for", "Input", "UnitMismatchError", "build_data", "build_head", "check_head",
           "evaluate_run", "get_head", "head_inputs", "heads_help", "list_heads", "load_plugins", "predict_run",
           "register_head", "resolve_config", "sweep_probes", "train_run",
           "SubmissionFormat", "Task", "UnknownTaskError", "get_task", "list_tasks", "register_task", "tasks_help"]

# Training, evaluation and sweeps pull in scikit-learn and matplotlib: imported on first use, so that
# listing the heads (`migue fuse-train --help`) stays fast.
_LAZY = {"evaluate_run": ".runs", "predict_run": ".runs", "train_run": ".runs", "sweep_probes": ".sweep"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
