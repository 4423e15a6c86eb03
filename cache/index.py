"""The entry index (index.json): key, resolved config, shards, units, failures.

Published shard files are the truth; the index is rebuilt from them when a
writer died between publishing a shard and recording it. Every update happens
under an exclusive lock on `index.lock` and is written by atomic rename.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .paths import safe_child

INDEX_FILE = "index.json"
LOCK_FILE = "index.lock"


def locking_enabled() -> bool:
    """File locking can be turned off (e.g. on NFS without lock support), like HDF5_USE_FILE_LOCKING."""
    return os.environ.get("MIGUE_USE_FILE_LOCKING", "TRUE").upper() not in ("FALSE", "0", "NO")


@contextlib.contextmanager
def locked(entry_dir: Path) -> Iterator[None]:
    """Hold the entry's exclusive lock (flock) for the duration of the block."""
    if not locking_enabled():
        yield
        return
    with open(entry_dir / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file by temp name + fsync + rename: readers see the old or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_index(entry_dir: Path) -> dict[str, Any]:
    """Load and sanity-check an index; shard names must stay inside the entry."""
    path = entry_dir / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no cache entry at {entry_dir} ({INDEX_FILE} missing)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    for shard in index.get("shards", []):
        safe_child(entry_dir, shard["file"])
    return index


def write_index(entry_dir: Path, index: dict[str, Any]) -> None:
    """Atomically replace the index."""
    atomic_write_text(entry_dir / INDEX_FILE, json.dumps(index, indent=1, sort_keys=True))
