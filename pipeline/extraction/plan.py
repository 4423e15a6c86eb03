"""Stage one's one planner: what was asked becomes a `Plan` that every road into stage one runs.

A request is a modality row with its options (and the unit kind they ask for: the row's own by
default). The plan names each request's cache entry, its pending units (by input fingerprint,
`work.pending_units`: units whose inputs changed are retired here), the decode pass of each video
(which units of which entries are cut from its one decode, which are computed without decoding)
and the skeletons parsed once for every entry that reads them. The CLI, the demo and Dask all
execute a Plan (`onepass.execute_plan`); `Plan.split` cuts it into shards of videos (Dask tasks).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migue.cache import FeatureStore, entry_key
from migue.cache.units import DENSE_KIND
from migue.common.devices import pick_device
from migue.pipeline.datasets.manifest import Manifest, Unit

from .backbone import entry_config, resolve_precision
from .modalities import Modality, get_modality
from .options import ExtractOptions, ExtractReport
from .work import chunks_of, pending_units


@dataclass(frozen=True)
class Request:
    """One modality row with the options of its run (the unit kind among them)."""

    modality: Modality
    options: ExtractOptions

    @property
    def unit_kind(self) -> str:
        return self.modality.kind(self.options)

    @property
    def name(self) -> str:
        """The row's name, plus '@kind' when it covers another kind than its own."""
        own = self.unit_kind == self.modality.unit_kind
        return self.modality.name if own else f"{self.modality.name}@{self.unit_kind}"


def request(options: ExtractOptions, modality: Modality | None = None) -> Request:
    """The request of these options (their modality row unless one is given)."""
    return Request(modality or get_modality(options.modality), options)


@dataclass(frozen=True)
class EntryPlan:
    """One cache entry: where it is, what it holds already, the units still to compute."""

    request: Request
    entry: Path
    key: str  # the entry key (a Dask worker checks it derives the same)
    config: Mapping[str, Any] = field(repr=False)
    pending: tuple[Unit, ...] = field(repr=False)  # fingerprinted, (video, start) order
    chunks: tuple[tuple[str, ...], ...] = field(repr=False)  # the kind's chunks: claims and shards
    done_before: int = 0
    failed: Mapping[str, str] = field(default_factory=dict, repr=False)  # failed while planning
    changed: Mapping[str, str] = field(default_factory=dict, repr=False)  # retired: inputs changed
    fingerprinted_bytes: int = 0

    @property
    def name(self) -> str:
        return self.request.name

    def report(self) -> ExtractReport:
        """The report a run of this entry starts from."""
        return ExtractReport(self.entry, self.done_before, 0, failures=dict(self.failed),
                             random_weights=not self.request.options.checkpoints, changed=dict(self.changed),
                             fingerprinted_bytes=self.fingerprinted_bytes)


@dataclass(frozen=True)
class VideoPass:
    """One video's share of the work: the units cut from its one decode and those computed
    without decoding (entry name -> unit ids), and whether its skeleton is parsed (once)."""

    video_id: str
    decoded: tuple[tuple[str, tuple[str, ...]], ...]
    computed: tuple[tuple[str, tuple[str, ...]], ...]
    skeleton: bool

    @property
    def units(self) -> int:
        return sum(len(ids) for _, ids in self.decoded + self.computed)


@dataclass(frozen=True)
class Plan:
    """Every entry of one extract and, per video, the one pass that serves them all."""

    entries: tuple[EntryPlan, ...]
    videos: tuple[VideoPass, ...]
    manifest: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def skeleton_parses(self) -> tuple[str, ...]:
        """Videos whose skeleton is parsed once for every entry that reads it."""
        return tuple(v.video_id for v in self.videos if v.skeleton)

    @property
    def pending(self) -> int:
        return sum(len(e.pending) for e in self.entries)

    def split(self, shards: int) -> list["Plan"]:
        """At most `shards` plans over consecutive videos with about equal numbers of pending
        units; each holds whole chunks (a chunk never spans videos), so its entries are the same
        bytes as the whole plan's. Shards with nothing pending are left out."""
        busy = [v for v in self.videos if v.units]
        total, groups, size = sum(v.units for v in busy), [], 0
        for v in busy:
            if not groups or (size >= total / max(1, shards) * len(groups) and len(groups) < shards):
                groups.append([])
            groups[-1].append(v)
            size += v.units
        return [self.only_videos({v.video_id for v in group}) for group in groups]

    def only_videos(self, video_ids: set[str]) -> "Plan":
        """This plan restricted to the units of these videos."""
        entries = tuple(dataclasses.replace(e, pending=tuple(u for u in e.pending if u.video_id in video_ids))
                        for e in self.entries)
        return Plan(entries, tuple(v for v in self.videos if v.video_id in video_ids), self.manifest)

    def __str__(self) -> str:
        lines = [f"plan: {len(self.entries)} entries, {self.pending} units pending over "
                 f"{sum(1 for v in self.videos if v.units)} videos (each decoded at most once), "
                 f"{len(self.skeleton_parses)} skeletons parsed once"]
        for e in self.entries:
            how = "decoded" if e.request.modality.takes else "computed without decoding"
            lines.append(f"  {e.name}: {len(e.pending)} pending, {e.done_before} cached, {len(e.failed)} failed "
                         f"({e.request.unit_kind} units, {how}) -> {e.entry}")
        return "\n".join(lines)


