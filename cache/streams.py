"""The stream table: which fusion streams each modality's cache entries hold (`register_stream`).

A modality row (`pipeline/extraction/modalities.py`) declares the streams its backbone writes:
`rgb` -> `rgb` (the entry's `tokens`), `pose` -> `joint` and `bone`, a plugin's `rgb-small` ->
`rgb-small`. `register_modality` copies them here, and stage two reads them here: a head names
streams (or modalities), `fusion.registry.view` finds the entry and dataset of each, and the
`probe-<kind>-<stream>` baselines are made per stream. Why here, in `cache`: fusion may import
only `cache` (tests/test_import_graph.py), never the rows; and a cache entry is self-describing
(its index records its modality and the `streams` it holds, with their tokens and dims), so the
table is the cache's own vocabulary, filled by whoever defines a modality.

The built-in rows, like plugin rows, arrive through the `migue.modalities` entry-point group (the
migue package publishes `builtin = migue.pipeline.extraction.modalities`): `streams()` loads the
group once before answering, so stage two used alone still knows rgb, pose, face and context,
without a static import of stage one. Listeners (`on_stream`) hear of every stream, past and
future: the probe baselines register one head per stream that way.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata

from migue.common.entry_points import load_group

ENTRY_POINT_GROUP = "migue.modalities"
BUILTIN_POINT = "builtin"  # the migue package's own entry in the group: the built-in rows


@dataclass(frozen=True)
class Stream:
    """One stream a modality's entries hold, as stage two reads it."""

    name: str            # what heads name and batches key it by: rgb, joint, bone, face, context, rgb-small
    dataset: str         # the stream inside the entry (the extractor's output name): tokens, joint, embedding
    dim: int             # token width with the row's default options (the entry records the real one)
    probe: str = ""      # the probe heads' suffix, probe-linear-<probe> (default: `name`)
    pool_key: str = ""   # the training-config key of its pooling ('' : not pooled unless a head says)
    pool: str = "none"   # that key's default
    pools: tuple[str, ...] = ()  # that key's allowed values (default: just `pool`)
    modality: str = ""   # the entry role (modality) holding it; set by `register_stream`
    source: str = "built-in"  # or the plugin (module name or file path) whose row declared it

    @property
    def probe_name(self) -> str:
        return self.probe or self.name


_STREAMS: dict[str, Stream] = {}
_LISTENERS: list[Callable[[Stream], None]] = []
_LOADED: set[str] = set()
_SCANNED: list[bool] = []  # the entry-point group was read (a list: no `global` statement)


def register_stream(stream: Stream, modality: str, source: str = "built-in") -> Stream:
    """Record that entries of `modality` hold `stream`; tell the listeners. The same name twice from
    different rows is an error (a head could not say which it reads)."""
    stream = replace(stream, modality=modality, source=source)
    if not stream.name or not stream.dataset or stream.dim < 1:
        raise ValueError(f"modality {modality!r}: stream {stream.name!r} needs a name, the entry dataset it is "
                         f"read from and a dim >= 1 (got dataset {stream.dataset!r}, dim {stream.dim})")
    if stream.pool_key and stream.pool not in (stream.pools or (stream.pool,)):
        raise ValueError(f"modality {modality!r}: stream {stream.name!r} pools by {stream.pool!r} by default, "
                         f"which is not among its pools {list(stream.pools)}")
    shared = [s for s in _STREAMS.values() if s.pool_key and s.pool_key == stream.pool_key]
    if shared and (shared[0].pool, shared[0].pools) != (stream.pool, stream.pools):
        raise ValueError(f"stream {stream.name!r} declares pool key {stream.pool_key!r} unlike stream "
                         f"{shared[0].name!r}, which shares it")
    old = _STREAMS.get(stream.name)
    if old is not None:
        if old == stream:
            return old
        raise ValueError(f"stream {stream.name!r} is declared twice: by modality {old.modality!r} ({old.source}) "
                         f"and by {modality!r} ({source})")
    _STREAMS[stream.name] = stream
    for listener in list(_LISTENERS):
        listener(stream)
    return stream


def on_stream(listener: Callable[[Stream], None]) -> None:
    """Call `listener(stream)` for every stream registered so far and every later one."""
    known = streams()  # loads the entry points first: they must not reach the listener twice
    _LISTENERS.append(listener)
    for stream in known.values():
        listener(stream)


def streams() -> dict[str, Stream]:
    """Every registered stream, by name (the `migue.modalities` entry points loaded first)."""
    load_modality_plugins()
    return dict(_STREAMS)


def get_stream(name: str) -> Stream:
    """The stream `name`, or a LookupError naming the known ones."""
    known = streams()
    if name not in known:
        raise LookupError(f"unknown stream {name!r}; known: {', '.join(known) or 'none'} (a plugin modality's "
                          "streams need --plugin MODULE)")
    return known[name]


def pool_settings() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """(pool key -> default, pool key -> allowed values) of every stream that has a pool key: the
    pooling part of stage two's training config, declared by the rows."""
    table = [s for s in streams().values() if s.pool_key]
    return ({s.pool_key: s.pool for s in table}, {s.pool_key: s.pools or (s.pool,) for s in table})


def modality_streams(modality: str) -> tuple[Stream, ...]:
    """The streams entries of `modality` hold, in declaration order."""
    return tuple(s for s in streams().values() if s.modality == modality)


def load_modality_plugins() -> list[str]:
    """Import the modules of the `migue.modalities` entry-point group once (the built-in rows among
    them); a broken third-party one is logged, not fatal; returns what was loaded now."""
    if _SCANNED:
        return []
    _SCANNED.append(True)  # once per process: `streams()` is asked on every view of a stream
    loaded = load_group(ENTRY_POINT_GROUP, _LOADED, fatal=(BUILTIN_POINT,))
    if not _STREAMS and not any(p.name == BUILTIN_POINT for p in metadata.entry_points(group=ENTRY_POINT_GROUP)):
        raise LookupError(f"no modality streams registered: the built-in modalities register through the "
                          f"{ENTRY_POINT_GROUP!r} entry point of the migue package, which this install lacks; "
                          "reinstall it (`pip install -e .`; a stale migue.egg-info folder in the working directory "
                          "hides the installed one: delete it)")
    return loaded
