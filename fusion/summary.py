"""What a person reads at the end of `fuse-train` and `evaluate`: a short table of the headline
metrics of each split with its n, the epochs run and the best one, the run folder and where the full
results are; and a warning when a split is too small for its accuracy to tell heads apart (the 95%
Wilson interval of the accuracy wider than MAX_INTERVAL_WIDTH).

Plain data in, text out: metrics as `metrics.json` holds them. Of the task, only the noun of its
items ("clip", "video") is passed in, so the task objects can change without touching this file.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .reports import (CONFUSION_CSV, CONFUSION_FILE, CURVES_DATA, CURVES_FILE, HEAD_FILE, HISTORY_FILE, METRICS_FILE,
                      PER_CLASS_FILE, TIMELINE_FILE)

__all__ = ["MAX_INTERVAL_WIDTH", "evaluation_summary", "headline", "metrics_table", "run_summary",
           "small_split_warning", "wilson_interval"]

ACCURACY_KEYS = ("accuracy", "top1")  # share-right metrics: their interval says whether n is enough
MAX_INTERVAL_WIDTH = 0.3  # a wider 95% interval cannot tell heads apart
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes`/`n` (95% by default); (0, 1) for n = 0.
    Unlike p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and is not empty at p = 0 or 1."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def headline(split_metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics of a split, in their order (n, notes and per-class lists left out)."""
    return {k: v for k, v in split_metrics.items()
            if k != "n" and (isinstance(v, (int, float)) or v is None) and not isinstance(v, bool)}


def small_split_warning(split: str, split_metrics: Mapping[str, Any], items: str = "item",
                        max_width: float = MAX_INTERVAL_WIDTH) -> str | None:
    """A sentence when the split's accuracy rests on too few items (its 95% interval wider than
    `max_width`), e.g. 'test accuracy 1.00 on 3 videos: 95% interval 0.44-1.00, too few to
    compare heads'; None when it is precise enough or has no accuracy."""
    n = int(split_metrics.get("n") or 0)
    key = next((k for k in ACCURACY_KEYS if isinstance(split_metrics.get(k), (int, float))), None)
    if not n or key is None or math.isnan(split_metrics[key]):
        return None
    low, high = wilson_interval(round(split_metrics[key] * n), n)
    if high - low <= max_width:
        return None
    return (f"{split} {key} {split_metrics[key]:.2f} on {n} {_plural(items, n)}: 95% interval "
            f"{low:.2f}-{high:.2f}, too few to compare heads")


def metrics_table(splits: Mapping[str, Mapping[str, Any]], monitor: str | None = None) -> str:
    """Rows of split, n and each headline metric (the monitored one starred), aligned."""
    names: list[str] = []
    for split_metrics in splits.values():
        names += [k for k in headline(split_metrics) if k not in names]
    header = ["split", "n", *(f"{k}*" if k == monitor else k for k in names)]
    rows = [[split, str(int(m.get("n") or 0)), *(_cell(m.get(k)) for k in names)] for split, m in splits.items()]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in (header, *rows)]
    return "\n".join(line.rstrip() for line in lines)


def run_summary(run_dir: Path, metrics: Mapping[str, Any], items: str = "item", epochs: int | None = None) -> str:
    """The end-of-training table of a run folder from its metrics (as `metrics.json` holds them):
    headline metrics of val and test with n, chance, epochs and best epoch, warnings, the files.
    `epochs`: the configured number (to say whether training stopped early)."""
    run_dir = Path(run_dir)
    splits = {s: metrics[s] for s in ("val", "test") if isinstance(metrics.get(s), Mapping)}
    monitor = metrics.get("monitor")
    lines = [f"run       {run_dir}  ({metrics.get('task')}, head {metrics.get('head')})"]
    run = metrics.get("epochs_run")
    if run is not None:
        planned = f" of {epochs}" + (" (early stop)" if run < epochs else "") if epochs else ""
        has_val = bool((splits.get("val") or {}).get("n"))
        best = f", best epoch {metrics.get('best_epoch')}" + (f" by val {monitor}" if monitor and has_val
                                                               else " (no labelled val: the last)")
        lines.append(f"epochs    {run}{planned}{best} (head.pt holds it)")
    lines += ["", metrics_table(splits, monitor)]
    chance = metrics.get("chance")
    if isinstance(chance, Mapping) and chance.get("uniform") is not None:
        shown = "test" if (splits.get("test") or {}).get("n") else "val"
        majority = chance.get("majority")
        lines.append(f"* monitored; chance: uniform {chance['uniform']:.3f}"
                     + (f", majority class {majority:.3f} ({shown})" if _number(majority) else ""))
    elif monitor:
        lines.append("* monitored")
    lines += _warnings(splits, items)
    lines += ["", *_files(run_dir)]
    return "\n".join(lines)


def evaluation_summary(run_dir: Path, split: str, split_metrics: Mapping[str, Any], items: str = "item",
                       monitor: str | None = None) -> str:
    """The table `evaluate` prints for one split of a run (--json prints the full metrics)."""
    lines = [f"run       {Path(run_dir)}  ({split}, recomputed from the cache)", "",
             metrics_table({split: split_metrics}, monitor)]
    lines += _warnings({split: split_metrics}, items)
    lines += ["", "full metrics: --json; the run's training-time results stay in "
              f"{Path(run_dir) / METRICS_FILE}"]
    return "\n".join(lines)


def _warnings(splits: Mapping[str, Mapping[str, Any]], items: str) -> list[str]:
    found = [small_split_warning(s, m, items) for s, m in splits.items()]
    notes = [f"note: {s}: {note}" for s, m in splits.items() for note in m.get("notes") or []]
    return [f"warning: {w}" for w in found if w] + notes


def _files(run_dir: Path) -> list[str]:
    """Where the full results are: the files of the run folder that exist, by what they hold."""
    groups: Sequence[tuple[str, Sequence[str]]] = (
        ("metrics", (METRICS_FILE, HISTORY_FILE, CURVES_DATA)), ("per class", (PER_CLASS_FILE, CONFUSION_CSV)),
        ("plots", (CURVES_FILE, CONFUSION_FILE, TIMELINE_FILE)), ("weights", (HEAD_FILE,)))
    lines = []
    for label, names in groups:
        present = [n for n in names if (run_dir / n).exists()]
        if present:
            lines.append(f"{label + ':':<11}{', '.join(present)}")
    return [f"files in {run_dir}:", *("  " + line for line in lines)] if lines else []


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plural(noun: str, n: int) -> str:
    return noun if n == 1 or noun.endswith("s") else noun + "s"
