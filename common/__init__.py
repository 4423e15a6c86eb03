"""Leaf helpers every migue package may use (it imports none of them): file hashing, atomic
writes, device choice and the names of the splits."""
from .devices import pick_device
from .files import atomic_write, atomic_writer, file_sha256, fsync_dir, host_tag, publish, temp_prefix, write_all
from .splits import SPLITS, split_named

__all__ = ["SPLITS", "atomic_write", "atomic_writer", "file_sha256", "fsync_dir", "host_tag", "pick_device",
           "publish", "split_named", "temp_prefix", "write_all"]
