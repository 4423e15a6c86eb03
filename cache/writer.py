"""Publishing shards into a cache entry: one writer per shard, temp name, atomic rename."""
from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .index import INDEX_FILE, locked, read_index, write_index
from .keys import entry_key, file_sha256
from .shard import ShardError, read_units, write_shard

SHARD_GLOB = "shard-*.h5"
TMP_PREFIX = ".tmp-"


class EntryWriter:
    """Appends shards to one entry; safe against kills and concurrent writers."""

    def __init__(self, entry_dir: Path, config: dict[str, Any], dtype: str = "float16") -> None:
        self.dir = Path(entry_dir)
        self.config = config
        self.dtype = dtype
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir):
            if not (self.dir / INDEX_FILE).exists():
                write_index(self.dir, {"key": entry_key(config), "config": config, "dtype": dtype,
                                       "shards": [], "failures": {}})
            index = read_index(self.dir)
            if index["key"] != entry_key(config):
                raise ValueError(f"{self.dir} holds entry {index['key'][:12]}, not this config's "
                                 f"{entry_key(config)[:12]}: refusing to mix features")
            self._reconcile(index)

    def done_units(self) -> set[str]:
        """Unit ids already in published shards."""
        index = read_index(self.dir)
        return {u for shard in index["shards"] for u in shard["unit_ids"]}

    def failures(self) -> dict[str, str]:
        """Unit id -> reason, for units that failed and are not published."""
        return dict(read_index(self.dir)["failures"])

    def write(self, units: Mapping[str, Sequence[Any]], streams: Mapping[str, Sequence[np.ndarray]]) -> Path:
        """Write one shard to a temp name, publish it by rename, then record it in the index."""
        name = f"shard-{time.time_ns():019d}-{uuid.uuid4().hex[:8]}.h5"
        tmp = self.dir / f"{TMP_PREFIX}{os.getpid()}-{name}"
        final = self.dir / name
        try:
            write_shard(tmp, units, streams, self.dtype)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            checksum = file_sha256(str(tmp))
            with locked(self.dir):
                index = read_index(self.dir)
                done = {u for shard in index["shards"] for u in shard["unit_ids"]}
                dup = [u for u in units["unit_id"] if u in done]
                if dup:  # another writer published them first: ours is discarded, not doubled
                    os.unlink(tmp)
                    raise DuplicateUnitsError(f"{len(dup)} units already published, e.g. {dup[0]}")
                os.replace(tmp, final)
                index["shards"].append(self._record(final, list(units["unit_id"]), checksum))
                for u in units["unit_id"]:
                    index["failures"].pop(u, None)
                write_index(self.dir, index)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return final

    def record_failures(self, reasons: Mapping[str, str]) -> None:
        """Remember why units failed (their ids and reasons), so they are reported, not dropped."""
        if not reasons:
            return
        with locked(self.dir):
            index = read_index(self.dir)
            index["failures"].update(reasons)
            write_index(self.dir, index)

    @staticmethod
    def _record(path: Path, unit_ids: list[str], checksum: str) -> dict[str, Any]:
        return {"file": path.name, "unit_ids": unit_ids, "units": len(unit_ids),
                "sha256": checksum, "bytes": path.stat().st_size}

    def _reconcile(self, index: dict[str, Any]) -> None:
        """Adopt shards published by a writer killed before it updated the index."""
        known = {s["file"] for s in index["shards"]}
        done = {u for s in index["shards"] for u in s["unit_ids"]}
        changed = False
        for path in sorted(self.dir.glob(SHARD_GLOB)):
            if path.name in known:
                continue
            try:
                ids = [str(u) for u in read_units(path)["unit_id"]]
            except ShardError:
                continue  # left for `migue cache verify` / gc to report
            if done.intersection(ids):
                continue
            index["shards"].append(self._record(path, ids, file_sha256(str(path))))
            done.update(ids)
            changed = True
        if changed:
            write_index(self.dir, index)


class DuplicateUnitsError(RuntimeError):
    """Another writer already published some of these units."""


def remove_temp_files(entry_dir: Path, older_than_s: float = 0.0) -> list[Path]:
    """Delete leftover temp files of dead writers; returns what was removed."""
    removed = []
    now = time.time()
    for path in Path(entry_dir).glob(f"{TMP_PREFIX}*"):
        if now - path.stat().st_mtime >= older_than_s and not _writer_alive(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _writer_alive(path: Path) -> bool:
    """A shard temp file carries its writer's pid; an index temp file is always stale."""
    parts = path.name[len(TMP_PREFIX):].split("-", 1)
    if not parts[0].isdigit():
        return False
    pid = int(parts[0])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
