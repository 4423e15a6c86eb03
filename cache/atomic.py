"""The one way migue writes a file that marks work done: temp name, fsync, rename, fsync the folder.

A temp file is `.tmp-<final name>-<random>`, and its writer holds an exclusive `flock` on it
for as long as it lives: whoever cleans up (`migue cache gc`, a writer adopting leftovers)
removes only temp files whose lock it can take, so a live writer's file is never touched,
whatever its pid, host or PID namespace. The kernel drops a killed writer's lock with its
descriptors. On NFS, Linux emulates flock with the server's byte-range locks (NFSv4, or v3
with lockd): liveness then holds across clients, and a crashed client's locks go when its
lease expires (about 90 s on NFSv4). Where a filesystem has no locks, set
MIGUE_USE_FILE_LOCKING=FALSE: temp files are then only removed once a day old.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
UNLOCKED_TMP_AGE_S = 24 * 3600  # without file locks, a temp file is presumed dead this old


def locking_enabled() -> bool:
    """File locking can be turned off (e.g. on NFS without lock support), like HDF5_USE_FILE_LOCKING."""
    return os.environ.get("MIGUE_USE_FILE_LOCKING", "TRUE").upper() not in ("FALSE", "0", "NO")


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or unlink in `directory` durable (a crash cannot bring the old name back)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems cannot fsync a folder: the rename is still atomic
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a short write is not an error)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Rename a fully written temp file onto its final name: fsync it, rename, fsync the folder."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)


class TempFile:
    """A new temp file beside its final name, flocked (exclusively) by this process until closed."""

    def __init__(self, directory: str | os.PathLike, name: str, prefix: str = TMP_PREFIX) -> None:
        self.path = Path(directory) / f"{prefix}{name}-{uuid.uuid4().hex[:12]}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        if locking_enabled():
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.discard()
                raise

    def fsync(self) -> None:
        os.fsync(self.fd)

    def publish(self, final: str | os.PathLike) -> None:
        """Rename onto `final` (atomic) and fsync the folder; the lock goes when closed."""
        os.replace(self.path, final)
        fsync_dir(Path(final).parent)
        self.path = Path(final)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Remove the temp file if it was not published, and drop the lock."""
        if self.fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.close()

    def __enter__(self) -> "TempFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, prefix: str = TMP_PREFIX) -> None:
    """Write a file by temp name + fsync + rename + folder fsync: readers see old or new, never
    half; on any failure (a full disk) the temp file is removed and `path` keeps its old content."""
    path = Path(path)
    with TempFile(path.parent, path.name, prefix) as temp:
        write_all(temp.fd, data)
        temp.fsync()
        temp.publish(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def is_dead_temp(path: Path, now: float | None = None) -> bool:
    """Whether no live writer holds temp file `path` (we could take its lock; without file
    locking: it is a day old). Never blocks."""
    if not locking_enabled():
        with contextlib.suppress(FileNotFoundError):
            return (now or time.time()) - path.stat().st_mtime >= UNLOCKED_TMP_AGE_S
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)
    return True


def remove_dead_temps(directory: Path, dry_run: bool = False, min_age_s: float = 0.0) -> list[Path]:
    """Delete the temp files in `directory` no live writer holds; returns them. `min_age_s`
    spares files younger than that (where a writer may have created but not yet locked one)."""
    removed = []
    now = time.time()
    for path in sorted(directory.glob(f"{TMP_PREFIX}*")) if directory.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime < min_age_s or not is_dead_temp(path, now):
                continue
            if not dry_run:
                path.unlink()
            removed.append(path)
    if removed and not dry_run:
        fsync_dir(directory)
    return removed


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Write `path` through a flocked temp file beside it (a file object to write to): on success
    it is fsynced, renamed over `path` and the folder fsynced; on any error the temp file goes."""
    path = Path(path)
    with TempFile(path.parent, path.name) as temp:
        with os.fdopen(os.dup(temp.fd), mode) as f:
            yield f
            f.flush()
        temp.fsync()
        temp.publish(path)
