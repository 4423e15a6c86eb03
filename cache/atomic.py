"""Atomic file publishing: temp name in the same folder, fsync, rename, fsync the folder.

A reader (or a process restarted after a kill or a power cut) sees the old file or the new
one, never a torn one; the folder fsync makes the rename itself durable.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make the entries of `directory` (a rename into it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes, prefix: str = ".tmp-") -> None:
    """Write `path` by temp name + fsync + rename + folder fsync; on any failure (a full disk)
    the temp file is removed and `path` keeps its old content."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{prefix}{path.name}-")
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
