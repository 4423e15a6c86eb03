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
    # locking=False: the writer holds its own flock on the temp file (see atomic.py)
    with h5py.File(path, "w", libver="latest", locking=False) as f:
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


# Deflate and friends expand data at most ~1000x: a chunked dataset may declare that much more
# than it stores; a contiguous one never more than the file holds.
MAX_EXPANSION = 1100


def check_declared(ds: h5py.Dataset, path: Path, what: str) -> None:
    """Refuse a dataset whose declared shape needs more bytes than the file can hold, before
    anything is allocated for it (an 8 KB file can declare 2^28 rows that were never written)."""
    itemsize = max(ds.dtype.itemsize, 1)
    declared = int(np.prod(ds.shape, dtype=np.float64)) * itemsize
    size = ds.file.id.get_filesize()
    stored = ds.id.get_storage_size()
    room = size if ds.chunks is None and ds.compression is None else MAX_EXPANSION * min(stored, size)
    if declared > max(room, 0) + 4096:
        raise ShardError(f"shard {path}: {what} declares {ds.shape} {ds.dtype} ({declared} bytes), more "
                         f"than its {size}-byte file can hold")


def open_shard(path: Path) -> h5py.File:
    """Open a shard read-only; anything that is not an HDF5 file is a ShardError naming it."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ShardError(f"cannot open shard {path}: {_first_line(exc)}") from exc


def read_units(path: Path) -> dict[str, np.ndarray]:
    """The metadata columns of a shard, strings decoded; its structure checked first."""
    with open_shard(path) as f:
        try:
            n = _check_units(f, path)
            out = {}
            for column, ds in f["units"].items():
                check_declared(ds, path, f"units/{column}")
                out[column] = ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
            if out["unit_id"].dtype.kind not in "OUS":
                raise ShardError(f"shard {path}: units/unit_id holds {out['unit_id'].dtype}, not strings")
            out["unit_id"] = np.asarray([u.decode() if isinstance(u, bytes) else str(u)
                                         for u in out["unit_id"]], dtype=object)
            if len(set(out["unit_id"])) != n:
                raise ShardError(f"shard {path}: units/unit_id repeats a unit")
            return out
        except ShardError:
            raise
        except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ShardError(f"cannot read shard {path}: {_first_line(exc)}") from exc


def check_streams(f: h5py.File, path: Path, n_units: int, dims: Mapping[str, int] | None = None) -> None:
    """Every stream's tokens (sum L, D) and offsets (N + 1,) agree: offsets start at 0, never
    decrease, end at the token count; D matches `dims` where given. Else a ShardError."""
    try:
        streams = f["streams"]
        if not isinstance(streams, h5py.Group):
            raise ShardError(f"shard {path}: 'streams' is not a group")
        for name, group in streams.items():
            check_stream(group, path, name, n_units, (dims or {}).get(name))
    except ShardError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ShardError(f"shard {path}: unreadable streams ({_first_line(exc)})") from exc


def check_stream(group: Any, path: Path, name: str, n_units: int, dim: int | None = None) -> np.ndarray:
    """Check one stream group and return its offsets (N + 1,) int64."""
    where = f"shard {path}: stream {name!r}"
    if not isinstance(group, h5py.Group) or not isinstance(group.get("tokens"), h5py.Dataset) \
            or not isinstance(group.get("offsets"), h5py.Dataset):
        raise ShardError(f"{where} needs datasets 'tokens' and 'offsets'")
    tokens, offsets = group["tokens"], group["offsets"]
    if tokens.ndim != 2 or tokens.dtype.kind != "f":
        raise ShardError(f"{where}: tokens are {tokens.dtype} {tokens.shape}, expected floats (sum L, D)")
    if dim is not None and tokens.shape[1] != dim:
        raise ShardError(f"{where}: tokens have dim {tokens.shape[1]}, the entry says {dim}")
    if offsets.shape != (n_units + 1,) or offsets.dtype.kind not in "iu":
        raise ShardError(f"{where}: offsets are {offsets.dtype} {offsets.shape}, expected ({n_units + 1},) ints")
    check_declared(tokens, path, f"stream {name!r} tokens")
    check_declared(offsets, path, f"stream {name!r} offsets")
    values = offsets[()].astype(np.int64)
    if values[0] != 0 or (np.diff(values) < 0).any() or values[-1] != tokens.shape[0]:
        raise ShardError(f"{where}: offsets do not run from 0 up to its {tokens.shape[0]} tokens")
    return values


def read_rows(path: Path, rows: Sequence[int]) -> tuple[dict[str, list[Any]], dict[str, list[np.ndarray]]]:
    """Rows `rows` of a shard as (unit columns, per-stream token arrays): what write_shard takes."""
    units = read_units(path)
    with open_shard(path) as f:
        check_streams(f, path, len(units["unit_id"]))
        streams = {}
        for name, group in f["streams"].items():
            offsets, tokens = group["offsets"][()], group["tokens"]
            streams[name] = [tokens[offsets[r]:offsets[r + 1]] for r in rows]
    return {k: [v[r] for r in rows] for k, v in units.items()}, streams


def _check_units(f: h5py.File, path: Path) -> int:
    group = f.get("units")
    if not isinstance(group, h5py.Group) or not isinstance(group.get("unit_id"), h5py.Dataset):
        raise ShardError(f"shard {path} has no units/unit_id dataset")
    if group["unit_id"].ndim != 1:
        raise ShardError(f"shard {path}: units/unit_id is not a column (shape {group['unit_id'].shape})")
    n = group["unit_id"].shape[0]
    for column, ds in group.items():
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.shape[0] != n:
            raise ShardError(f"shard {path}: units/{column} is not a column of {n} values")
        if ds.dtype.kind not in "biufOSU":
            raise ShardError(f"shard {path}: units/{column} holds {ds.dtype}, not numbers or strings")
    return n


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
