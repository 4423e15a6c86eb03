"""Per-epoch progress of a training run, so that a long fit is never silent.

On a terminal: a tqdm bar over the epochs showing the train loss, the monitored val metric and the
best so far. Off a terminal (a log file, nohup, a pipe), where a bar is noise: one log line every few
epochs (about ten lines a run, and always the first and the last epoch) with the rate and an ETA.
Reads only the rows `Fitter.end_epoch` records, so any training loop can drive it.
"""
from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from tqdm import tqdm

log = logging.getLogger("migue.fusion.train")

__all__ = ["EpochProgress", "log_every"]

LOG_LINES_PER_RUN = 10  # off a terminal: about this many progress lines per run


def log_every(epochs: int) -> int:
    """Off a terminal, log every this many epochs: about LOG_LINES_PER_RUN lines for `epochs`."""
    return max(1, math.ceil(epochs / LOG_LINES_PER_RUN))


class EpochProgress:
    """Progress of epochs `first`..`last` of head `name`; `monitor` is the val metric early stopping
    follows (None without labelled val). `stream` (default stderr) decides bar or log lines."""

    def __init__(self, name: str, first: int, last: int, monitor: str | None, stream: IO[str] | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.name, self.first, self.last, self.monitor = name, first, last, monitor
        self.every = log_every(max(last - first + 1, 1))
        self.started = time.perf_counter()
        is_tty = getattr(stream, "isatty", lambda: False)()
        sized = shutil.get_terminal_size((0, 0)).columns > 0  # else tqdm may draw a bar of width 0
        self.bar = tqdm(total=max(last - first + 1, 0), desc=name, unit="epoch", leave=False, file=stream,
                        dynamic_ncols=sized, ncols=None if sized else 120) if is_tty else None

    def update(self, rows: Sequence[Mapping[str, Any]], best_epoch: int, stopped: bool = False) -> None:
        """Show the epoch just recorded (the last of `rows`); `best_epoch` is the best so far."""
        row = rows[-1]
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(self.describe(row, rows, best_epoch, compact=True), refresh=True)
        elif stopped or self._due(int(row["epoch"])):
            done = int(row["epoch"]) - self.first + 1
            pace = (time.perf_counter() - self.started) / max(done, 1)
            left = 0 if stopped else self.last - int(row["epoch"])
            log.info("%s epoch %d/%d  %s  %.1f s/epoch%s", self.name, row["epoch"], self.last,
                     self.describe(row, rows, best_epoch), pace,
                     f", ETA {_duration(pace * left)}" if left else "")
        if stopped or int(row["epoch"]) >= self.last:
            self.close()

    def describe(self, row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], best_epoch: int,
                 compact: bool = False) -> str:
        """'train loss 1.234  val top1 0.450 (best 0.500 at epoch 3)' for an epoch's row; `compact`
        (beside a bar): 'loss 1.234  val top1 0.450 (best 0.500 @3)'."""
        text = f"{'loss' if compact else 'train loss'} {row['train_loss']:.3f}"
        at = " @" if compact else " at epoch "
        column = f"val_{self.monitor}"
        if self.monitor is None or column not in row:
            return text
        best = next((r for r in rows if r["epoch"] == best_epoch), None)
        text += f"  val {self.monitor} {_value(row[column])}"
        if best is not None:
            text += f" (best {_value(best[column])}{at}{best_epoch})"
        else:
            text += f" (best{at}{best_epoch})"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _due(self, epoch: int) -> bool:
        return epoch == self.first or epoch >= self.last or (epoch - self.first + 1) % self.every == 0


def _value(value: Any) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
