"""Files: their SHA-256, and writes a kill can never leave half-done (temp name, fsync, rename)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def host_tag() -> str:
    """This machine's name, reduced to [A-Za-z0-9.] (temp files carry pid@host)."""
    return re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname())[:64] or "host"


def temp_prefix(name: str) -> str:
    """`.tmp-<pid>@<host>-<name>`: whoever cleans up can tell whether the writer still lives."""
    return f"{TMP_PREFIX}{os.getpid()}@{host_tag()}-{name}"


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable (the directory entry reaches the disk)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a short write is not an error)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def publish(tmp: str | Path, final: str | Path) -> None:
    """Rename a fully written temp file onto its final name: fsync it, rename, fsync the folder."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write `path` through a temp file beside it: on success the file is fsynced, renamed over
    `path` and the directory fsynced; on any error the temp file goes. Readers see the old
    file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name) + "-")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Replace `path` with `data` atomically (see `atomic_writer`)."""
    with atomic_writer(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
