"""The entry index (index.json): key, resolved config, shards, units, failures.

Published shard files are the truth; the index is rebuilt from them when a
writer died between publishing a shard and recording it. Every update happens
under an exclusive lock on `index.lock` and is written by atomic rename.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import TMP_PREFIX, atomic_write_text, locking_enabled
from .paths import safe_child
from .scope import check_dataset_record

__all__ = ["INDEX_FILE", "LOCK_FILE", "PLUGIN_FIELD", "TMP_PREFIX", "IndexFormatError", "atomic_write_text",
           "check_index", "flock", "locked", "locking_enabled", "read_index", "write_index"]

INDEX_FILE = "index.json"
LOCK_FILE = "index.lock"
PLUGIN_FIELD = "plugin"  # the plugin that registered the entry's modality row (absent: a built-in row)
SHA256 = re.compile(r"[0-9a-f]{64}")


class IndexFormatError(ValueError):
    """An index.json that is not what a writer writes; the message names the file and the field."""


def flock(handle: Any, operation: int, path: Path) -> None:
    """fcntl.flock with a clear message where the filesystem has no working locks."""
    try:
        fcntl.flock(handle, operation)
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise OSError(exc.errno, f"cannot lock {path} ({os.strerror(exc.errno)}): this filesystem has "
                          "no working file locks; set MIGUE_USE_FILE_LOCKING=FALSE and run one writer "
                          "per entry") from None
        raise


@contextlib.contextmanager
def locked(entry_dir: Path) -> Iterator[None]:
    """Hold the entry's exclusive lock (flock) for the duration of the block."""
    if not locking_enabled():
        yield
        return
    path = entry_dir / LOCK_FILE
    with open(path, "a+") as handle:
        flock(handle, fcntl.LOCK_EX, path)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_index(entry_dir: Path) -> dict[str, Any]:
    """Load and check an index: the fields a writer writes, with their types; shard names
    must stay inside the entry. Anything else is an IndexFormatError naming the field."""
    path = entry_dir / INDEX_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no cache entry at {entry_dir} ({INDEX_FILE} missing)") from None
    except IsADirectoryError:
        raise IndexFormatError(f"{path} is a directory, not an index file") from None
    try:
        index = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexFormatError(f"{path} is not valid JSON: {exc}") from None
    check_index(index, entry_dir)
    return index


def check_index(index: Any, entry_dir: Path) -> None:
    """Raise IndexFormatError unless `index` has the structure of an entry index."""
    where = entry_dir / INDEX_FILE

    def bad(message: str) -> IndexFormatError:
        return IndexFormatError(f"{where}: {message}")

    if not isinstance(index, dict):
        raise bad(f"expected a JSON object, found {type(index).__name__}")
    for field, kind in (("key", str), ("config", dict), ("shards", list), ("failures", dict)):
        if field not in index:
            raise bad(f"field {field!r} is missing")
        if not isinstance(index[field], kind):
            raise bad(f"field {field!r} should be a {kind.__name__}, not {type(index[field]).__name__}")
    if "dtype" in index and not isinstance(index["dtype"], str):
        raise bad("field 'dtype' should be a string")
    streams = index["config"].get("streams", {})
    if not isinstance(streams, dict) or not all(
            isinstance(spec, dict) and all(isinstance(spec.get(k, 0), int) and not isinstance(spec.get(k, 0), bool)
                                           and spec.get(k, 0) >= 0 for k in ("tokens", "dim"))
            for spec in streams.values()):
        raise bad("config.streams should map stream names to specs with integer 'tokens' and 'dim'")
    if "dataset" in index and (problem := check_dataset_record(index["dataset"])):
        raise bad(f"field 'dataset' {problem}")
    if not isinstance(index.get(PLUGIN_FIELD, ""), str):
        raise bad(f"field {PLUGIN_FIELD!r} should be a string (a plugin module or file)")
    retired = index.get("retired", [])
    if not isinstance(retired, list) or not all(isinstance(f, str) for f in retired):
        raise bad("field 'retired' should be a list of shard file names")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in index["failures"].items()):
        raise bad("'failures' should map unit ids to reasons (strings)")
    names: set[str] = set()
    for i, shard in enumerate(index["shards"]):
        if not isinstance(shard, dict):
            raise bad(f"shards[{i}] should be an object, not {type(shard).__name__}")
        for field, kind in (("file", str), ("unit_ids", list), ("units", int), ("sha256", str), ("bytes", int)):
            value = shard.get(field)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise bad(f"shards[{i}].{field} should be a {kind.__name__}, not {type(value).__name__}")
        try:
            safe_child(entry_dir, shard["file"])
        except ValueError as exc:
            raise IndexFormatError(f"{where}: shards[{i}]: {exc}") from None
        if shard["file"] in names:
            raise bad(f"shard {shard['file']} is listed twice")
        names.add(shard["file"])
        if not all(isinstance(u, str) for u in shard["unit_ids"]):
            raise bad(f"shards[{i}].unit_ids should be strings")
        if shard["units"] != len(shard["unit_ids"]):
            raise bad(f"shards[{i}] says {shard['units']} units but lists {len(shard['unit_ids'])}")
        if shard["bytes"] < 0 or not SHA256.fullmatch(shard["sha256"]):
            raise bad(f"shards[{i}] has a malformed size or sha256")
        if "blake3" in shard and not (isinstance(shard["blake3"], str) and SHA256.fullmatch(shard["blake3"])):
            raise bad(f"shards[{i}].blake3 should be 64 hex digits")


def write_index(entry_dir: Path, index: dict[str, Any]) -> None:
    """Atomically replace the index."""
    atomic_write_text(entry_dir / INDEX_FILE, json.dumps(index, indent=1, sort_keys=True))
