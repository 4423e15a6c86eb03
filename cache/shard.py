"""One shard: an HDF5 file holding a batch of units' tokens and metadata.

Layout inside a shard (no HDF5 dataset per unit; thousands of small ones are slow):
    /units/<column>            (N,)        unit metadata; `unit_id` is required
    /streams/<name>/tokens     (sum L, D)  every unit's tokens, concatenated
    /streams/<name>/offsets    (N + 1,)    unit i owns tokens[offsets[i]:offsets[i+1]]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STRING = h5py.string_dtype("utf-8")


class ShardError(RuntimeError):
    """A shard that cannot be read; the message names the file."""


def write_shard(
    path: Path,
    units: Mapping[str, Sequence[Any]],
    streams: Mapping[str, Sequence[np.ndarray]],
    dtype: str = "float16",
) -> None:
    """Write one shard file. `units` maps column -> values; `streams` maps name -> per-unit (L, D)."""
    n = len(units["unit_id"])
    with h5py.File(path, "w", libver="latest") as f:
        group = f.create_group("units")
        for column, values in units.items():
            if len(values) != n:
                raise ValueError(f"unit column {column!r} has {len(values)} values for {n} units")
            array = np.asarray(values)
            if array.dtype.kind in "USO":
                group.create_dataset(column, data=[str(v) for v in values], dtype=STRING)
            else:
                group.create_dataset(column, data=array)
        for name, arrays in streams.items():
            if len(arrays) != n:
                raise ValueError(f"stream {name!r} has {len(arrays)} arrays for {n} units")
            lengths = [a.shape[0] for a in arrays]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            tokens = np.concatenate([np.asarray(a, dtype=dtype) for a in arrays], axis=0)
            g = f.create_group(f"streams/{name}")
            g.create_dataset("tokens", data=tokens)  # contiguous: maps straight into numpy
            g.create_dataset("offsets", data=offsets)


def read_units(path: Path) -> dict[str, np.ndarray]:
    """The metadata columns of a shard, strings decoded."""
    try:
        with h5py.File(path, "r") as f:
            out = {}
            for column, ds in f["units"].items():
                out[column] = ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
            return out
    except (OSError, KeyError, ValueError) as exc:
        raise ShardError(f"cannot read shard {path}: {exc}") from exc


def stream_names(path: Path) -> list[str]:
    """Names of the token streams in a shard."""
    try:
        with h5py.File(path, "r") as f:
            return sorted(f["streams"].keys())
    except (OSError, KeyError) as exc:
        raise ShardError(f"cannot read shard {path}: {exc}") from exc
