"""`migue weights add`: a checkpoint downloaded by hand (SwinFace's shared folder) into the store,
after checking it is in the format its catalogue entry names."""
from __future__ import annotations

from pathlib import Path

from migue.extractors import weights as catalogue
from migue.extractors.checkpoints import CheckpointError, read_checkpoint
from migue.extractors.weights import FORMATS, KnownWeights, detect_format

from .fetch import Fetched, Wanted, publish_checked, receive_local
from .store import WeightsError, WeightsStore


def entry_for(name: str) -> KnownWeights:
    """The catalogue entry `--as NAME` means: a key, or a format only one entry has."""
    entry = catalogue.by_key(name)
    if entry:
        return entry
    same = [w for w in catalogue.CATALOGUE if w.format == name]
    if len(same) == 1:
        return same[0]
    if same:
        raise WeightsError(f"--as {name}: several catalogue files have that format "
                           f"({', '.join(w.key for w in same)}); name one by its key")
    raise WeightsError(f"--as {name}: neither a catalogue key ({', '.join(w.key for w in catalogue.CATALOGUE)}) "
                       f"nor a format ({', '.join(FORMATS)})")


def check_format(path: Path, entry: KnownWeights, trust: bool = False) -> str:
    """Refuse a file that is not in `entry`'s format; SwinFace's is also loaded strictly into the
    extractor (every backbone and head key converted, nothing left random). Returns what was checked."""
    try:
        ckpt = read_checkpoint(path, trust)
    except CheckpointError as exc:
        raise WeightsError(str(exc)) from None
    found = detect_format(ckpt)
    if found != entry.format:
        state = ckpt.get("state_dict", ckpt)
        first = list(state)[:5] if hasattr(state, "keys") else []
        raise WeightsError(f"{path} is in format {found!r} (first keys: {first}), not {entry.format} "
                           f"({FORMATS[entry.format]}); nothing was added")
    if entry.extractor != "swinface":
        return f"format {found} detected"
    from migue.extractors.registry import create_extractor

    try:
        create_extractor("swinface", frames=1).load_checkpoint(str(path), trust)
    except CheckpointError as exc:
        raise WeightsError(f"{exc}; nothing was added") from None
    return f"format {found}, loads strictly into the swinface extractor"


def add_file(path: Path, name: str, store: WeightsStore, trust: bool = False) -> Fetched:
    """Check `path` against catalogue entry `name` and copy it into the store atomically."""
    entry = entry_for(name)
    checked = check_format(path, entry, trust)
    wanted = Wanted(entry.file_name, str(path), entry.key, entry.sha256, entry.sha256_prefix)
    return publish_checked(wanted, store, receive_local(wanted, store), extra_check=checked)
