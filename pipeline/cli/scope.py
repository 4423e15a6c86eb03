"""`--data` for fuse-train, evaluate and predict: the units of the dataset given, checked against
the cache entries a head reads, so stage two uses exactly that dataset's units."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from migue.cache import EntryReader, UnitScopeError
from migue.cache.files import memo_for

from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.fingerprints import unit_fingerprints, why_changed

SHOWN = 3


def dataset_scope(task: str, data_roots: Sequence[Path], layout: str, window: int,
                  entries: Mapping[str, EntryReader]) -> dict[str, set[str]]:
    """Role -> the unit ids of `task`'s kind in the dataset at `data_roots`. A unit the entry holds
    that was extracted from other inputs than the dataset's now (a changed video, skeleton or
    label row) is a UnitScopeError naming the entry, the units and what changed."""
    from migue.fusion.tasks import get_task

    from migue.pipeline.extraction.options import dense_grid

    kind = get_task(task).unit_kind
    first = next(iter(entries.values()))
    grids = {dense_grid(reader.config) for reader in entries.values()}
    if len(grids) > 1:
        raise UnitScopeError(f"the entries read ({', '.join(r.name for r in entries.values())}) cover different "
                             f"dense window grids {sorted(g for g in grids if g)} (window, stride): extract them "
                             "with the same --dense-window and --dense-stride")
    manifest = read_dataset(tuple(data_roots), layout, window=window, parsed_dir=first.dir.parent / "parsed",
                            dense=grids.pop())
    units = manifest.of_kind(kind)
    scope = {}
    for role, reader in entries.items():
        modality = str(reader.config.get("modality", role))
        current, unreadable = unit_fingerprints(units, manifest.videos, modality, memo_for(reader.dir.parent))
        _refuse_changed(reader, modality, current, unreadable)
        scope[role] = {u.unit_id for u in units}
    return scope


def _refuse_changed(reader: EntryReader, modality: str, current: Mapping[str, str],
                    unreadable: Mapping[str, str]) -> None:
    table = reader.units
    published = dict(zip(table["unit_id"].astype(str), table["fingerprint"].astype(str))) \
        if "fingerprint" in table else {}
    changed = {uid: why_changed(old, current[uid]) for uid, old in published.items()
               if old and uid in current and current[uid] != old}
    changed.update({uid: f"its input cannot be read now ({why})" for uid, why in unreadable.items()
                    if uid in published})
    if changed:
        shown = "; ".join(f"{uid}: {why}" for uid, why in sorted(changed.items())[:SHOWN])
        raise UnitScopeError(
            f"cache entry {reader.name}: {len(changed)} units of the dataset given (--data) were extracted from "
            f"other inputs than it holds now ({shown}{'; ...' if len(changed) > SHOWN else ''}): run `migue "
            f"extract --modality {modality} --data DIR` with that dataset to re-extract them")


def run_entries(run_dir: Path) -> dict[str, EntryReader]:
    """The cache entries a finished run was trained on, by role (as its config.json records them)."""
    import json

    record = json.loads((Path(run_dir) / "config.json").read_text())
    return {role: EntryReader(info["path"]) for role, info in record["entries"].items()}


def run_task(run_dir: Path) -> str:
    """The task (a registered task's name: 'mg', 'emotion', ...) of a run folder."""
    import json

    return str(json.loads((Path(run_dir) / "config.json").read_text())["task"])
