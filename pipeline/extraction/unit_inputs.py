"""The seam between decoding and the model: units in, model inputs out.

`unit_input` turns one unit into the array its extractor eats (the modality row says how);
`UnitInputs` does it in DataLoader workers, a failure returned with the unit's id instead of
raised. A decoder that reads each video once for many units replaces this module's functions.
"""
from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from migue.pipeline.datasets.manifest import Unit, Video

from .fingerprints import part_of
from .inputs import InputConfig, skeleton_of
from .modalities import Modality

Decoded = tuple[str, "np.ndarray | None", "str | None"]  # unit id, its input or None, why it failed


def unit_input(mod: Modality, unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> Decoded:
    """One unit's model input; any failure is this unit's (one bad unit never loses the others' work)."""
    try:
        return unit.unit_id, mod.unit_input(unit, video, cfg, parsed_dir), None
    except Exception as exc:
        return unit.unit_id, None, f"{type(exc).__name__}: {exc}"


class UnitInputs(Dataset):
    """Decodes one unit's input in a DataLoader worker."""

    def __init__(self, units: list[Unit], videos: dict[str, Video], mod: Modality, cfg: InputConfig,
                 parsed_dir: Path | None) -> None:
        self.units, self.videos, self.mod = units, videos, mod
        self.cfg, self.parsed_dir = cfg, parsed_dir

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, i: int) -> Decoded:
        unit = self.units[i]
        return unit_input(self.mod, unit, self.videos[unit.video_id], self.cfg, self.parsed_dir)

    def first_input(self, tries: int = 8) -> np.ndarray | None:
        """One decoded unit (of the first `tries`), to measure what a unit costs on the device."""
        for i in range(min(tries, len(self))):
            _, array, _ = self[i]
            if array is not None:
                return array
        return None


def collate(items: list[Decoded]) -> tuple[list[str], torch.Tensor | None, dict[str, str]]:
    """Decoded units -> (ids of the decoded ones, their batch or None, failed id -> reason)."""
    ok = [(uid, x) for uid, x, err in items if x is not None]
    failed = {uid: str(err) for uid, x, err in items if x is None}
    batch = torch.from_numpy(np.stack([x for _, x in ok])) if ok else None
    return [uid for uid, _ in ok], batch, failed


def worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the model for cores


def parse_skeletons(units: list[Unit], videos: dict[str, Video], parsed_dir: Path,
                    failures: dict[str, str]) -> list[Unit]:
    """Parse each needed skeleton sheet once (kept by hash); units of unreadable ones fail."""
    bad = parse_videos({u.video_id: part_of(u.fingerprint, "skeleton") for u in units}, videos, parsed_dir)
    failures.update({u.unit_id: bad[u.video_id] for u in units if u.video_id in bad})
    return [u for u in units if u.video_id not in bad]


def parse_videos(content: dict[str, str], videos: dict[str, Video], parsed_dir: Path) -> dict[str, str]:
    """Parse the skeleton of each video in `content` (video id -> skeleton fingerprint) once,
    for every modality reading it; video id -> why, for those that cannot be read."""
    bad: dict[str, str] = {}
    for vid in tqdm(sorted(content), desc="read skeletons", unit="video", disable=None):
        try:
            skeleton_of(videos[vid], parsed_dir, content[vid])
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the disk, not this file
                raise
            bad[vid] = f"{type(exc).__name__}: {exc}"
    return bad
