"""Which dataset an entry's units belong to.

An entry is keyed by what shaped the numbers (backbone, weights, preprocessing), not by the
dataset, so two datasets of one layout extracted into one cache share an entry, and a unit whose
rows were removed from the dataset stays published. Every extract run records in the index the
unit ids of the dataset it was given (`dataset`: the ids of the entry's unit kind, their digest,
the roots and layout). Readers then use exactly one dataset's units: the ids a caller names (from
`--data`), or, without them, the entry's units only when they all belong to the dataset last
extracted into it; a mix is refused (`UnitScopeError`), never trained on.
"""
from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np

DATASET_FIELD = "dataset"
SHOWN = 3  # unit ids named in a message


class UnitScopeError(ValueError):
    """An entry's units are not exactly those of the dataset asked for; names entry and units."""


def dataset_record(unit_ids: Iterable[str], roots: Sequence[str], layout: str,
                   class_names: Sequence[str] = ()) -> dict[str, Any]:
    """The index's record of the dataset an extract run was given: its unit ids (sorted), their
    digest, where it was read from and, when given, its MG class names by index (SMG's 17,
    iMiGUE's 32: an entry of any unit kind names its dataset's classes without the dataset)."""
    ids = sorted(set(unit_ids))
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    record = {"units": ids, "digest": digest, "roots": [str(r) for r in roots], "layout": layout}
    if class_names:
        record["class_names"] = list(class_names)
    return record


def check_dataset_record(record: Any) -> str | None:
    """What is wrong with an index's `dataset` field (None when it is well formed)."""
    if not isinstance(record, dict):
        return "should be an object"
    if not isinstance(record.get("units"), list) or not all(isinstance(u, str) for u in record["units"]):
        return "units should be a list of unit ids"
    if not isinstance(record.get("digest"), str) or not isinstance(record.get("roots", []), list):
        return "needs a digest (string) and roots (list)"
    return None


def _shown(ids: Collection[str]) -> str:
    return ", ".join(sorted(ids)[:SHOWN]) + (", ..." if len(ids) > SHOWN else "")


def refuse_mixed(name: str, index: dict[str, Any], unit_ids: Collection[str]) -> None:
    """Raise UnitScopeError when the entry's units `unit_ids` (of the kind asked for) are not all
    in the dataset last extracted into it. Entries without a record (written before it existed,
    or by other tools) are taken whole."""
    record = index.get(DATASET_FIELD)
    if not record:
        return
    outside = set(unit_ids) - set(record["units"])
    if outside:
        roots = ", ".join(record.get("roots", [])) or "?"
        raise UnitScopeError(
            f"cache entry {name} holds {len(outside)} units that are not in the dataset last extracted into "
            f"it ({len(record['units'])} units, from {roots}), e.g. {_shown(outside)}: they come from another "
            "dataset extracted into the same cache, or from rows since removed from it. Pass --data DIR (the "
            "dataset to use) to train, evaluate or predict on exactly its units")


def scope_rows(name: str, modality: str, kind: str, unit_ids: Sequence[str], wanted: Collection[str],
               failures: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """(mask over `unit_ids`: the entry's units in the dataset `wanted`, the wanted units that failed
    extraction). A wanted unit neither published nor failed is a UnitScopeError naming it."""
    wanted = set(wanted)
    mask = np.fromiter((u in wanted for u in unit_ids), dtype=bool, count=len(unit_ids))
    absent = wanted - set(unit_ids)
    failed = sorted(u for u in absent if u in failures)
    missing = absent - set(failed)
    if missing:
        raise UnitScopeError(
            f"cache entry {name} lacks {len(missing)} of the {len(wanted)} '{kind}' units of the dataset given "
            f"(--data), e.g. {_shown(missing)}; they were neither extracted nor failed there: run `migue extract "
            f"--modality {modality or '...'} --data DIR` with that dataset first")
    return mask, failed
