"""Per-unit fingerprints: what exactly a unit of an entry was computed from.

A unit's fingerprint is `<part>=b3:<hash>;...` over the inputs its modality reads: `video`
(the video file's bytes), `skeleton` (the skeleton file, the JSON folder's frame files, or the
video's rows of an ST-GCN pack) and `label` (the unit's own label row and metadata, and the
frame size its inputs are normalised by). Reuse is decided per unit by comparing them; the
parts say why a unit changed.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from migue.cache.files import FingerprintMemo, fingerprint_bytes, memo_for, part_of  # noqa: F401 (part_of: re-exported)

from migue.pipeline.datasets.common import DEFAULT_WINDOW
from migue.pipeline.datasets.manifest import Unit, Video
from migue.pipeline.datasets.skeleton import skeleton_fingerprint

if TYPE_CHECKING:
    from .modalities import Modality

MISSING = "missing"


def label_fingerprint(unit: Unit, video: Video) -> str:
    """The unit's label row and metadata (everything stored with its tokens) and its frame size.
    A dense window's label row is its centre frame's class (`mg_label`) and, on a sequence's first
    window, the sequence's whole ground truth (`segments`): a relabelled sequence re-extracts them.
    An empty `segments` is left out, so units from before the column keep their fingerprints."""
    fields = {k: v for k, v in asdict(unit).items() if k != "fingerprint" and not (k == "segments" and not v)}
    fields["frame_size"] = [video.width, video.height]
    return fingerprint_bytes(json.dumps(fields, sort_keys=True, default=str))


def unit_fingerprints(units: Iterable[Unit], videos: Mapping[str, Video], modality: Modality | str,
                      memo: FingerprintMemo) -> tuple[dict[str, str], dict[str, str]]:
    """(unit id -> fingerprint, unit id -> why it could not be fingerprinted), over the inputs the
    modality's row `reads`. Each video's files are hashed once (through the memo: unchanged files
    cost a stat). A name is looked up (callers not yet handed the row)."""
    from .modalities import get_modality  # late: modalities -> inputs -> this module

    reads = (get_modality(modality) if isinstance(modality, str) else modality).reads
    per_video: dict[tuple[str, str], str] = {}
    out, failed = {}, {}
    for unit in units:
        video = videos[unit.video_id]
        parts = []
        try:
            for part in reads:
                key = (unit.video_id, part)
                if key not in per_video:
                    per_video[key] = _source(video, part, memo)
                parts.append(f"{part}={per_video[key]}")
        except (OSError, ValueError) as exc:
            failed[unit.unit_id] = f"cannot fingerprint its input: {exc}"
            continue
        parts.append(f"label={label_fingerprint(unit, video)}")
        out[unit.unit_id] = ";".join(parts)
    memo.flush()
    return out, failed


def _source(video: Video, part: str, memo: FingerprintMemo) -> str:
    path = video.video_path if part == "video" else video.skeleton_path
    if path is None:
        return MISSING
    return memo.file(path) if part == "video" else skeleton_fingerprint(path, memo)


def why_changed(old: str, new: str) -> str:
    """Which inputs differ between two fingerprints of one unit, in words."""
    if not old:
        return "extracted without a fingerprint"
    names = [p.partition("=")[0] for p in new.split(";")]
    changed = [n for n in names if part_of(old, n) != part_of(new, n)]
    words = {"video": "video file", "skeleton": "skeleton", "label": "label row"}
    return ", ".join(words.get(n, n) for n in changed) + " changed" if changed else "fingerprint changed"


def stale_units(published: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """Published unit id -> why, for units whose inputs changed or are no longer in the dataset."""
    out = {}
    for uid, old in published.items():
        if uid not in current:
            out[uid] = "no longer in the dataset (or its input cannot be read)"
        elif current[uid] != old:
            out[uid] = why_changed(old, current[uid])
    return out


class UnknownModalityError(ValueError):
    """An entry's modality is not registered here (its plugin is not loaded): its inputs are unknown."""


def changed_inputs(entry_dir: Path, data_root: Path, layout: str = "auto", window: int = DEFAULT_WINDOW,
                   cache_root: Path | None = None) -> dict[str, str]:
    """Units of a cache entry whose inputs under `data_root` changed since they were extracted
    (or are gone), with why: what `migue cache verify ENTRY --data DIR` lists. An UnknownModalityError
    (naming the plugin to load) when the entry's modality is not registered."""
    from migue.cache import EntryReader
    from migue.cache.index import PLUGIN_FIELD, read_index

    from migue.pipeline.datasets import read_dataset

    from .modalities import MODALITIES

    with EntryReader(entry_dir) as reader:
        config = reader.config
        fps = reader.units["fingerprint"] if "fingerprint" in reader.units else [""] * len(reader.units)
        published = {str(u): str(fp) for u, fp in zip(reader.units["unit_id"], fps)}
    kind, name = config.get("unit_kind", "mg"), config.get("modality", "")
    if name not in MODALITIES:
        plugin = read_index(Path(entry_dir)).get(PLUGIN_FIELD)
        if plugin:
            raise UnknownModalityError(f"modality {name!r} is registered by the plugin {plugin}, which is not "
                                       f"loaded, so its inputs are unknown: pass --plugin {plugin} if you trust its "
                                       "code")
        raise UnknownModalityError(f"modality {name!r} is not registered, so its inputs are unknown (known: "
                                   f"{', '.join(MODALITIES)}; a plugin's modality needs --plugin MODULE)")
    from .options import dense_grid

    cache_root = cache_root or Path(entry_dir).parent
    manifest = read_dataset(data_root, layout, window=window, parsed_dir=cache_root / "parsed",
                            dense=dense_grid(config))
    current, _ = unit_fingerprints(manifest.of_kind(kind), manifest.videos, MODALITIES[name], memo_for(cache_root))
    return stale_units(published, current)
