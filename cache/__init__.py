"""The HDF5 feature store. Depends on no other migue package."""
from .atomic import atomic_write_bytes, fsync_dir, publish, write_all
from .claims import WorkClaims, chunk_name
from .finite import NonFiniteTokensError
from .gc import GcReport, collect_garbage, collect_parsed
from .index import IndexFormatError
from .keys import entry_key, entry_name, file_sha256
from .paths import default_cache_root, resolve_cache_root
from .reader import EntryReader
from .shard import ShardError
from .store import EntryInfo, FeatureStore
from .verify import EntryDigest, VerifyReport, digest_entry, verify_entry
from .writer import DiskFullError, DuplicateUnitsError, EntryWriter

__all__ = ["DiskFullError", "DuplicateUnitsError", "EntryDigest", "EntryInfo", "EntryReader", "EntryWriter",
           "FeatureStore", "GcReport", "IndexFormatError", "NonFiniteTokensError", "ShardError", "VerifyReport",
           "WorkClaims", "atomic_write_bytes", "chunk_name", "collect_garbage", "collect_parsed", "default_cache_root", "digest_entry",
           "entry_key", "entry_name", "file_sha256", "fsync_dir", "publish", "resolve_cache_root", "verify_entry",
           "write_all"]
