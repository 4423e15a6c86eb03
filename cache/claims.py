"""Work claims: concurrent runs on one entry split the work instead of both doing all of it.

A run computing a chunk of units holds an exclusive flock on `claims/<chunk>.lock`; another
run skips a chunk it cannot lock and comes back to it once its own work is done. The kernel
drops the locks of a killed run, so its chunks are simply claimed again. Claims only save
work: correctness never rests on them (the index lock refuses a unit published twice), so
after taking a claim a run still checks which of the chunk's units are published.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from .index import flock, locking_enabled

CLAIMS_DIR = "claims"


def chunk_name(unit_ids: Iterable[str]) -> str:
    """A chunk's claim name: a hash of its unit ids (the same chunk in every run)."""
    return "chunk-" + hashlib.sha256("\n".join(unit_ids).encode()).hexdigest()[:20]


class Claim:
    """A held claim; release() after the chunk's shard is published (or found unneeded)."""

    def __init__(self, path: Path, handle: IO[Any] | None) -> None:
        self.path, self._handle = path, handle

    def release(self) -> None:
        if self._handle is None:
            return
        # Unlink while still holding the lock: a run that opened the old file and locks it
        # afterwards re-checks the index and finds the chunk published (see module doc).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkClaims:
    """The claims of one entry."""

    def __init__(self, entry_dir: Path) -> None:
        self.dir = Path(entry_dir) / CLAIMS_DIR

    def try_claim(self, name: str) -> Claim | None:
        """The claim if no live run holds it, else None. Without file locking every claim succeeds."""
        path = self.dir / f"{name}.lock"
        if not locking_enabled():
            return Claim(path, None)
        self.dir.mkdir(exist_ok=True)
        handle = open(path, "a+")
        try:
            flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, path)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        return Claim(path, handle)

    def wait(self, name: str) -> None:
        """Block until no run holds `name` (its holder finished or died)."""
        path = self.dir / f"{name}.lock"
        if not locking_enabled() or not path.exists():
            return
        with contextlib.suppress(FileNotFoundError), open(path, "r") as handle:
            flock(handle, fcntl.LOCK_EX, path)
            fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_stale(self) -> list[Path]:
        """Delete claim files no live run holds (left by killed runs); returns them."""
        removed = []
        for path in sorted(self.dir.glob("*.lock")) if self.dir.is_dir() else []:
            claim = self.try_claim(path.stem) if locking_enabled() else None
            if claim is not None:
                claim.release()
                removed.append(path)
        return removed