def plan_extraction(manifest: Manifest, store: FeatureStore, requests: Iterable[Request],
                    only: set[str] | None = None) -> Plan:
    """Turn what was asked into the work: entries, pending units, decode passes, shared parses.

    Opens each entry (a new one only after its checkpoints load as the extractor will load them:
    a refused checkpoint leaves no empty entry), retires units whose inputs changed and records
    the dataset in each entry. `only` restricts the work to these unit ids."""
    entries, seen = [], {}
    for req in requests:
        opts = req.options
        check_dense_grid(req, manifest)
        config = entry_config(opts, resolve_precision(opts.precision, pick_device(opts.device)), manifest)
        if not store.entry_dir(config).is_dir():
            check_checkpoints(opts)
        writer = store.writer(config)
        if writer.dir in seen:
            raise ValueError(f"{req.name} and {seen[writer.dir]} would fill the same cache entry {writer.dir}")
        seen[writer.dir] = req.name
        units, report = pending_units(manifest, store, writer, req.modality, opts, only)
        chunks = tuple(tuple(u.unit_id for u in c) for c in chunks_of(manifest.of_kind(req.unit_kind),
                                                                        opts.shard_size))
        entries.append(EntryPlan(req, writer.dir, entry_key(config), config, tuple(units), chunks,
                                 report.done_before, report.failures, report.changed, report.fingerprinted_bytes))
    return Plan(tuple(entries), _video_passes(entries), manifest)


def check_dense_grid(req: Request, manifest: Manifest) -> None:
    """A dense request needs a manifest read with its grid (`read_dataset(dense=(window, stride))`):
    a ValueError naming both otherwise (the units would not be the ones its entry key says)."""
    if req.unit_kind != DENSE_KIND:
        return
    asked = (req.options.dense_window, req.options.dense_stride)
    if manifest.dense != asked:
        had = "no dense units" if manifest.dense is None else f"dense windows {manifest.dense[0]} every {manifest.dense[1]}"
        raise ValueError(f"{req.name}: asks for dense windows of {asked[0]} frames every {asked[1]}, but the manifest "
                         f"was read with {had} (read_dataset(..., dense=({asked[0]}, {asked[1]})))")


def _video_passes(entries: list[EntryPlan]) -> tuple[VideoPass, ...]:
    decoded: dict[str, dict[str, list[str]]] = {}
    computed: dict[str, dict[str, list[str]]] = {}
    skeleton: set[str] = set()
    for e in entries:
        into = decoded if e.request.modality.takes else computed
        for u in e.pending:
            into.setdefault(u.video_id, {}).setdefault(e.name, []).append(u.unit_id)
            if e.request.modality.reads_skeleton:
                skeleton.add(u.video_id)

    def frozen(table: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((name, tuple(ids)) for name, ids in table.items())

    return tuple(VideoPass(vid, frozen(decoded.get(vid, {})), frozen(computed.get(vid, {})), vid in skeleton)
                 for vid in sorted(decoded.keys() | computed.keys()))


def check_checkpoints(opts: ExtractOptions) -> None:
    """Load each checkpoint as the extractor will (safely unless trusted), raising CheckpointError
    for one the loader refuses; nothing is kept and no backbone is built."""
    from migue.extractors.checkpoints import read_checkpoint

    for path in opts.checkpoints:
        read_checkpoint(path, opts.trust_checkpoint)
