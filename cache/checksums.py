"""Shard checksums: what the index records for each shard, and the check a reader makes once per
process before it trusts a shard's bytes (tokens and labels alike).

A shard's record carries `sha256` (what `migue cache verify` checks) and, since readers started
checking, `blake3` (the same bytes, hashed 2-3x faster): a reader checks `blake3` where the index
records it and `sha256` for shards published before. Each shard is hashed once per process; the
memo's key includes the file's ctime, which user space cannot set back, so a shard rewritten after
it was checked (even with its mtime restored) is hashed again.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import blake3

from .shard import ShardError

BLOCK = 1 << 22
KINDS = ("blake3", "sha256")  # the checksum a reader prefers first

_checked: set[tuple[Any, ...]] = set()  # shards whose bytes this process checked, with their stat


def file_checksums(path: str | os.PathLike) -> dict[str, str]:
    """{'sha256': hex, 'blake3': hex} of a file's bytes, in one read."""
    sha, b3 = hashlib.sha256(), blake3.blake3()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            sha.update(block)
            b3.update(block)
    return {"sha256": sha.hexdigest(), "blake3": b3.hexdigest()}


def shard_digest(path: Path, kind: str) -> str:
    """One checksum (`blake3` or `sha256`) of a file's bytes."""
    digest = blake3.blake3() if kind == "blake3" else hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_shard_bytes(entry: str, path: Path, record: dict[str, Any]) -> None:
    """Raise ShardError naming the entry and shard unless `path` hashes to the checksum its
    index `record` holds; a shard already checked by this process, unchanged since, is not hashed."""
    kind = next(k for k in KINDS if k in record)
    st = os.stat(path)
    key = (str(path), kind, record[kind], st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _checked:
        return
    if shard_digest(path, kind) != record[kind]:
        raise ShardError(f"cache entry {entry}: shard {record['file']}: its bytes do not match the {kind} "
                         "checksum its index records (changed on disk after it was published, tokens or "
                         f"labels alike): run `migue cache verify {entry}`; to repair it, delete the entry's "
                         "folder and run `migue extract` again")
    _checked.add(key)


def forget_checked() -> None:
    """Forget which shards this process checked (tests; a long-lived process that wants to recheck)."""
    _checked.clear()
