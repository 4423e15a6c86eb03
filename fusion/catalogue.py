"""The built-in heads described without importing them, and the layout of the heads' help lines.

The heads are torch modules: asking the registry (`registry.list_heads`) imports their files and torch,
seconds of start-up that `migue fuse-train --help` only needs for the lines it prints. `BUILTIN_HEADS`
holds those lines as plain data: each built-in head's name, the built-in tasks it fits and its
one-line description, in the order the registry lists them; `helptext.heads_help` prints it while
only the built-ins are in play. tests/test_catalogue.py checks that this table equals the registry's
built-in heads: a head file added (or a head changed) without its line here fails it.

This module imports nothing (the registry imports it for `format_heads`).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class HeadEntry(NamedTuple):
    """One head as `--help` shows it."""

    name: str
    tasks: tuple[str, ...]  # the built-in tasks it fits
    description: str        # its first line, as the registry holds it


_PROBE = "{kind} probe on pooled {stream} features (per item; a video's windows averaged)"


def _probes(stream: str, task: str) -> tuple[HeadEntry, ...]:
    return tuple(HeadEntry(f"probe-{kind}-{stream}", (task,), _PROBE.format(kind=kind, stream=stream))
                 for kind in ("linear", "mlp"))


# registry order: cmtf.py, interfusion.py, baselines.py (late, late-pose, concat, then two probes per
# built-in stream in the stream table's order), detection.py, online/probe.py
BUILTIN_HEADS: tuple[HeadEntry, ...] = (
    HeadEntry("cmtf", ("mg",), "Cross-Modal Token Fusion: rgb + pose (joint, bone) tokens, transformer over a "
                               "fusion [CLS] (cmtf_mode joint | cross)"),
    HeadEntry("interfusion", ("emotion",), "InterFusion: gated bidirectional face<->context cross-attention per "
                                           "window, attention pooling over a video's windows"),
    HeadEntry("late", ("mg", "emotion"), "late fusion: average of per-stream probe scores over the task's streams "
                                         "(mg: rgb, joint, bone; emotion: face, context)"),
    HeadEntry("late-pose", ("mg",), "classic 2s-AGCN ensemble: average of joint and bone probe scores"),
    HeadEntry("concat", ("mg", "emotion"), "concatenated pooled features of all modalities -> MLP"),
    *_probes("rgb", "mg"), *_probes("pose-joint", "mg"), *_probes("pose-bone", "mg"),
    *_probes("face", "emotion"), *_probes("context", "emotion"),
    HeadEntry("detect", ("online",), "temporal detection over window tokens: per-step class-or-background + "
                                     "start/end offsets (mixer conv | transformer)"),
    HeadEntry("window-probe", ("online",), "probe baseline: a linear class-or-background classifier per window, "
                                           "runs merged"),
)


def format_heads(rows: Iterable[tuple[str, Iterable[str], str, str]]) -> str:
    """Aligned lines `name  [tasks]  description`, from (name, tasks, description, source) rows; a
    plugin's head says where it comes from. The one layout of both the catalogue and the registry."""
    rows = list(rows)
    width = max((len(name) for name, *_ in rows), default=0)
    return "\n".join(f"{name:<{width}}  [{','.join(tasks)}]  {text}"
                     + ("" if source == "built-in" else f"  (plugin: {source})")
                     for name, tasks, text, source in rows)
