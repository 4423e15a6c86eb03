"""The `stgcn` layout: MiGA's ST-GCN baseline packs, clips only, no videos.

    <part>_data.npy, <part>_label.pkl   the packs (see `stgcn_pack`); part: train, val
                                        (validate, validation) or test -> the split; at the
                                        root or one folder down
    train_label.csv, validation_label.csv   optional emotion labels (video_id,label)

With the MiGA `<id>_label.csv` files (or a `labels.csv`) under the pack's folder the units get
the same ids as the other layouts; without them they are named `<id>:clip<k>` (see `stgcn_pack`).
"""
from __future__ import annotations

from pathlib import Path

from .common import DatasetManifest, ReadOptions, Reader, read_emotion_files
from .files import Roots, video_key
from .stgcn_pack import PACK_REF, PackError, find_packs, index_pack, label_path_of, pack_split

NAME = "stgcn"


LOOKS_FOR = "<part>_data.npy + <part>_label.pkl packs (at a root or one folder down) for the {split} split"


def looks_like(root: Path | Roots) -> bool:
    return any(label_path_of(p).exists() for p in find_packs(root))


def read(root: Path | Roots, opts: ReadOptions) -> DatasetManifest:
    reader = Reader(root, NAME, opts)
    root = reader.where
    emotion = read_emotion_files(reader)
    videos = reader.found.videos
    if not videos:
        reader.note("ST-GCN packs hold clips, no videos: pose units only (no rgb, context or face)")
    owner: dict[str, Path] = {}
    for data_path in find_packs(reader.roots):
        split = pack_split(data_path)
        if split is not None:
            reader.source(split, data_path)
        try:
            pack = index_pack(data_path)
        except PackError as exc:
            reader.problem(f"{exc} (the pack is not read)")
            continue
        for text in pack.problems:
            reader.problem(text)
        for vid, clips in pack.clips.items():
            if vid in owner:
                reader.problem(f"{pack.label_path}: video {vid} also has clips in {owner[vid].name}; "
                               "kept those")
                continue
            owner[vid] = data_path
            ref = Path(f"{data_path}{PACK_REF}{vid}")
            video = reader.add_video(vid, vid, pack.split or "train", emotion.get(video_key(vid), -1),
                                     videos.get(video_key(vid)), ref, where=str(pack.label_path))
            if video is None:  # read before under another spelling of its id
                continue
            reader.use(data_path, pack.label_path)
            for clip in clips:
                reader.add_clip(video, clip.label, clip.start, clip.end,
                                f"{pack.label_path}: item {clip.item} ({clip.name!r})", clip.unit_id,
                                label_row=clip.k - pack.base)
            reader.add_windows(video)
    if not owner and not reader.problems:
        reader.problem(f"{root}: no <part>_data.npy with its <part>_label.pkl")
    return reader.manifest
