"""Errors of the data readers, below every reader so that each may raise them."""
from __future__ import annotations


class SkeletonError(ValueError):
    """A skeleton file that cannot be used; the message names the file (and row, column)."""
