"""Stage two: light fusion heads trained over the feature cache (depends only on migue.cache).

    from migue.fusion import train_run, evaluate_run, list_heads
    metrics = train_run("mg", {"rgb": rgb_reader, "pose": pose_reader}, "runs/cmtf", {"head": "cmtf"})
"""
# Lazy: each name is imported from its module on first use, and the built-in heads register the
# first time the registry is asked (registry._load_builtins), so that importing `migue.fusion` or
# `migue.fusion.tasks` (predict --help's formats) needs no torch; `heads_help` (fuse-train --help)
# reads the built-in heads from `catalogue` (helptext.py) unless a plugin is in play.
from migue.common.lazy import lazy_getattr

_WHERE = {"DEFAULTS": ".config", "config_for": ".config", "resolve_config": ".config",
          "Input": ".data", "UnitMismatchError": ".data", "build_data": ".data",
          "HeadContractError": ".heads", "build_head": ".heads", "check_head": ".heads", "head_inputs": ".heads",
          "get_head": ".registry", "heads_help": ".helptext", "list_heads": ".registry", "load_plugins": ".registry",
          "register_head": ".registry", "tasks_help": ".helptext",
          "SubmissionFormat": ".tasks", "Task": ".tasks", "UnknownTaskError": ".tasks", "get_task": ".tasks",
          "list_tasks": ".tasks", "register_task": ".tasks",
          "evaluate_run": ".runs", "predict_run": ".runs", "train_run": ".runs", "sweep_probes": ".sweep"}

__all__ = ["DEFAULTS", "HeadContractError", "config_for", "Input", "UnitMismatchError", "build_data", "build_head", "check_head",
           "evaluate_run", "get_head", "head_inputs", "heads_help", "list_heads", "load_plugins", "predict_run",
           "register_head", "resolve_config", "sweep_probes", "train_run",
           "SubmissionFormat", "Task", "UnknownTaskError", "get_task", "list_tasks", "register_task", "tasks_help"]

__getattr__ = lazy_getattr(__name__, _WHERE, globals())
