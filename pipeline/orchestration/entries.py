"""Stage two from the command line: pick the cache entries a head reads and hand them to fusion."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from migue.cache import EntryReader, FeatureStore


def task_modalities(task: str) -> tuple[str, ...]:
    """The entry roles (modalities) task `task` reads, in its order (an unknown task: the known ones)."""
    from migue.fusion.tasks import get_task

    return get_task(task).modalities


def head_roles(task: str, config: Mapping[str, Any] | None = None) -> list[str]:
    """The entry roles (modalities) the configured head reads, in the task's order: a pose probe
    needs pose alone, CMTF rgb and pose."""
    from migue.fusion.config import resolve_config
    from migue.fusion.heads import head_inputs

    modalities = task_modalities(task)
    cfg = resolve_config(task, dict(config or {}))
    roles = {inp.entry for inp in head_inputs(cfg["head"], task, cfg).values()}
    return ordered_roles(modalities, roles)


def ordered_roles(modalities: Iterable[str], roles: Iterable[str]) -> list[str]:
    """`roles` in the task's modality order, then those no task names (a plugin modality's, e.g.
    rgb-small for its probe), by name: none is dropped."""
    own, roles = list(modalities), set(roles)
    return [m for m in own if m in roles] + sorted(roles - set(own))


def select_entries(store: FeatureStore, task: str, explicit: dict[str, str] | None = None,
                   roles: Iterable[str] | None = None, head: str = "",
                   name_with: str = "--entry {modality}=NAME") -> dict[str, EntryReader]:
    """One entry per role the head reads (`roles`, default every modality of the task): the one
    named, else the only one in the cache holding the task's unit kind (entries without a recorded
    kind count as holding it). A missing one is named with the command that makes
    it; an entry without train units is refused (training on nothing). Several for one role are
    refused, naming them and how the caller's user names one (`name_with`, given the modality)."""
    from migue.fusion.tasks import get_task

    modalities = task_modalities(task)
    kind = get_task(task).unit_kind  # the entries holding the task's units (pose@dense for online, not pose's clips)
    explicit = explicit or {}
    wanted = list(roles) if roles is not None else list(modalities)
    reader_of = f"head {head!r} reads {' + '.join(wanted)}" if head else f"task {task} reads {' + '.join(wanted)}"
    readers = {}
    for modality in wanted:
        if modality in explicit:
            readers[modality] = store.reader(explicit[modality])
            continue
        found = [e for e in store.find(modality=modality) if e.units > 0 and e.config.get("unit_kind", kind) == kind]
        if not found:
            units = "" if kind == _own_kind(modality) else f" --units {kind}"
            raise LookupError(f"no '{modality}' features of {kind} units in {store.root} ({reader_of}): run "
                              f"`migue extract --modality {modality}{units} --data DATA` first")
        if len(found) > 1:
            names = ", ".join(e.name for e in found)
            raise LookupError(f"several '{modality}' entries in {store.root} ({names}): name one with "
                              + name_with.format(modality=modality))
        readers[modality] = store.reader(found[0].name)
    for modality, reader in readers.items():
        _refuse_empty_train(modality, reader)
    return readers


def _own_kind(modality: str) -> str:
    """The unit kind a modality's row covers by default ("" when no row of that name is registered)."""
    from migue.pipeline.extraction.modalities import MODALITIES

    row = MODALITIES.get(modality)
    return row.unit_kind if row is not None else ""


def _refuse_empty_train(modality: str, reader: EntryReader) -> None:
    units = reader.units
    if "split" in units and not (units["split"] == "train").any():
        raise LookupError(f"the train split is empty: entry {reader.name} ({modality}, in {reader.dir}) holds "
                          f"no train units (the dataset it was extracted from had none; `migue data check` "
                          "shows where the reader looked); nothing to train on")
