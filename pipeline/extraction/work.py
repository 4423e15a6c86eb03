"""What a stage-one run has to compute and how its outputs wait to be published, shared by the
pose loop (`extract.py`) and the one-pass video engine (`onepass.py`)."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from migue.cache import EntryWriter, FeatureStore, dataset_record
from migue.cache.files import memo_for
from migue.cache.finite import nonfinite_units
from migue.cache.units import unit_columns
from migue.pipeline.datasets.manifest import Manifest, Unit

from .fingerprints import unit_fingerprints, why_changed
from .modalities import Modality
from .options import ExtractOptions, ExtractReport

log = logging.getLogger("migue.extract")


def pending_units(manifest: Manifest, store: FeatureStore, writer: EntryWriter, mod: Modality,
                  opts: ExtractOptions, only: set[str] | None) -> tuple[list[Unit], ExtractReport]:
    """The modality's units to compute, fingerprinted (units whose inputs changed are retired and
    recomputed), in (video, start) order, and the report they start."""
    kind = mod.kind(opts)
    memo = memo_for(store.root)
    hashed_before = memo.hashed_bytes
    asked = [u for u in manifest.of_kind(kind) if only is None or u.unit_id in only]
    wanted, twice = _one_row_each(asked)
    fingerprints, unreadable = unit_fingerprints(wanted, manifest.videos, mod, memo)
    published = writer.published_fingerprints()
    changed = {uid: why_changed(old, fingerprints[uid]) for uid, old in published.items()
               if uid in fingerprints and old != fingerprints[uid]}
    if changed:
        writer.retire(set(changed))
        log.info("%s: %d units changed since they were extracted (%s): their old tokens are retired and "
                 "they are extracted again", opts.modality, len(changed), _reasons(changed))
    in_dataset = {u.unit_id for u in manifest.of_kind(kind)}
    writer.record_dataset(dataset_record(in_dataset, [manifest.root], manifest.layout,  # readers refuse a mix
                                         getattr(manifest, "class_names", ())))
    if mod.source != "built-in":
        writer.record_plugin(mod.source)  # `cache verify --data` names the plugin its row needs
    asked_ids = {u.unit_id for u in asked}
    done = {uid for uid in published if uid not in changed and uid in asked_ids}  # this dataset's units only
    twice = {uid: why for uid, why in twice.items() if uid not in done}
    units = sorted((dataclasses.replace(u, fingerprint=fingerprints[u.unit_id]) for u in wanted
                    if u.unit_id not in done and u.unit_id in fingerprints and u.unit_id not in twice),
                   key=lambda u: (u.video_id, u.start))
    report = ExtractReport(writer.dir, len(done), 0, failures={**unreadable, **twice},
                           random_weights=not opts.checkpoints,
                           changed=changed, fingerprinted_bytes=memo.hashed_bytes - hashed_before)
    log.info("%s: %d units in the manifest, %d already cached, %d to extract -> %s",
             opts.modality, len(done) + len(units), len(done), len(units), writer.dir)
    others = len(published.keys() - in_dataset)
    if others:
        log.warning("%s: the entry also holds %d units that are not in this dataset (another dataset's, or rows "
                    "since removed): training and prediction use this dataset's units only with --data, and "
                    "refuse the mix without it", opts.modality, others)
    return units, report


def _one_row_each(units: list[Unit]) -> tuple[list[Unit], dict[str, str]]:
    """The units with one manifest row each, and why each unit id with several rows is failed
    (the readers never give one id two rows; a manifest made otherwise must not lose the unit)."""
    rows: dict[str, list[Unit]] = {}
    for u in units:
        rows.setdefault(u.unit_id, []).append(u)
    twice = {uid: _twice(uid, same) for uid, same in rows.items() if len(same) > 1}
    return [u for u in units if u.unit_id not in twice], twice


def _twice(uid: str, rows: list[Unit]) -> str:
    times = "twice" if len(rows) == 2 else f"{len(rows)} times"
    splits = ", ".join(u.split for u in rows)
    return (f"unit {uid}: the manifest holds it {times} (splits {splits}): which row's split and labels "
            "belong to it is unknown, so it is not extracted (migue data check names the duplicate video)")


def unproduced(asked: set[str], done: set[str], failures: dict[str, str], engine: str) -> dict[str, str]:
    """A failure for each unit a run was asked for that it neither published nor failed: no unit
    leaves a run unaccounted for (the run reports it, and a rerun retries it)."""
    return {uid: f"unit {uid}: the {engine} never produced it (no shard holds it and no failure was "
                 "recorded for it); extract again to retry"
            for uid in sorted(asked - done - set(failures))}


def finite_only(ids: list[str], outputs: dict[str, np.ndarray]) -> tuple[list[str], dict[str, np.ndarray], dict[str, str]]:
    """Cast a batch's float32 outputs to float16, keeping only units whose tokens stay finite;
    the others fail with the reason (NaN, inf, or overflow past float16's 65504)."""
    bad = nonfinite_units(ids, {k: list(v) for k, v in outputs.items()}, np.float16)
    keep = [i for i, uid in enumerate(ids) if uid not in bad]
    kept = {k: v[keep].astype(np.float16) for k, v in outputs.items()}
    return [ids[i] for i in keep], kept, {uid: f"not finite: {why}" for uid, why in bad.items()}


def _reasons(changed: dict[str, str]) -> str:
    """'12 skeleton changed, 1 label row changed': how many units changed for which reason."""
    counts: dict[str, int] = {}
    for why in changed.values():
        counts[why] = counts.get(why, 0) + 1
    return ", ".join(f"{n} {why}" for why, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def chunks_of(units: list[Unit], size: int) -> list[list[Unit]]:
    """The kind's units in (video, start) order, each video's cut every `size` units: the same in
    every run. A chunk never spans two videos, so a shard of videos (a Dask task) holds whole
    chunks and forwards the same batches as a run over every video (bit-identical entries)."""
    by_video: dict[str, list[Unit]] = {}
    for u in sorted(units, key=lambda u: (u.video_id, u.start, u.unit_id)):
        by_video.setdefault(u.video_id, []).append(u)
    step = max(1, size)
    return [units[i:i + step] for units in by_video.values() for i in range(0, len(units), step)]


class ShardBuffer:
    """Units and their per-stream token arrays waiting to become one shard."""

    def __init__(self) -> None:
        self.units: list[Unit] = []
        self.streams: dict[str, list[np.ndarray]] = {}

    def add(self, units: list[Unit], outputs: dict[str, np.ndarray]) -> None:
        self.units.extend(units)
        for name, array in outputs.items():
            self.streams.setdefault(name, []).extend(list(array))

    def columns(self) -> dict[str, list[Any]]:
        return unit_columns(self.units)
