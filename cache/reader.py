"""Reading a cache entry: metadata table, token streams, lazily opened per process."""
from __future__ import annotations

import os
import resource
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .checksums import check_shard_bytes
from .index import read_index
from .paths import safe_child
from .shard import ShardError, check_stream, open_shard, read_units
from .units import with_defaults


class EntryReader:
    """Read-only view of one entry. HDF5 files open lazily in the process that reads
    (never inherited across fork), so a reader can be handed to DataLoader or Dask workers.

    Token datasets are contiguous (see shard.py), so rows are read with one `preadv` per
    unit straight from the file into the output array: exactly the bytes asked for, one copy,
    at the speed of a plain file read. A chunked or compressed dataset (written by another
    tool) falls back to h5py slicing."""

    def __init__(self, entry_dir: str | os.PathLike) -> None:
        self.dir = Path(entry_dir)
        self.index = read_index(self.dir)
        self.config: dict[str, Any] = self.index["config"]
        self.name = self.dir.name
        self._files: dict[str, h5py.File] = {}
        self._offsets: dict[tuple[int, str], np.ndarray] = {}  # checked once per shard and stream
        self._layouts: dict[tuple[int, str], tuple[np.dtype, int, tuple[int, int] | None]] = {}
        self._fds: dict[str, int] = {}
        self._groups: dict[tuple[int, str], h5py.Group] = {}
        self._plans: dict[str, _StreamPlan] = {}
        self._lock = threading.Lock()  # opening shards; reads of planned rows need no lock
        self._pid = os.getpid()
        self.units = self._unit_table()
        self._shard_col = self.units["_shard"].to_numpy(dtype=np.int64)
        self._row_col = self.units["_row"].to_numpy(dtype=np.int64)

    # ---- metadata -------------------------------------------------------
    def _unit_table(self) -> pd.DataFrame:
        frames = []
        for shard_no, shard in enumerate(self.index["shards"]):
            path = safe_child(self.dir, shard["file"])
            if not path.exists():
                raise ShardError(f"cache entry {self.name}: shard {shard['file']} is missing")
            size = path.stat().st_size
            if size != shard["bytes"]:
                raise ShardError(f"cache entry {self.name}: shard {shard['file']} has {size} bytes, its "
                                 f"index says {shard['bytes']} (truncated or changed): run `migue cache verify`")
            check_shard_bytes(self.name, path, shard)  # tokens and labels alike, once per process
            table = pd.DataFrame(read_units(path))
            if list(table["unit_id"]) != list(shard["unit_ids"]):
                raise ShardError(f"cache entry {self.name}: shard {shard['file']} does not hold "
                                 "the units its index lists")
            table["_shard"], table["_row"] = shard_no, np.arange(len(table))
            frames.append(table)
        if not frames:
            return with_defaults(pd.DataFrame(columns=["unit_id", "_shard", "_row"]))
        return with_defaults(pd.concat(frames, ignore_index=True))

    @property
    def streams(self) -> dict[str, dict[str, Any]]:
        """Stream name -> its spec (token count, dim, layout), from the entry config."""
        return self.config.get("streams", {})

    def __len__(self) -> int:
        return len(self.units)

    # ---- tokens ---------------------------------------------------------
    def _forget_if_forked(self) -> None:
        """In a forked child, drop the parent's handles (and the plans that name its fds)."""
        if os.getpid() != self._pid:
            self._files, self._offsets, self._layouts, self._fds, self._groups, self._plans = {}, {}, {}, {}, {}, {}
            self._lock = threading.Lock()  # a parent thread may have held it at the fork
            self._pid = os.getpid()

    def _file(self, shard_no: int) -> h5py.File:
        self._forget_if_forked()
        name = self.index["shards"][shard_no]["file"]
        if name not in self._files:
            try:
                self._files[name] = open_shard(safe_child(self.dir, name))
            except ShardError as exc:
                raise ShardError(f"cache entry {self.name}: {exc}") from exc
        return self._files[name]

    def read(self, stream: str, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Tokens of the given table rows (all rows by default), stacked to (N, L, D) in that order."""
        rows = np.arange(len(self.units)) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, 0, 0), dtype=np.float16)
        plan = self._plan(stream, rows)
        lengths = np.unique(plan.length[rows])
        if len(lengths) != 1:
            raise ValueError(f"cache entry {self.name}: stream {stream!r} has units of different token "
                             f"counts {lengths.tolist()}; use read_ragged")
        dtypes = {plan.dtype[n] for n in np.unique(self._shard_col[rows]).tolist()}
        dtype = plan.dtype[int(self._shard_col[rows[0]])]
        out = np.empty((len(rows), int(lengths[0]), plan.dim), dtype=dtype)
        if len(dtypes) == 1 and (plan.fd[rows] >= 0).all():
            self._pread(plan, rows, out)
        else:
            self._read_h5py(stream, rows, out)
        return out

    def _plan(self, stream: str, rows: np.ndarray) -> "_StreamPlan":
        """Where each unit's tokens of `stream` lie, filled in shard by shard as rows ask for them."""
        self._forget_if_forked()
        plan = self._plans.get(stream)
        if plan is not None and (plan.length[rows] >= 0).all():
            return plan
        with self._lock:  # loader threads may ask at once
            plan = self._plans.setdefault(stream, _StreamPlan(len(self.units)))
            self._plan_shards(stream, plan, np.unique(self._shard_col[rows[plan.length[rows] < 0]]).tolist())
        return plan

    def _plan_shards(self, stream: str, plan: "_StreamPlan", shards: list[int]) -> None:
        """Open `shards` and record where their units' tokens lie (under the lock)."""
        for shard_no in shards:
            group, offsets = self._stream(shard_no, stream)
            dtype, dim, raw = self._layout(shard_no, stream, group)
            mine = np.flatnonzero(self._shard_col == shard_no)
            at = mine[np.argsort(self._row_col[mine])]            # table row of each shard row
            plan.dtype[shard_no], plan.dim = dtype, dim
            if raw is not None:
                plan.start[at] = raw[1] + offsets[:-1] * dim * np.dtype(dtype).itemsize
                plan.fd[at] = raw[0]
            plan.length[at] = np.diff(offsets)  # last: a row with a length is fully planned
            if raw is not None:  # reads bypass h5py: an open HDF5 file costs ~0.5 MB, keep none
                self._release_h5py(shard_no)

    def _release_h5py(self, shard_no: int) -> None:
        """Close a shard's HDF5 file (it reopens if needed); its raw descriptor stays open."""
        f = self._files.pop(self.index["shards"][shard_no]["file"], None)
        for key in [k for k in self._groups if k[0] == shard_no]:
            del self._groups[key]
        if f is not None:
            f.close()

    def _read_h5py(self, stream: str, rows: np.ndarray, out: np.ndarray) -> None:
        """Rows through h5py: one slice per shard run (chunked or compressed datasets)."""
        shard_of, row_in = self._shard_col[rows], self._row_col[rows]
        for shard_no in np.unique(shard_of).tolist():
            group, offsets = self._stream(shard_no, stream)
            pick = np.flatnonzero(shard_of == shard_no)
            lo, hi = row_in[pick].min(), row_in[pick].max()
            block = self._tokens(shard_no, group, offsets[lo], offsets[hi + 1])
            for i in pick:
                r = row_in[i]
                out[i] = block[offsets[r] - offsets[lo]:offsets[r + 1] - offsets[lo]]

    def _layout(self, shard_no: int, stream: str, group: h5py.Group) -> tuple[np.dtype, int, tuple[int, int] | None]:
        """(dtype, D, raw) of a shard's tokens; raw = (fd, byte offset) when the dataset is
        contiguous and uncompressed, None when it must be read through h5py."""
        key = (int(shard_no), stream)
        if key not in self._layouts:
            dataset = group["tokens"]
            start = dataset.id.get_offset() if dataset.chunks is None and dataset.compression is None else None
            raw = None
            if start is not None:
                name = self.index["shards"][int(shard_no)]["file"]
                if name not in self._fds:
                    _allow_open_files(len(self.index["shards"]))
                    self._fds[name] = os.open(safe_child(self.dir, name), os.O_RDONLY)
                raw = (self._fds[name], int(start))
            self._layouts[key] = (dataset.dtype, int(dataset.shape[1]), raw)
        return self._layouts[key]

    def _pread(self, plan: "_StreamPlan", rows: np.ndarray, out: np.ndarray) -> None:
        """Row `rows[k]` into `out[k]`, one preadv each, in file order."""
        fds, starts = plan.fd[rows], plan.start[rows]
        for k in np.lexsort((starts, fds)).tolist():
            target = memoryview(out[k]).cast("B")
            if os.preadv(int(fds[k]), [target], int(starts[k])) != target.nbytes:
                name = self.index["shards"][int(self._shard_col[rows[k]])]["file"]
                raise ShardError(f"cache entry {self.name}: shard {name} ends inside its tokens "
                                 "(truncated): run `migue cache verify`")

    def read_ragged(self, stream: str, rows: Sequence[int]) -> list[np.ndarray]:
        """Tokens of the given rows as a list of (L_i, D) arrays."""
        out = []
        for r in rows:
            shard_no, row = self.units["_shard"].iat[r], self.units["_row"].iat[r]
            group, offsets = self._stream(shard_no, stream)
            out.append(self._tokens(shard_no, group, offsets[row], offsets[row + 1]))
        return out

    def token_shape(self, stream: str) -> tuple[int, int]:
        """(L, D) of one unit in this stream."""
        spec = self.streams[stream]
        return int(spec["tokens"]), int(spec["dim"])

    def _stream(self, shard_no: int, stream: str) -> tuple[h5py.Group, np.ndarray]:
        """A shard's stream group and its offsets, its structure checked on first use."""
        shard_no = int(shard_no)
        if (shard_no, stream) in self._groups and os.getpid() == self._pid:
            return self._groups[(shard_no, stream)], self._offsets[(shard_no, stream)]
        f = self._file(shard_no)
        name = self.index["shards"][shard_no]["file"]
        try:
            streams = f.get("streams")
            if not isinstance(streams, h5py.Group):
                raise ShardError(f"shard {name} has no 'streams' group")
            group = streams.get(stream)
            if group is not None and (shard_no, stream) not in self._offsets:
                dim = (self.streams.get(stream) or {}).get("dim")
                self._offsets[(shard_no, stream)] = check_stream(
                    group, Path(name), stream, self.index["shards"][shard_no]["units"],
                    int(dim) if dim is not None else None)
            if group is None:
                raise KeyError(f"cache entry {self.name} has no stream {stream!r} "
                               f"(shard {name} has {sorted(streams.keys())})")
        except KeyError:
            raise
        except ShardError as exc:
            raise ShardError(f"cache entry {self.name}: {exc}") from exc
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ShardError(f"cache entry {self.name}: shard {name} is unreadable: {exc}") from exc
        self._groups[(shard_no, stream)] = group
        return group, self._offsets[(shard_no, stream)]

    def _tokens(self, shard_no: int, group: h5py.Group, lo: int, hi: int) -> np.ndarray:
        try:
            return group["tokens"][lo:hi]
        except (OSError, ValueError) as exc:
            name = self.index["shards"][int(shard_no)]["file"]
            raise ShardError(f"cache entry {self.name}: cannot read tokens of shard {name}: {exc}") from exc

    def to_dask(self, stream: str, units_per_chunk: int = 256) -> Any:
        """The stream as a lazy dask array (N, L, D) in table order."""
        import dask
        import dask.array as da

        length, dim = self.token_shape(stream)
        n = len(self.units)
        chunks = []
        for start in range(0, n, units_per_chunk):
            rows = np.arange(start, min(start + units_per_chunk, n))
            block = dask.delayed(_read_rows)(str(self.dir), stream, rows)
            chunks.append(da.from_delayed(block, shape=(len(rows), length, dim), dtype=np.float16))
        return da.concatenate(chunks) if chunks else da.zeros((0, length, dim), dtype=np.float16)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        if os.getpid() == self._pid:
            for fd in self._fds.values():
                os.close(fd)
        self._files, self._offsets, self._layouts, self._fds, self._groups, self._plans = {}, {}, {}, {}, {}, {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for handles in ("_files", "_offsets", "_layouts", "_fds", "_groups", "_plans"):
            state[handles] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __enter__(self) -> "EntryReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _allow_open_files(shards: int) -> None:
    """Raise the soft open-file limit towards the hard one when an entry has many shards (one
    descriptor per shard stays open while reading; a common soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * shards + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(hard, max(want, soft))
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class _StreamPlan:
    """Per table row of one stream: token count (-1 until its shard is opened), the file
    descriptor and byte offset of its tokens (-1: read through h5py); dtype per shard."""

    def __init__(self, n: int) -> None:
        self.length = np.full(n, -1, dtype=np.int64)
        self.fd = np.full(n, -1, dtype=np.int64)
        self.start = np.zeros(n, dtype=np.int64)
        self.dtype: dict[int, np.dtype] = {}
        self.dim = 0


def _read_rows(entry_dir: str, stream: str, rows: np.ndarray) -> np.ndarray:
    with EntryReader(entry_dir) as reader:
        return reader.read(stream, rows)
