"""The HDF5 feature store. Depends on no other migue package (only the `migue.common` leaf).

Lazy: each name is imported from its module on first use, so that `from migue.cache import
FeatureStore` (every command's --help) needs neither h5py nor pandas."""
from __future__ import annotations

from migue.common.lazy import lazy_getattr

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
    "DiskFullError": ".diskfull",
    "DuplicateUnitsError": ".writer",
    "EntryWriter": ".writer",
    "file_sha256": "migue.common.files",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_getattr(__name__, _WHERE, globals())  # a public name from its module, or a submodule


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
