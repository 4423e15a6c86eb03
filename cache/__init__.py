"""The HDF5 feature store. Depends on no other migue package."""
from .keys import entry_key, entry_name, file_sha256
from .paths import default_cache_root, resolve_cache_root
from .reader import EntryReader
from .shard import ShardError
from .store import EntryInfo, FeatureStore
from .writer import DuplicateUnitsError, EntryWriter

__all__ = ["DuplicateUnitsError", "EntryInfo", "EntryReader", "EntryWriter", "FeatureStore",
           "ShardError", "default_cache_root", "entry_key", "entry_name", "file_sha256",
           "resolve_cache_root"]
