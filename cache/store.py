"""The feature store: a root folder of entries, one per key."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .index import INDEX_FILE, read_index
from .keys import entry_name
from .listing import TRASH_PREFIX
from .paths import resolve_cache_root

if TYPE_CHECKING:  # imported where used: h5py and pandas only when an entry is read or written
    from .reader import EntryReader
    from .writer import EntryWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryInfo:
    """A summary line of one entry for `migue cache ls`."""

    name: str
    modality: str
    units: int
    shards: int
    failures: int
    bytes: int
    config: dict[str, Any]


class FeatureStore:
    """All entries under one cache root."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = resolve_cache_root(root)

    def entry_dir(self, config: dict[str, Any]) -> Path:
        return self.root / entry_name(config)

    def writer(self, config: dict[str, Any], dtype: str = "float16") -> EntryWriter:
        from .writer import EntryWriter

        return EntryWriter(self.entry_dir(config), config, dtype)

    def reader(self, name_or_path: str | Path) -> EntryReader:
        from .reader import EntryReader

        return EntryReader(self.resolve(name_or_path))

    def resolve(self, name_or_path: str | Path) -> Path:
        """The folder of an entry given by path or by name under this root."""
        path = Path(name_or_path)
        if (path / INDEX_FILE).exists():
            return path
        if not str(name_or_path) or "/" in str(name_or_path) or str(name_or_path) in (".", ".."):
            raise FileNotFoundError(f"no cache entry at {name_or_path}")
        path = self.root / str(name_or_path)
        if not (path / INDEX_FILE).exists():
            raise FileNotFoundError(f"no cache entry {name_or_path} in {self.root} (see `migue cache ls`)")
        return path

    def entry_dirs(self) -> list[Path]:
        """Every entry folder (one holding an index.json), readable or not; not one being removed."""
        return sorted(p.parent for p in self.root.glob(f"*/{INDEX_FILE}") if not p.parent.name.startswith(TRASH_PREFIX))

    def entries(self) -> list[EntryInfo]:
        """Summaries of the readable entries; an unreadable index is logged and left out."""
        out = []
        for entry_dir in self.entry_dirs():
            try:
                index = read_index(entry_dir)
            except (OSError, ValueError) as exc:
                log.warning("skipping cache entry %s: %s (run `migue cache verify`)", entry_dir.name, exc)
                continue
            shards = index["shards"]
            out.append(EntryInfo(
                name=entry_dir.name,
                modality=index["config"].get("modality", "?"),
                units=sum(s["units"] for s in shards),
                shards=len(shards),
                failures=len(index.get("failures", {})),
                bytes=sum(s["bytes"] for s in shards),
                config=index["config"],
            ))
        return out

    def find(self, **match: Any) -> list[EntryInfo]:
        """Entries whose config has all of the given key=value pairs."""
        return [e for e in self.entries() if all(e.config.get(k) == v for k, v in match.items())]
