"""What an extract says while it runs and when it ends: the rate and ETA, and one summary line."""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

log = logging.getLogger("migue.extract")


@dataclass
class ExtractSummary:
    """Frames decoded against frames the requested units need, videos, units, wall time."""

    frames_decoded: int = 0
    frames_needed: int = 0
    videos: int = 0  # videos decoded (a video decoded twice counts twice)
    units: dict[str, int] = field(default_factory=dict)  # entry name -> units extracted
    failed: dict[str, int] = field(default_factory=dict)  # entry name -> units failed
    seconds: float = 0.0

    def add(self, other: "ExtractSummary") -> None:
        """Fold in another shard's figures (wall time is the caller's to set)."""
        self.frames_decoded += other.frames_decoded
        self.frames_needed += other.frames_needed
        self.videos += other.videos
        for name, n in other.units.items():
            self.units[name] = self.units.get(name, 0) + n
        for name, n in other.failed.items():
            self.failed[name] = self.failed.get(name, 0) + n

    def line(self) -> str:
        """'decoded N of M frames needed (1.02x), V videos, units: rgb 12, pose 12, 3.4 s'."""
        ratio = f" ({self.frames_decoded / self.frames_needed:.2f}x)" if self.frames_needed else ""
        units = ", ".join(f"{name} {n}" + (f" ({self.failed[name]} failed)" if self.failed.get(name) else "")
                          for name, n in self.units.items())
        return (f"decoded {self.frames_decoded} of {self.frames_needed} frames needed{ratio}, "
                f"{self.videos} videos, units: {units or 'none'}, {self.seconds:.1f} s")


class Progress:
    """Rate and ETA: an estimate after the first batch, and one line per published shard when
    stderr is not a terminal (the tqdm bar is off then, so a log is all a batch job shows)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        stream = stream or sys.stderr
        self.lines = not (hasattr(stream, "isatty") and stream.isatty())
        self.estimated = False

    def _rate(self) -> tuple[float, str]:
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return rate, (f"{left:.0f} s" if left < float("inf") else "unknown")

    def forwarded(self, units: int) -> None:
        self.done += units
        if not self.estimated and self.done:
            self.estimated = True
            rate, eta = self._rate()
            log.info("first batch: %.2f units/s, %d units to go, ETA %s", rate, self.total - self.done, eta)

    def published(self, name: str, units: int) -> None:
        if self.lines and units:
            rate, eta = self._rate()
            log.info("published a shard of %s (%d units): %d of %d units done, %.2f units/s, ETA %s",
                     name, units, self.done, self.total, rate, eta)
