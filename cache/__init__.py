"""The HDF5 feature store. Depends on no other migue package (only the `migue.common` leaf)."""
from migue.common.files import file_sha256

from .atomic import atomic_write_bytes, atomic_writer, fsync_dir, publish, write_all
from .claims import EntryBeingWrittenError, WorkClaims, chunk_name, refuse_if_written, writing_now
from .finite import NonFiniteTokensError
from .gc import GcReport, collect_garbage, collect_parsed
from .index import IndexFormatError
from .keys import entry_key, entry_name
from .paths import default_cache_root, resolve_cache_root
from .publish import ChunkPublisher
from .reader import EntryReader
from .scope import UnitScopeError, dataset_record
from .shard import ShardError
from .store import EntryInfo, FeatureStore
from .units import COLUMN, KINDS, MG_KIND, NO_LABEL, UNIT_COLUMNS, WINDOW_KIND, UnitRecord, UnitSchemaError
from .verify import EntryDigest, VerifyReport, digest_entry, verify_entry
from .writer import DiskFullError, DuplicateUnitsError, EntryWriter

__all__ = ["COLUMN", "ChunkPublisher", "DiskFullError", "DuplicateUnitsError", "EntryBeingWrittenError",
           "EntryDigest", "EntryInfo", "EntryReader", "EntryWriter", "FeatureStore", "GcReport", "IndexFormatError",
           "KINDS", "MG_KIND", "NO_LABEL", "NonFiniteTokensError", "ShardError", "UNIT_COLUMNS", "UnitRecord",
           "UnitSchemaError", "UnitScopeError", "VerifyReport", "WINDOW_KIND", "WorkClaims", "atomic_write_bytes",
           "atomic_writer", "chunk_name", "collect_garbage", "collect_parsed", "dataset_record",
           "default_cache_root", "digest_entry", "entry_key", "entry_name", "file_sha256", "fsync_dir", "publish",
           "refuse_if_written", "resolve_cache_root", "verify_entry", "write_all", "writing_now"]
