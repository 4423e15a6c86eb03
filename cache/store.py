"""The feature store: a root folder of entries, one per key."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .index import INDEX_FILE, read_index
from .keys import entry_name
from .paths import resolve_cache_root
from .reader import EntryReader
from .writer import EntryWriter


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
        return EntryWriter(self.entry_dir(config), config, dtype)

    def reader(self, name_or_path: str | Path) -> EntryReader:
        path = Path(name_or_path)
        if not (path / INDEX_FILE).exists():
            path = self.root / str(name_or_path)
        return EntryReader(path)

    def entries(self) -> list[EntryInfo]:
        out = []
        for index_path in sorted(self.root.glob(f"*/{INDEX_FILE}")):
            index = read_index(index_path.parent)
            shards = index["shards"]
            out.append(EntryInfo(
                name=index_path.parent.name,
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
