"""Leaf helpers every migue package may use (it imports none of them): file hashing, device
choice and the names of the splits. (Atomic writes live in `migue.cache.atomic`.)"""
from .devices import pick_device
from .files import file_sha256
from .splits import SPLITS, split_named

__all__ = ["SPLITS", "file_sha256", "pick_device", "split_named"]
