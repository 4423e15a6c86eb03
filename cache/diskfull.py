"""A full disk under a cache entry: one error that names the entry, the free space, what was being
written and what is kept (the CLI prints it as one line). Every writer of an entry's files raises it:
shards and the index (writer.py), claims (claims.py), parsed skeletons (the one-pass engine)."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

from .index import read_index


class DiskFullError(OSError):
    """The filesystem under an entry ran out of space; nothing half-written was published."""


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain: HDF5 reports a failed flush at close as a RuntimeError
    whose context is the OSError(ENOSPC) of the write."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "errno = 28" in str(exc) or "No space left on device" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def disk_full(entry_dir: Path, exc: OSError, need: int = 0, what: str = "") -> DiskFullError:
    """A DiskFullError naming the entry, the filesystem's free space and what was being written."""
    try:
        usage = shutil.disk_usage(entry_dir if entry_dir.exists() else entry_dir.parent)
        room = f"{_size(usage.free)} free of {_size(usage.total)}"
    except OSError:
        room = "free space unknown"
    try:
        published = sum(s["units"] for s in read_index(entry_dir)["shards"])
    except (OSError, ValueError):
        published = 0
    what = what or (f"writing a shard of about {_size(need)}" if need else "updating its index")
    return DiskFullError(errno.ENOSPC, (
        f"no space left on device for cache entry {entry_dir.name} in {entry_dir.parent}, {what} "
        f"({room}). Nothing half-written was published; the {published} units already published are "
        "kept. Free some space (or use --cache on a bigger disk) and rerun to resume."))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
