"""The HDF5 feature store. Depends on no other migue package (only the `migue.common` leaf).

Lazy: each name is imported from its module on first use, so that `from migue.cache import
FeatureStore` (every command's --help) needs neither h5py nor pandas."""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {  # name -> the module that defines it
    "atomic_write_bytes": ".atomic",
    "atomic_writer": ".atomic",
    "fsync_dir": ".atomic",
    "publish": ".atomic",
    "write_all": ".atomic",
    "EntryBeingWrittenError": ".claims",
    "WorkClaims": ".claims",
    "chunk_name": ".claims",
    "refuse_if_written": ".claims",
    "writing_now": ".claims",
    "NonFiniteTokensError": ".finite",
    "GcReport": ".gc",
    "collect_garbage": ".gc",
    "collect_parsed": ".gc",
    "IndexFormatError": ".index",
    "entry_key": ".keys",
    "entry_name": ".keys",
    "default_cache_root": ".paths",
    "resolve_cache_root": ".paths",
    "ChunkPublisher": ".publish",
    "EntryReader": ".reader",
    "UnitScopeError": ".scope",
    "dataset_record": ".scope",
    "ShardError": ".shard",
    "EntryInfo": ".store",
    "FeatureStore": ".store",
    "COLUMN": ".units",
    "KINDS": ".units",
    "MG_KIND": ".units",
    "NO_LABEL": ".units",
    "UNIT_COLUMNS": ".units",
    "UnitRecord": ".units",
    "UnitSchemaError": ".units",
    "WINDOW_KIND": ".units",
    "EntryDigest": ".verify",
    "VerifyReport": ".verify",
    "digest_entry": ".verify",
    "verify_entry": ".verify",
    "DiskFullError": ".writer",
    "DuplicateUnitsError": ".writer",
    "EntryWriter": ".writer",
    "file_sha256": "migue.common.files",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """A public name (from its module), or a submodule (`migue.cache.writer`)."""
    if name in _WHERE:
        module = _WHERE[name]
        value = getattr(importlib.import_module(module, __name__) if module.startswith(".") else
                        importlib.import_module(module), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
