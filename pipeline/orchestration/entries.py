"""Stage two from the command line: pick the cache entries a task needs and hand them to fusion."""
from __future__ import annotations

from migue.cache import EntryReader, FeatureStore

TASK_MODALITIES = {"mg": ("rgb", "pose"), "emotion": ("face", "context")}


def select_entries(store: FeatureStore, task: str, explicit: dict[str, str] | None = None) -> dict[str, EntryReader]:
    """One entry per modality of the task: the one named, else the only one in the cache."""
    if task not in TASK_MODALITIES:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASK_MODALITIES)}")
    explicit = explicit or {}
    readers = {}
    for modality in TASK_MODALITIES[task]:
        if modality in explicit:
            readers[modality] = store.reader(explicit[modality])
            continue
        found = [e for e in store.find(modality=modality) if e.units > 0]
        if not found:
            raise LookupError(f"no '{modality}' features in {store.root}: run "
                              f"`migue extract --modality {modality}` first")
        if len(found) > 1:
            names = ", ".join(e.name for e in found)
            raise LookupError(f"several '{modality}' entries in {store.root} ({names}): name one with "
                              f"--entry {modality}=NAME")
        readers[modality] = store.reader(found[0].name)
    return readers
