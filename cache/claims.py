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

from .diskfull import disk_full, is_disk_full
from .index import flock, locking_enabled, read_index

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


def _raise_if_full(entry_dir: Path, exc: OSError) -> None:
    """A full disk while claiming work is the entry's DiskFullError (other errors go on as they are)."""
    if is_disk_full(exc):
        raise disk_full(entry_dir, exc, what="claiming a chunk of its work") from exc


class WorkClaims:
    """The claims of one entry."""

    def __init__(self, entry_dir: Path) -> None:
        self.dir = Path(entry_dir) / CLAIMS_DIR

    def try_claim(self, name: str, units: Iterable[str] = ()) -> Claim | None:
        """The claim if no live run holds it, else None. Without file locking every claim succeeds.
        `units` (the chunk's unit ids) are written into the claim file, so that a reader can say
        which units a running extract is still computing."""
        path = self.dir / f"{name}.lock"
        if not locking_enabled():
            return Claim(path, None)
        try:
            self.dir.mkdir(exist_ok=True)
            handle = open(path, "a+")
        except OSError as exc:
            _raise_if_full(self.dir.parent, exc)
            raise
        try:
            flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, path)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        ids = "\n".join(units)
        if ids:
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(ids)
                handle.flush()
            except OSError as exc:  # the lock goes with the handle: another run may take the chunk
                handle.close()
                _raise_if_full(self.dir.parent, exc)
                raise
        return Claim(path, handle)

    def live(self) -> dict[str, list[str]]:
        """Claim name -> the unit ids written in it, for every claim a live run holds now (read
        only: nothing is taken or removed). Without file locking: none are known."""
        out: dict[str, list[str]] = {}
        for path in sorted(self.dir.glob("*.lock")) if locking_enabled() and self.dir.is_dir() else []:
            held, text = _held(path)
            if held:
                out[path.stem] = [u for u in text.split("\n") if u]
        return out

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


def _held(path: Path) -> tuple[bool, str]:
    """(whether a live process holds `path`'s lock, the file's text), without taking it for long."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return True, handle.read(1 << 24)
                return False, ""
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False, ""
    except FileNotFoundError:  # released while we looked
        return False, ""


WRITERS_DIR = "writers"


class WriterMark:
    """Held by every live EntryWriter: `writers/<pid>-<random>.lock`, flocked for the writer's
    life, so readers know a stage-one run is writing the entry even between its chunk claims
    (fingerprinting, building the model). The kernel drops a killed run's lock; its file is
    removed by the next writer or `migue cache gc`."""

    def __init__(self, entry_dir: Path) -> None:
        self.claim: Claim | None = None
        if not locking_enabled():
            return
        folder = Path(entry_dir) / WRITERS_DIR
        folder.mkdir(exist_ok=True)
        for path in folder.glob("*.lock"):  # dead writers' marks
            if not _held(path)[0]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        path = folder / f"{os.getpid()}-{os.urandom(4).hex()}.lock"
        handle = open(path, "a+")
        flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, path)
        self.claim = Claim(path, handle)

    def release(self) -> None:
        if self.claim is not None:
            self.claim.release()
            self.claim = None


def live_writers(entry_dir: Path, other_processes: bool = True) -> int:
    """How many live EntryWriters hold this entry (those of this process left out by default:
    a process does not wait for itself)."""
    folder = Path(entry_dir) / WRITERS_DIR
    if not locking_enabled() or not folder.is_dir():
        return 0
    mine = f"{os.getpid()}-"
    return sum(1 for p in folder.glob("*.lock")
               if not (other_processes and p.name.startswith(mine)) and _held(p)[0])


class EntryBeingWrittenError(ValueError):
    """An entry a stage-one run is still writing was opened for training or prediction."""


def writing_now(entry_dir: Path) -> str | None:
    """What a running extract still writes into the entry, in words (None: no run writes it).
    Counts the live chunk claims and their unit ids not yet published, and live writers."""
    entry_dir = Path(entry_dir)
    claims, writers = WorkClaims(entry_dir).live(), live_writers(entry_dir)
    if not claims and not writers:
        return None
    published = {u for s in read_index(entry_dir)["shards"] for u in s["unit_ids"]}
    claimed = {u for ids in claims.values() for u in ids} - published
    unnamed = sum(1 for ids in claims.values() if not ids)
    what = f"{len(claimed)} units in {len(claims)} chunk(s) still claimed" if claims else "no chunk claimed yet"
    if unnamed:
        what += f" ({unnamed} chunk(s) of units it does not name)"
    runs = f"{writers} writer process(es)" if writers else "a run"
    return (f"cache entry {entry_dir.name} is being written: extract is running on it ({runs}; {what}, "
            f"{len(published)} units published so far)")


def refuse_if_written(entry_dir: Path) -> str | None:
    """Raise EntryBeingWrittenError while a stage-one run writes the entry: training or predicting
    on it now would silently use only its published part. Returns None when no run writes it."""
    status = writing_now(entry_dir)
    if status is not None:
        raise EntryBeingWrittenError(f"{status}; using it now would read only the published part. Wait for "
                                     "extract to finish (then run this again), or pass --allow-partial to use "
                                     "the units published so far")
    return None
