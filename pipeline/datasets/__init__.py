"""Dataset layouts -> manifests. Autodetected, or named with `--layout`.

Layouts (see each module): `imigue` (the full release: labels.csv with subjects, videos,
skeletons if present), `miga2025` (xlsx sheets), `miga2023` (light-hand CSVs),
`openpose-json` (raw OpenPose per-frame JSON in the MiGA folders), `stgcn` (the ST-GCN
baseline's .npy/.pkl packs), `smg` (the SMG release: Kinect skeleton sequences with gesture
segments). Autodetection tries them in that order.
"""
from __future__ import annotations

from pathlib import Path

from collections.abc import Sequence

from .common import DEFAULT_WINDOW, DatasetManifest, ReadOptions, attach_segments
from .files import as_roots, describe_roots
from .manifest import add_dense_units
from . import imigue, miga2023, miga2025, openpose_json, smg, stgcn

LAYOUTS = {"imigue": imigue, "miga2025": miga2025, "miga2023": miga2023,
           "openpose-json": openpose_json, "stgcn": stgcn, "smg": smg}

__all__ = ["DEFAULT_WINDOW", "LAYOUTS", "DatasetManifest", "ReadOptions", "default_units", "detect_layout",
           "read_dataset"]


def detect_layout(root: str | Path | Sequence[str | Path]) -> list[str]:
    """Every layout the folder(s) look like, in the order autodetection prefers them (folder
    listings only: no file is opened)."""
    roots = as_roots(root)
    return [name for name, module in LAYOUTS.items() if module.looks_like(roots)]


def default_units(root: str | Path | Sequence[str | Path], layout: str = "auto") -> tuple[str, str] | None:
    """(unit kind, why) a release's own track covers when `--units` is not given (a layout module's
    `DEFAULT_UNITS`: SMG's dense windows), or None: each modality covers its own units."""
    if layout == "auto":
        matches = detect_layout(root)
        layout = matches[0] if matches else ""
    return getattr(LAYOUTS.get(layout), "DEFAULT_UNITS", None)


def read_dataset(root: str | Path | Sequence[str | Path], layout: str = "auto", window: int = DEFAULT_WINDOW, *,
                 read_skeletons: bool = False, parsed_dir: str | Path | None = None,
                 dense: tuple[int, int] | None = None) -> DatasetManifest:
    """Read a dataset folder, or several read as one dataset, into a manifest of units; bad
    input becomes `manifest.problems`. An empty train split, or a val or test split whose folder
    or pack is there but yields no video, is in `manifest.empty_splits` (a sentence saying where
    the reader looked: `migue data check` reports it as a problem, `migue extract` refuses an empty
    train split); a val or test split the download has no files for at all is a note naming what
    was looked for (phase 1 without validate, a train-only pack), and the other splits are read.

    `read_skeletons` parses every skeleton file (what `migue data check` does); otherwise only
    those of videos without a decodable video file, which give those videos their frame count
    and size. Parsed skeletons are kept by content hash under `parsed_dir` when given.
    `dense=(window, stride)` adds the dense windows over every sequence of known frame count
    (`manifest.dense_units`, the online task's units); without it the manifest is as before."""
    roots = as_roots(root)
    for folder in roots:
        if not folder.is_dir():
            raise FileNotFoundError(f"dataset folder {folder} does not exist")
    where = describe_roots(roots)
    if layout == "auto":
        matches = detect_layout(roots)
        if not matches:
            raise ValueError(f"{where}: no known dataset layout found (known: {', '.join(LAYOUTS)}; the "
                             "readers look for imigue_skeleton_<split> folders at any depth, labels.csv "
                             "or <part>_data.npy at a root or one folder down, <id>/<id>_skeleton.csv "
                             "SMG sequence folders)")
        layout = matches[0]
    else:
        matches = []
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    opts = ReadOptions(window=window, read_skeletons=read_skeletons,
                       parsed_dir=Path(parsed_dir) if parsed_dir else None, dense=dense)
    manifest = LAYOUTS[layout].read(roots if len(roots) > 1 else roots[0], opts)
    attach_segments(manifest)
    if opts.dense is not None:
        add_dense_units(manifest, *opts.dense)
    if len(matches) > 1:
        manifest.notes.append(f"{where} also looks like {', '.join(matches[1:])}: read as {layout} "
                              "(choose with --layout)")
    _empty_splits(manifest, layout, where)
    _missing_emotion_files(manifest, layout, where)
    return manifest


def _empty_splits(manifest: DatasetManifest, layout: str, where: str) -> None:
    """Splits without a video: a problem for train, and for any split the download has files for
    (a folder or pack that yields nothing); a note for a val or test split it has nothing for."""
    for split in SPLIT_FOLDERS:
        if any(v.split == split for v in manifest.videos.values()):
            continue
        looked = LAYOUTS[layout].LOOKS_FOR.format(split=split, folder=SPLIT_FOLDERS[split])
        if split == "train" or manifest.split_sources.get(split):
            manifest.empty_splits[split] = (f"the {split} split is empty: the {layout} reader looked for "
                                            f"{looked} under {where} and found no video there")
        elif not manifest.split_sources.get(split):
            manifest.notes.append(f"no {split} split: the {layout} reader looked for {looked} under {where} "
                                  f"and found none (not in this download); {MISSING[split]}")


EMOTION_FILE = {"train": "train_label.csv", "val": "validation_label.csv"}  # the MiGA emotion track's files
EMOTION_FROM_FILES = ("imigue", "miga2025", "miga2023", "openpose-json")  # releases that ship them (ST-GCN: optional)


def _missing_emotion_files(manifest: DatasetManifest, layout: str, where: str) -> None:
    """Train or val videos without an emotion label because their split's label file is absent (a
    problem for the iMiGUE and MiGA layouts, a note for ST-GCN packs), or because it lacks them."""
    from .files import EMOTION_FILES

    if layout not in (*EMOTION_FROM_FILES, "stgcn") or manifest.found is None:
        return
    for split, name in EMOTION_FILE.items():
        videos = [v for v in manifest.videos.values() if v.split == split]
        unknown = sorted(v.video_id for v in videos if v.emotion < 0)
        if not unknown:
            continue
        files = [p for p in manifest.found.emotion_files if EMOTION_FILES.get(p.name) == split]
        if files:
            manifest.problems.append(
                f"{len(unknown)} of the {len(videos)} {split} videos have no emotion label in "
                f"{', '.join(str(p) for p in files)} (e.g. video {unknown[0]}): the emotion task leaves them out")
            continue
        text = (f"no {name} under {where}: it holds the emotion labels (video_id,label; 1 win, 0 lose) of the "
                f"{split} videos, so {len(unknown)} of the {len(videos)} have none and the emotion task cannot "
                f"{'train' if split == 'train' else 'validate'} on them; the release has it beside the "
                "imigue_skeleton_* folders")
        (manifest.problems if layout in EMOTION_FROM_FILES else manifest.notes).append(text)


MISSING = {"val": "the other splits are read, and training keeps its last epoch (no early stopping)",
           "test": "the other splits are read; nothing is predicted for test"}
SPLIT_FOLDERS = {"train": "train", "val": "validate", "test": "test"}  # the MiGA folder names
