"""What `migue cache ls` shows of an entry, and `migue cache rm`: removing one atomically.

An entry is complete when no run writes it and every unit of the dataset its last extract was
given (the index's `dataset` record, `scope.py`) is published or recorded as failed. An entry a
run is writing (live writer marks or chunk claims, `claims.py`), one interrupted before its first
shard, or one missing units of its last extract is incomplete, and says why.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .claims import EntryBeingWrittenError, WorkClaims, live_writers
from .index import PLUGIN_FIELD, locked, read_index
from .scope import DATASET_FIELD

TRASH_PREFIX = ".trash-"  # an entry being removed: renamed to this first, so it never looks whole


@dataclass(frozen=True)
class EntryListing:
    """One entry as `migue cache ls` shows it."""

    name: str
    path: str
    modality: str
    backbone: str
    arch: str
    frames: int | None
    size: int | None  # input side in pixels (rgb, context: the clip; face: the crop); None for pose
    units: int  # published
    wanted: int | None  # units of the dataset its last extract was given (None: not recorded)
    failed: int
    shards: int
    complete: bool
    why: str  # why it is incomplete ('' when complete)
    disk_bytes: int  # every file in the entry folder
    dataset: list[str] = field(default_factory=list)  # the roots its last extract read
    layout: str = ""
    plugin: str = ""  # the plugin that registered its modality row ('' : built-in, or not recorded)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes, files) of every regular file below `folder` (symlinks not followed)."""
    total = count = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # removed while we looked
                continue
            total += st.st_size
            count += 1
    return total, count


def _inputs(config: dict[str, Any]) -> tuple[int | None, int | None]:
    """(frames, input side) from an entry config; the face crop is its side."""
    inputs, extractor = config.get("inputs", {}) or {}, config.get("extractor", {}) or {}
    frames = inputs.get("frames", extractor.get("frames"))
    modality = config.get("modality")
    size = inputs.get("face_size") if modality == "face" else None if modality == "pose" else inputs.get("size")
    return (frames if isinstance(frames, int) else None), (size if isinstance(size, int) else None)


def _shown_modality(config: dict[str, Any]) -> str:
    """The modality, with '@dense' for dense windows over whole sequences (the online task's)."""
    from .units import DENSE_KIND  # late: the unit schema imports pandas

    modality = str(config.get("modality", "?"))
    return f"{modality}@{DENSE_KIND}" if config.get("unit_kind") == DENSE_KIND else modality


def entry_listing(entry_dir: Path) -> EntryListing:
    """The listing of one entry (raises what `read_index` raises for an unreadable index)."""
    entry_dir = Path(entry_dir)
    index = read_index(entry_dir)
    config = index["config"]
    published = {u for s in index["shards"] for u in s["unit_ids"]}
    failures = index["failures"]
    record = index.get(DATASET_FIELD) or {}
    wanted = set(record.get("units", [])) if record else None
    writers, claims = live_writers(entry_dir), WorkClaims(entry_dir).live()
    if writers or claims:
        claimed = {u for ids in claims.values() for u in ids} - published
        why = (f"being written now ({writers} extract process(es), {len(claimed)} units claimed); "
               "wait for it to finish")
    elif not index["shards"]:
        why = "interrupted before its first shard: nothing published; run its extract again"
    elif wanted is not None and (missing := wanted - published - set(failures)):
        why = (f"{len(missing)} of the {len(wanted)} units its last extract asked for are neither published "
               "nor failed; run that extract again to resume")
    else:
        why = ""
    frames, size = _inputs(config)
    return EntryListing(
        name=entry_dir.name, path=str(entry_dir), modality=_shown_modality(config),
        backbone=str(config.get("backbone", "?")), arch=str(config.get("arch", "")), frames=frames, size=size,
        units=len(published & wanted) if wanted is not None else len(published),
        wanted=len(wanted) if wanted is not None else None,
        failed=len(set(failures) - published), shards=len(index["shards"]), complete=not why, why=why,
        disk_bytes=folder_bytes(entry_dir)[0], dataset=[str(r) for r in record.get("roots", [])],
        layout=str(record.get("layout", "")), plugin=index.get(PLUGIN_FIELD, ""))


@dataclass(frozen=True)
class Removal:
    """What `remove_entry` removed (or would remove, with dry_run)."""

    name: str
    files: int
    bytes: int


def remove_entry(entry_dir: Path, dry_run: bool = False) -> Removal:
    """Remove an entry: refused (EntryBeingWrittenError) while an extract writes it; otherwise
    renamed to a trash name (atomic: the entry is whole or gone, never half there), then deleted."""
    entry_dir = Path(entry_dir)
    size, files = folder_bytes(entry_dir)
    with locked(entry_dir):
        writers, claims = live_writers(entry_dir), WorkClaims(entry_dir).live()
        if writers or claims:
            raise EntryBeingWrittenError(
                f"cache entry {entry_dir.name} is being written ({writers} extract process(es), {len(claims)} "
                "chunk(s) claimed): stop that extract (or let it finish) before removing the entry")
        if dry_run:
            return Removal(entry_dir.name, files, size)
        trash = entry_dir.with_name(f"{TRASH_PREFIX}{entry_dir.name}-{os.urandom(4).hex()}")
        os.rename(entry_dir, trash)
    shutil.rmtree(trash)
    return Removal(entry_dir.name, files, size)


def remove_trash(root: Path) -> list[Path]:
    """Delete what an interrupted `remove_entry` left (trash folders); returns them."""
    gone = sorted(p for p in Path(root).glob(f"{TRASH_PREFIX}*") if p.is_dir())
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone
