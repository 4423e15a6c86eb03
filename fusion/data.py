"""Datasets over cache entries: align entries by unit id, group emotion windows into videos, batch.

Items are what the task says (`Task.items`): clips, one unit each (mg), or whole videos (emotion:
their windows sorted by start frame and padded per batch with a mask). Labels come from the
entries' unit tables as the task reads them (`Task.labels`); -1 means unknown (kept for
prediction, left out of training and metrics).
Tokens are pooled at load time and kept as float16: all in memory when they fit the
budget, otherwise read per batch from the HDF5 shards (bounded memory).
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from migue.cache import COLUMN, EntryReader, refuse_if_written, writing_now
from migue.cache.labels import LABEL_COLUMNS
from migue.cache.scope import refuse_mixed, scope_rows
from migue.common.splits import SPLITS

from .tasks import Task, TaskNotReadyError, get_task

log = logging.getLogger(__name__)

POOLS = ("none", "time", "space", "mean")
READ_ROWS = 256  # at most this many units per cache read (bounds memory while pooling)


class NonFiniteInputError(ValueError):
    """Tokens holding NaN or inf reached fusion; names the entry, the stream and the unit."""


def require_finite(x: np.ndarray, reader: EntryReader, stream: str, rows: np.ndarray) -> np.ndarray:
    """`x` (n, L, D) if every value is finite, else NonFiniteInputError naming the first bad unit."""
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        uid = reader.units[COLUMN.unit_id].iat[int(rows[k])]
        raise NonFiniteInputError(f"cache entry {reader.name}: unit {uid}, stream {stream!r} holds NaN or inf "
                                  f"({int((~finite).sum())} of {len(x)} units read); run `migue cache verify "
                                  f"{reader.name}` and re-extract")
    return x


class UnitMismatchError(ValueError):
    """Entries to be fused do not hold the same units (or disagree on their labels)."""


@dataclass(frozen=True)
class Input:
    """One tensor a head reads: a stream of the entry in role `entry`, pooled at load time."""

    entry: str          # role in the entries dict: rgb | pose | face | context
    stream: str         # stream inside that entry: tokens | cls | joint | bone | embedding
    pool: str = "none"  # none: all tokens | time: mean per time step | space: mean over time per
                        # spatial place (rgb h*w, pose joint) | mean: one token; time/space need the grid


def pooled_shape(reader: EntryReader, inp: Input) -> tuple[int, int]:
    """(L', D) of one unit of `inp` after pooling."""
    if inp.pool not in POOLS:
        raise ValueError(f"pool {inp.pool!r}: expected one of {POOLS}")
    length, dim = reader.token_shape(inp.stream)
    if inp.pool == "time":
        return _time_steps(reader, inp), dim
    if inp.pool == "space":
        return length // _time_steps(reader, inp), dim
    return (1 if inp.pool == "mean" else length), dim


def _time_steps(reader: EntryReader, inp: Input) -> int:
    grid = reader.streams[inp.stream].get("grid")
    length = reader.token_shape(inp.stream)[0]
    if not grid or int(np.prod(grid)) != length:
        raise ValueError(f"entry {reader.name}: stream {inp.stream!r} has no token grid matching its "
                         f"{length} tokens (spec grid {grid}); pool {inp.pool!r} needs one: use 'mean' or 'none'")
    return int(grid[0])


def load_views(reader: EntryReader, views: Mapping[str, Input], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Several poolings of one stream from a single read: {name: (N, L', D) float16}.

    Every view must read the same stream of `reader`; the rows are read once, in runs of at
    most READ_ROWS units (the reader visits each run in file order), and each run is pooled
    every way asked.
    """
    streams = {inp.stream for inp in views.values()}
    if len(streams) != 1:
        raise ValueError(f"load_views reads one stream at a time, got {sorted(streams)}")
    (stream,) = streams
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return {name: np.empty((0, *pooled_shape(reader, inp)), dtype=np.float16) for name, inp in views.items()}
    if len(rows) <= READ_ROWS:  # one read, pooled straight into the result (no further copy)
        x = require_finite(reader.read(stream, rows), reader, stream, rows)     # (n, L, D) float16
        return {name: _pool(x, inp.pool, reader, inp).astype(np.float16, copy=False) for name, inp in views.items()}
    out = {name: np.empty((len(rows), *pooled_shape(reader, inp)), dtype=np.float16) for name, inp in views.items()}
    for start in range(0, len(rows), READ_ROWS):
        part = rows[start:start + READ_ROWS]
        x = require_finite(reader.read(stream, part), reader, stream, part)    # (n, L, D) float16
        for name, inp in views.items():
            out[name][start:start + len(x)] = _pool(x, inp.pool, reader, inp)
    return out


def _pool(x: np.ndarray, pool: str, reader: EntryReader, inp: Input) -> np.ndarray:
    """(n, L, D) -> (n, L', D) as `pool` says."""
    if pool == "mean":
        return x.astype(np.float32).mean(axis=1, keepdims=True)                 # (n, 1, D)
    if pool in ("time", "space"):
        steps = _time_steps(reader, inp)
        x = x.astype(np.float32).reshape(len(x), steps, -1, x.shape[-1])        # (n, T, S, D)
        return x.mean(axis=2 if pool == "time" else 1)                          # (n, T, D) | (n, S, D)
    return x                                                                    # (n, L, D)


def align_units(entries: Mapping[str, EntryReader], kind: str, align: str = "strict",
                keep: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Units of `kind` held by every entry, in the first entry's order: its unit table plus a
    column `row:<role>` per entry (the unit's row in that entry). Differing unit sets are an
    error (align='strict') or reduced to the common units (align='inner'). `keep[role]` (a mask
    over the entry's rows) leaves out units of other datasets (see `scope_masks`)."""
    if align not in ("strict", "inner"):
        raise ValueError(f"align {align!r}: expected 'strict' or 'inner'")
    tables = {}
    for role, reader in entries.items():
        units = reader.units.reset_index(drop=True)
        pick = units[COLUMN.kind] == kind if COLUMN.kind in units else np.ones(len(units), bool)
        if keep is not None and role in keep:
            pick = np.asarray(pick, dtype=bool) & keep[role]
        if not pick.any():
            raise UnitMismatchError(f"entry {reader.name} ({role}) holds no '{kind}' units")
        tables[role] = units[pick].assign(**{f"row:{role}": np.flatnonzero(pick)}).set_index(COLUMN.unit_id)
    (first, base), *others = tables.items()
    common = base.index
    for role, table in others:
        if not table.index.equals(base.index) and set(table.index) != set(base.index):
            message = _mismatch(entries[first], first, base.index, entries[role], role, table.index)
            if align == "strict":
                raise UnitMismatchError(message + "; rebuild both from one manifest, or use align='inner'")
            log.warning("%s; using the common units (align='inner')", message)
        common = common[common.isin(table.index)]
    joined = base.loc[common]
    for role, table in others:
        part = table.loc[common]
        for column in (COLUMN.video_id, COLUMN.split, *LABEL_COLUMNS):
            if column in part and column in joined:
                differ = np.flatnonzero(part[column].to_numpy() != joined[column].to_numpy())
                if len(differ):
                    raise UnitMismatchError(
                        f"entries {entries[first].name} ({first}) and {entries[role].name} ({role}) disagree "
                        f"on '{column}' for {len(differ)} units, e.g. {common[differ[0]]}")
        joined[f"row:{role}"] = part[f"row:{role}"].to_numpy()
    if joined.empty:
        raise UnitMismatchError(f"entries {', '.join(e.name for e in entries.values())} share no '{kind}' units")
    return joined.reset_index()


def _mismatch(a: EntryReader, role_a: str, ids_a: pd.Index, b: EntryReader, role_b: str, ids_b: pd.Index) -> str:
    only_a, only_b = ids_a.difference(ids_b), ids_b.difference(ids_a)
    return (f"units of entries {a.name} ({role_a}) and {b.name} ({role_b}) do not align: "
            f"{len(only_a)} only in {a.name} (e.g. {', '.join(only_a[:3])}), "
            f"{len(only_b)} only in {b.name} (e.g. {', '.join(only_b[:3])}); manifests "
            f"{a.config.get('manifest')} vs {b.config.get('manifest')}")


class SplitData:
    """One split: items (clips, or videos of windows), their labels (-1 unknown) and batches."""

    def __init__(self, task: Task, items: pd.DataFrame, offsets: np.ndarray, rows: dict[str, np.ndarray],
                 inputs: dict[str, Input], readers: Mapping[str, EntryReader], in_memory: bool) -> None:
        self.task, self.inputs, self.readers = task, inputs, readers
        self.ids = items["id"].tolist()
        self.video_ids = items["video_id"].tolist()
        self.video_names = items["video_name"].tolist()  # as the release spells the ids
        self.label_rows = items["label_row"].to_numpy(dtype=np.int64)  # -1: not recorded / a video
        self.labels = items["label"].to_numpy(dtype=np.int64)
        self.offsets, self.rows = offsets, rows  # item i owns rows[name][offsets[i]:offsets[i+1]]
        # inputs reading the same stream share one read (their rows are the same: one entry)
        self.groups: dict[tuple[str, str], dict[str, Input]] = {}
        for name, inp in inputs.items():
            self.groups.setdefault((inp.entry, inp.stream), {})[name] = inp
        self.tokens = self._load(None) if in_memory else None

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, positions: np.ndarray | None, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Pooled tokens of the inputs `names` (None: all) at `positions` of the flat row list
        (None: all), one read per (entry, stream)."""
        out = {}
        for (entry, _), views in self.groups.items():
            views = {n: v for n, v in views.items() if names is None or n in names}
            if views:
                rows = self.rows[next(iter(views))]
                out.update(load_views(self.readers[entry], views, rows if positions is None else rows[positions]))
        return out

    def _take(self, positions: np.ndarray, names: Sequence[str] | None) -> dict[str, np.ndarray]:
        if self.tokens is not None:
            return {name: tokens[positions] for name, tokens in self.tokens.items() if names is None or name in names}
        return self._load(positions, names)

    def batch(self, idx: Sequence[int] | np.ndarray, names: Sequence[str] | None = None,
              dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """Items `idx` as `dtype` tensors of the inputs `names` (None: all): clips (B, L, D) per
        input; videos (B, W, L, D) + mask (B, W). float16 is the cache's own precision (half
        the bytes to move to a GPU; the trainer widens it there)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = {"label": torch.from_numpy(self.labels[idx])}
        if self.task.items == "clip":
            for name, x in self._take(idx, names).items():
                out[name] = torch.from_numpy(x).to(dtype)                            # (B, L, D)
            return out
        counts = self.offsets[idx + 1] - self.offsets[idx]
        positions = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
        mask = np.arange(counts.max()) < counts[:, None]                             # (B, W)
        for name, x in self._take(positions, names).items():                        # (sum W_i, L, D)
            padded = torch.zeros((len(idx), mask.shape[1], *x.shape[1:]), dtype=dtype)
            padded[torch.from_numpy(mask)] = torch.from_numpy(x).to(dtype)          # (B, W, L, D)
            out[name] = padded
        out["mask"] = torch.from_numpy(mask)
        return out


def iter_batches(split: SplitData, order: np.ndarray, batch_size: int, names: Sequence[str] | None = None,
                 dtype: torch.dtype = torch.float32, prefetch: int = 2) -> Iterator[dict[str, torch.Tensor]]:
    """The batches of `order`, in turn. A streamed split is read up to `prefetch` batches ahead
    on background threads (reads release the GIL), so reading overlaps the step that consumes."""
    starts = range(0, len(order), batch_size)
    if split.tokens is not None or prefetch <= 0:
        for start in starts:
            yield split.batch(order[start:start + batch_size], names, dtype)
        return
    with ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="migue-read") as pool:
        pending: deque = deque()
        for start in starts:
            pending.append(pool.submit(split.batch, order[start:start + batch_size], names, dtype))
            if len(pending) > prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class FusionData:
    """Per-split data plus the pooled (L', D) of each input, as heads are built from them."""

    splits: dict[str, SplitData]
    shapes: dict[str, tuple[int, int]]
    in_memory: bool


def build_data(task: str, entries: Mapping[str, EntryReader], inputs: dict[str, Input],
               splits: Sequence[str] = SPLITS, align: str = "strict", max_windows: int | None = None,
               in_memory: bool | str = "auto", memory_budget_gb: float = 8.0, partial: bool = False,
               scope: Mapping[str, Collection[str]] | None = None) -> FusionData:
    """Align the entries the inputs need and build the requested splits. An entry that extract is
    still writing is refused (EntryBeingWrittenError) unless `partial`: then its published part is
    used, with a warning. `scope[role]`: the unit ids of the dataset to use (from --data); without
    it an entry holding units of another dataset is refused (UnitScopeError)."""
    spec = get_task(task)
    if spec.items == "sequence":
        raise TaskNotReadyError(f"task {task!r} reads whole sequences of windows: its data and training are "
                                "the detection head's (fusion/online), not this loader's")
    roles = list(dict.fromkeys(inp.entry for inp in inputs.values()))
    missing = [r for r in roles if r not in entries]
    if missing:
        raise ValueError(f"task {task} needs entries {roles}; missing {missing} (given: {sorted(entries)})")
    for role in roles:
        _check_written(entries[role], partial)
    for role in roles:
        modality = entries[role].config.get("modality")
        if modality is not None and modality != role:
            raise ValueError(f"entry {entries[role].name} is a '{modality}' entry, given as '{role}'")
    keep = scope_masks({r: entries[r] for r in roles}, spec.unit_kind, scope)
    table = align_units({r: entries[r] for r in roles}, spec.unit_kind, align, keep)
    if spec.items == "video":
        spread = table.groupby(COLUMN.video_id)[COLUMN.split].nunique()
        if (spread > 1).any():
            raise ValueError(f"video {spread[spread > 1].index[0]} has windows in more than one split")
    shapes = {name: pooled_shape(entries[inp.entry], inp) for name, inp in inputs.items()}
    parts = {s: _items(spec, table[table[COLUMN.split] == s], max_windows) for s in splits}
    rows = {s: {name: table.loc[positions, f"row:{inp.entry}"].to_numpy() for name, inp in inputs.items()}
            for s, (_, _, positions) in parts.items()}
    need = sum(len(r[name]) * int(np.prod(shapes[name])) * 2 for r in rows.values() for name in inputs)
    resident = need <= memory_budget_gb * 2**30 if in_memory == "auto" else bool(in_memory)
    log.info("%s data: %s; %.2f GB of pooled float16 tokens, %s", task,
             ", ".join(f"{s} {len(items)}" for s, (items, _, _) in parts.items()), need / 2**30,
             "held in memory" if resident else "read per batch")
    return FusionData({s: SplitData(spec, items, offsets, rows[s], inputs, entries, resident)
                       for s, (items, offsets, _) in parts.items()}, shapes, resident)


def scope_masks(entries: Mapping[str, EntryReader], kind: str,
                scope: Mapping[str, Collection[str]] | None) -> dict[str, np.ndarray] | None:
    """Per role, a mask of the entry's rows in the dataset `scope[role]` (its unit ids of `kind`);
    a unit of it the entry lacks, neither extracted nor failed, is a UnitScopeError. Without a
    scope, None, after refusing an entry whose units are not all of the dataset last extracted
    into it."""
    masks = {}
    for role, reader in entries.items():
        units = reader.units
        of_kind = (units[COLUMN.kind] == kind).to_numpy() if COLUMN.kind in units else np.ones(len(units), bool)
        ids = units[COLUMN.unit_id].astype(str).to_numpy()
        if scope is None:
            refuse_mixed(reader.name, reader.index, ids[of_kind].tolist())
            continue
        inside, failed = scope_rows(reader.name, str(reader.config.get("modality", role)), kind, ids[of_kind].tolist(),
                                    scope[role], reader.index.get("failures", {}))
        masks[role] = np.zeros(len(units), dtype=bool)
        masks[role][np.flatnonzero(of_kind)[inside]] = True
        if failed:
            log.warning("cache entry %s: %d units of the dataset failed extraction and are left out (e.g. %s; "
                        "`migue cache ls` and the extract report say why)", reader.name, len(failed), failed[0])
    return masks if scope is not None else None


def _check_written(reader: EntryReader, partial: bool) -> None:
    """Refuse an entry a running extract is writing; with `partial`, warn and use its published part."""
    if not partial:
        refuse_if_written(reader.dir)
        return
    status = writing_now(reader.dir)
    if status is not None:
        log.warning("%s; --allow-partial: using the published part only (%d units)", status, len(reader))


def _names(units: pd.DataFrame) -> pd.Series:
    """The video id as the release spells it (empty, as in entries written before it existed: the video_id)."""
    names = units[COLUMN.video_name].astype(str)
    return names.where(names != "", units[COLUMN.video_id].astype(str))


def _label_rows(units: pd.DataFrame) -> pd.Series:
    """Each clip's 0-based row in its label file; -1 where the entry does not record it."""
    return units[COLUMN.label_row].astype(np.int64)


def _items(task: Task, units: pd.DataFrame, max_windows: int | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Items table (id, video_id, label), offsets into the flat unit list, and that list (rows of `units`)."""
    label = "_label"
    units = units.assign(**{label: task.unit_labels(units)})
    if task.items == "clip":
        items = pd.DataFrame({"id": units[COLUMN.unit_id], "video_id": units[COLUMN.video_id], "label": units[label],
                              "video_name": _names(units), "label_row": _label_rows(units)})
        return items.reset_index(drop=True), np.arange(len(units) + 1), units.index.to_numpy()
    records, windows = [], []
    units = units.assign(video_name=_names(units))
    for video, group in units.sort_values([COLUMN.video_id, COLUMN.start], kind="stable").groupby(COLUMN.video_id, sort=True):
        if group[label].nunique() != 1:
            raise ValueError(f"video {video}: its windows disagree on the {task.name} label")
        if max_windows and len(group) > max_windows:
            group = group.iloc[np.linspace(0, len(group) - 1, max_windows).round().astype(int)]
        records.append({"id": video, "video_id": video, "label": int(group[label].iloc[0]),
                        "video_name": group[COLUMN.video_name].iloc[0], "label_row": -1})
        windows.append(group.index.to_numpy())
    counts = [len(w) for w in windows]
    flat = np.concatenate(windows) if windows else np.zeros(0, dtype=np.int64)
    items = pd.DataFrame(records, columns=["id", "video_id", "label", "video_name", "label_row"])
    return items, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), flat
