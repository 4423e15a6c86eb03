"""The HDF5 feature store. Depends on no other migue package (only the `migue.common` leaf)."""
from migue.common.files import file_sha256

from .claims import WorkClaims, chunk_name
from .gc import GcReport, collect_garbage
from .index import IndexFormatError
from .keys import entry_key, entry_name
from .paths import default_cache_root, resolve_cache_root
from .publish import ChunkPublisher
from .reader import EntryReader
from .shard import ShardError
from .store import EntryInfo, FeatureStore
from .units import COLUMN, KINDS, MG_KIND, NO_LABEL, UNIT_COLUMNS, WINDOW_KIND, UnitRecord, UnitSchemaError
from .verify import EntryDigest, VerifyReport, digest_entry, verify_entry
from .writer import DiskFullError, DuplicateUnitsError, EntryWriter

__all__ = ["COLUMN", "ChunkPublisher", "KINDS", "MG_KIND", "NO_LABEL", "UNIT_COLUMNS", "WINDOW_KIND",
           "DiskFullError", "DuplicateUnitsError", "EntryDigest", "EntryInfo", "EntryReader", "EntryWriter",
           "FeatureStore", "GcReport", "IndexFormatError", "ShardError", "UnitRecord", "UnitSchemaError",
           "VerifyReport", "WorkClaims",
           "chunk_name", "collect_garbage", "default_cache_root", "digest_entry", "entry_key", "entry_name",
           "file_sha256", "resolve_cache_root", "verify_entry"]
