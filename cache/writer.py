"""Publishing shards into a cache entry: one writer per shard, temp name, atomic rename."""
from __future__ import annotations

import contextlib
import errno
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import TempFile, fsync_dir, remove_dead_temps
from .checksums import file_checksums
from .claims import WriterMark
from .diskfull import disk_full, is_disk_full
from .finite import NonFiniteTokensError, nonfinite_units
from .index import INDEX_FILE, PLUGIN_FIELD, locked, read_index, write_index
from .keys import entry_key
from .paths import safe_child
from .scope import DATASET_FIELD
from .shard import ShardError, read_rows, read_units, write_shard
from .units import check_units

SHARD_GLOB = "shard-*.h5"


class DuplicateUnitsError(RuntimeError):
    """Another writer already published some of these units."""


class EntryWriter:
    """Appends shards to one entry; safe against kills and concurrent writers."""

    def __init__(self, entry_dir: Path, config: dict[str, Any], dtype: str = "float16") -> None:
        self.dir = Path(entry_dir)
        self.config = config
        self.dtype = dtype
        self._mark: WriterMark | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._mark = WriterMark(self.dir)  # readers see a run writing this entry (see claims.py)
            weakref.finalize(self, self._mark.release)
            with locked(self.dir):
                self.removed_temp_files = remove_dead_temps(self.dir)
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

    def close(self) -> None:
        """Stop marking the entry as being written (also done when the writer is collected)."""
        if self._mark is not None:
            self._mark.release()

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
        DuplicateUnitsError (another writer published some of these units first:
        nothing is written), NonFiniteTokensError (NaN, inf or values past the dtype: nothing
        is written) or DiskFullError (no space: nothing is published)."""
        units = check_units(units)
        bad = nonfinite_units(list(units["unit_id"]), streams, self.dtype)
        if bad:
            shown = "; ".join(f"{u}: {why}" for u, why in list(bad.items())[:3])
            raise NonFiniteTokensError(f"cache entry {self.dir.name}: {len(bad)} units have tokens that "
                                       f"cannot be stored as {self.dtype} ({shown}); nothing was written")
        name = new_shard_name()
        final = self.dir / name
        temp = None
        try:
            temp = self._temp(name)
            write_shard(temp.path, units, streams, self.dtype)
            temp.fsync()
            checksum = file_checksums(temp.path)
            with locked(self.dir):
                index = read_index(self.dir)
                done = {u for shard in index["shards"] for u in shard["unit_ids"]}
                dup = [u for u in units["unit_id"] if u in done]
                if dup:  # another writer published them first: ours is discarded, not doubled
                    raise DuplicateUnitsError(f"{len(dup)} units already published, e.g. {dup[0]}")
                temp.publish(final)
                index["shards"].append(_record(final, list(units["unit_id"]), checksum))
                for u in units["unit_id"]:
                    index["failures"].pop(u, None)
                # A failed index write leaves `final` published but unrecorded: the next
                # writer (or `migue cache gc`) adopts it, so it is neither lost nor doubled.
                write_index(self.dir, index)
        except BaseException as exc:
            if temp is not None:
                temp.discard()
            if is_disk_full(exc):
                need = sum(np.asarray(a).size for arrays in streams.values() for a in arrays)
                raise disk_full(self.dir, exc, need * np.dtype(self.dtype).itemsize) from exc
            raise
        return final

    def _temp(self, name: str) -> TempFile:
        """A locked temp file, created under the entry lock so that no cleaner ever sees it unlocked."""
        with locked(self.dir):
            return TempFile(self.dir, name)

    def published_fingerprints(self) -> dict[str, str]:
        """Unit id -> the input fingerprint it was extracted from ('' where none was recorded)."""
        out: dict[str, str] = {}
        for shard in read_index(self.dir)["shards"]:
            columns = read_units(safe_child(self.dir, shard["file"]))
            fps = columns.get("fingerprint")
            for i, uid in enumerate(columns["unit_id"]):
                out[str(uid)] = str(fps[i]) if fps is not None else ""
        return out

    def retire(self, unit_ids: set[str]) -> int:
        """Take units out of the entry (their inputs changed): each shard holding some is
        rewritten without them (temp, fsync, rename) and the index updated in one atomic
        write; the old shard files are named in the index's `retired` list before they are
        deleted, so a crash in between can never bring their tokens back. Returns how many."""
        gone = 0
        try:
            with locked(self.dir):
                index = read_index(self.dir)
                shards, dropped = [], []
                for shard in index["shards"]:
                    hit = [u for u in shard["unit_ids"] if u in unit_ids]
                    if not hit:
                        shards.append(shard)
                        continue
                    old = safe_child(self.dir, shard["file"])
                    keep = [i for i, u in enumerate(shard["unit_ids"]) if u not in unit_ids]
                    if keep:
                        shards.append(self._rewrite(old, keep))
                    dropped.append(shard["file"])
                    gone += len(hit)
                if not dropped:
                    return 0
                index["shards"] = shards
                index["retired"] = sorted(set(index.get("retired", [])) | set(dropped))
                write_index(self.dir, index)
                for name in dropped:
                    with contextlib.suppress(FileNotFoundError):
                        (self.dir / name).unlink()
                fsync_dir(self.dir)
        except OSError as exc:
            raise disk_full(self.dir, exc, 0, "rewriting shards without changed units") \
                if exc.errno == errno.ENOSPC else exc
        return gone

    def _rewrite(self, old: Path, keep: list[int]) -> dict[str, Any]:
        """A new published shard holding rows `keep` of `old` (call under the entry lock)."""
        units, streams = read_rows(old, keep)
        name = new_shard_name()
        with TempFile(self.dir, name) as temp:
            write_shard(temp.path, units, streams, self.dtype)
            temp.fsync()
            checksum = file_checksums(temp.path)
            temp.publish(self.dir / name)
        return _record(self.dir / name, list(units["unit_id"]), checksum)

    def record_dataset(self, record: dict[str, Any]) -> None:
        """Record the dataset this run was given (`scope.dataset_record`): readers then refuse to
        mix its units with those of another dataset (or of rows since removed) left in the entry."""
        self._record_field(DATASET_FIELD, record)

    def record_plugin(self, source: str) -> None:
        """Record the plugin (module name or .py file) that registered the entry's modality row, so
        that a command needing the row (`cache verify --data`) can name it. Not part of the key: the
        file moving changes no feature."""
        self._record_field(PLUGIN_FIELD, source)

    def _record_field(self, name: str, value: Any) -> None:
        """Set one descriptive index field (written only when it changes)."""
        try:
            with locked(self.dir):
                index = read_index(self.dir)
                if index.get(name) == value:
                    return
                index[name] = value
                write_index(self.dir, index)
        except OSError as exc:
            raise disk_full(self.dir, exc, 0) if exc.errno == errno.ENOSPC else exc

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


def new_shard_name() -> str:
    """`shard-<time ns>-<random>.h5`: unique, and in publishing order."""
    return f"shard-{time.time_ns():019d}-{uuid.uuid4().hex[:8]}.h5"


def _record(path: Path, unit_ids: list[str], checksums: dict[str, str]) -> dict[str, Any]:
    """A shard's index record: its units, size, SHA-256 (`cache verify`) and BLAKE3 (readers)."""
    return {"file": path.name, "unit_ids": unit_ids, "units": len(unit_ids),
            "sha256": checksums["sha256"], "blake3": checksums["blake3"], "bytes": path.stat().st_size}


def adopt_orphans(entry_dir: Path, index: dict[str, Any]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Add to `index` (in place) published shards it does not list: a writer killed between its
    rename and its index update leaves one. Returns (adopted, rejected with the reason): a
    shard that cannot be read, or whose units are already published, is not adopted.
    Call under the entry lock, and write the index if anything was adopted."""
    known = {s["file"] for s in index["shards"]}
    retired = set(index.get("retired", []))
    done = {u for s in index["shards"] for u in s["unit_ids"]}
    adopted, rejected = [], []
    for path in sorted(Path(entry_dir).glob(SHARD_GLOB)):
        if path.name in known:
            continue
        if path.name in retired:  # its units were taken out (inputs changed): never served again
            rejected.append((path, "retired: its units' inputs changed"))
            continue
        try:
            ids = [str(u) for u in read_units(path)["unit_id"]]
        except ShardError as exc:
            rejected.append((path, f"unreadable: {exc}"))
            continue
        if done.intersection(ids):
            rejected.append((path, f"its units are already published ({len(done.intersection(ids))} of {len(ids)})"))
            continue
        index["shards"].append(_record(path, ids, file_checksums(path)))
        done.update(ids)
        adopted.append(path)
    return adopted, rejected
