"""Publishing shards into a cache entry: one writer per shard, temp name, atomic rename."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from migue.common.files import TMP_PREFIX, file_sha256, fsync_dir, host_tag, temp_prefix

from .index import INDEX_FILE, locked, read_index, write_index
from .keys import entry_key
from .shard import ShardError, read_units, write_shard
from .units import check_units

SHARD_GLOB = "shard-*.h5"
FOREIGN_TMP_AGE_S = 24 * 3600  # a temp file of another machine's writer is only removed this old


class DuplicateUnitsError(RuntimeError):
    """Another writer already published some of these units."""


class DiskFullError(OSError):
    """The filesystem under an entry ran out of space; nothing half-written was published."""


class EntryWriter:
    """Appends shards to one entry; safe against kills and concurrent writers."""

    def __init__(self, entry_dir: Path, config: dict[str, Any], dtype: str = "float16") -> None:
        self.dir = Path(entry_dir)
        self.config = config
        self.dtype = dtype
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with locked(self.dir):
                self.removed_temp_files = remove_temp_files(self.dir)
                if not (self.dir / INDEX_FILE).exists():
                    write_index(self.dir, {"key": entry_key(config), "config": config, "dtype": dtype,
                                           "shards": [], "failures": {}})
                index = read_index(self.dir)
                if index["key"] != entry_key(config):
                    raise ValueError(f"{self.dir} holds entry {index['key'][:12]}, not this config's "
                                     f"{entry_key(config)[:12]}: refusing to mix features")
                adopted, _ = adopt_orphans(self.dir, index)
                if adopted:
                    write_index(self.dir, index)
        except OSError as exc:
            raise disk_full(self.dir, exc, 0) if exc.errno == errno.ENOSPC else exc

    def done_units(self) -> set[str]:
        """Unit ids already in published shards."""
        index = read_index(self.dir)
        return {u for shard in index["shards"] for u in shard["unit_ids"]}

    def failures(self) -> dict[str, str]:
        """Unit id -> reason, for units that failed and are not published."""
        return dict(read_index(self.dir)["failures"])

    def write(self, units: Mapping[str, Sequence[Any]], streams: Mapping[str, Sequence[np.ndarray]]) -> Path:
        """Write one shard to a temp name, publish it by rename, then record it in the index.

        Raises UnitSchemaError (columns that break the unit schema: nothing is written),
        DuplicateUnitsError (another writer published some of these units first: nothing is
        written) or DiskFullError (no space: nothing is published)."""
        units = check_units(units)
        name = f"shard-{time.time_ns():019d}-{uuid.uuid4().hex[:8]}.h5"
        tmp = self.dir / temp_prefix(name)
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
                fsync_dir(self.dir)  # the rename survives a power cut
                index["shards"].append(_record(final, list(units["unit_id"]), checksum))
                for u in units["unit_id"]:
                    index["failures"].pop(u, None)
                # A failed index write leaves `final` published but unrecorded: the next
                # writer (or `migue cache gc`) adopts it, so it is neither lost nor doubled.
                write_index(self.dir, index)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                need = sum(np.asarray(a).size for arrays in streams.values() for a in arrays)
                raise disk_full(self.dir, exc, need * np.dtype(self.dtype).itemsize) from exc
            raise
        return final

    def record_failures(self, reasons: Mapping[str, str]) -> None:
        """Remember why units failed (their ids and reasons), so they are reported, not dropped."""
        if not reasons:
            return
        try:
            with locked(self.dir):
                index = read_index(self.dir)
                index["failures"].update(reasons)
                write_index(self.dir, index)
        except OSError as exc:
            raise disk_full(self.dir, exc, 0) if exc.errno == errno.ENOSPC else exc


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


def _record(path: Path, unit_ids: list[str], checksum: str) -> dict[str, Any]:
    return {"file": path.name, "unit_ids": unit_ids, "units": len(unit_ids),
            "sha256": checksum, "bytes": path.stat().st_size}


def adopt_orphans(entry_dir: Path, index: dict[str, Any]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Add to `index` (in place) published shards it does not list: a writer killed between its
    rename and its index update leaves one. Returns (adopted, rejected with the reason): a
    shard that cannot be read, or whose units are already published, is not adopted.
    Call under the entry lock, and write the index if anything was adopted."""
    known = {s["file"] for s in index["shards"]}
    done = {u for s in index["shards"] for u in s["unit_ids"]}
    adopted, rejected = [], []
    for path in sorted(Path(entry_dir).glob(SHARD_GLOB)):
        if path.name in known:
            continue
        try:
            ids = [str(u) for u in read_units(path)["unit_id"]]
        except ShardError as exc:
            rejected.append((path, f"unreadable: {exc}"))
            continue
        if done.intersection(ids):
            rejected.append((path, f"its units are already published ({len(done.intersection(ids))} of {len(ids)})"))
            continue
        index["shards"].append(_record(path, ids, file_sha256(str(path))))
        done.update(ids)
        adopted.append(path)
    return adopted, rejected


def remove_temp_files(entry_dir: Path, older_than_s: float = 0.0, dry_run: bool = False) -> list[Path]:
    """Delete leftover temp files of dead writers; returns what was removed. A temp file names
    its writer (`.tmp-<pid>@<host>-...`): one of a live process here is kept, one of another
    machine only goes once it is a day old. Call under the entry lock (index temp files are
    only written under it)."""
    removed = []
    now = time.time()
    for path in Path(entry_dir).glob(f"{TMP_PREFIX}*"):
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= older_than_s and not _writer_alive(path, age):
            with contextlib.suppress(FileNotFoundError):
                if not dry_run:
                    path.unlink()
                removed.append(path)
    return removed


def _writer_alive(path: Path, age: float) -> bool:
    """Whether the writer a temp file names may still be writing it."""
    owner = path.name[len(TMP_PREFIX):].split("-", 1)[0]
    pid, _, host = owner.partition("@")
    if not pid.isdigit():
        return False  # not a writer's name (an old-style or stray temp file)
    if host and host != host_tag():
        return age < FOREIGN_TMP_AGE_S
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
