"""Human-readable summaries: what a dataset holds, what a demo produced."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from migue.pipeline.datasets.classes import MG_CLASS_NAMES
from migue.common.splits import SPLITS
from migue.pipeline.datasets.manifest import Manifest


def describe_manifest(manifest: Manifest) -> str:
    """Per split: videos, with a video file, with a skeleton, MG clips, emotion windows; then the
    long-sequence view (sequences with segment labels, segments, background share), subjects,
    emotion labels, MG clips per class (the release's own classes), the reader's notes, and what
    under the roots no reader used."""
    roots = getattr(manifest, "roots", ()) or (manifest.root,)
    lines = [f"dataset {', '.join(str(r) for r in roots)} (layout {manifest.layout})"]
    videos = list(manifest.videos.values())
    lines.append(split_table(manifest).to_string(index=False))
    if videos:
        lines.append("gesture segments per split (frames 0-based inclusive; background = frames outside every "
                     "segment, over sequences with segment labels and a known frame count):")
        lines.append(segment_table(manifest).to_string(index=False))
        subjects = {s: {v.subject for v in videos if v.split == s} for s in SPLITS}
        if any(v.subject != v.video_id for v in videos):
            lines.append("subjects: " + ", ".join(f"{s} {len(subjects[s])}" for s in SPLITS))
        emo = Counter((v.split, v.emotion) for v in videos)
        lines.append("emotion labels: " + ", ".join(
            f"{s} win {emo[(s, 1)]} / lose {emo[(s, 0)]} / unknown {emo[(s, -1)]}" for s in SPLITS))
        counts = Counter((u.mg_label, u.split) for u in manifest.of_kind("mg"))
        names = getattr(manifest, "class_names", MG_CLASS_NAMES)
        table = pd.DataFrame(
            [[names[c]] + [counts[(c, s)] for s in SPLITS] for c in range(len(names))]
            + ([["(unlabelled)"] + [counts[(-1, s)] for s in SPLITS]] if any(c == -1 for c, _ in counts) else []),
            columns=["class"] + list(SPLITS))
        lines.append(table.to_string(index=False))
    return "\n".join(lines + _notes(manifest) + _unused(manifest))


def split_table(manifest: Manifest) -> pd.DataFrame:
    """One row per split: videos, with video, with skeleton, MG clips, emotion windows."""
    videos = list(manifest.videos.values())
    units = Counter((u.kind, u.split) for u in manifest.units)
    return pd.DataFrame([{
        "split": s, "videos": sum(v.split == s for v in videos),
        "with video": sum(v.split == s and v.video_path is not None for v in videos),
        "with skeleton": sum(v.split == s and v.skeleton_path is not None for v in videos),
        "MG clips": units[("mg", s)], "emotion windows": units[("window", s)]} for s in SPLITS])


def segment_table(manifest: Manifest) -> pd.DataFrame:
    """One row per split: sequences, those with segment labels, segments and their mean length in
    frames, frames of the labelled ones (frame count known) and their background share (frames in
    no segment; '-' without frames)."""
    rows = []
    for split in SPLITS:
        videos = [v for v in manifest.videos.values() if v.split == split]
        labelled = [v for v in videos if v.segments is not None]
        lengths = [g.frames for v in labelled for g in v.segments]
        counted = [v for v in labelled if v.frames > 0]
        frames = sum(v.frames for v in counted)
        background = sum(int((v.frame_labels() < 0).sum()) for v in counted)
        rows.append({"split": split, "sequences": len(videos), "with segments": len(labelled),
                     "segments": sum(len(v.segments) for v in labelled),
                     "mean length": f"{np.mean(lengths):.1f}" if lengths else "-", "frames": frames,
                     "background": f"{background / frames:.1%}" if frames else "-"})
    return pd.DataFrame(rows)


def _unused(manifest: Manifest) -> list[str]:
    from migue.pipeline.datasets.common import unused_files

    unused = unused_files(manifest) if hasattr(manifest, "found") else []
    if not unused:
        return ["every file found under the dataset folder(s) was read"]
    lines = ["not read by the layout's reader:"]
    for u in unused:
        shown = ", ".join(str(p) for p in u.first) + (" ..." if u.count > len(u.first) else "")
        lines.append(f"  - {u.count} {u.kind}: {shown}")
    return lines


def _notes(manifest: Manifest) -> list[str]:
    notes = getattr(manifest, "notes", [])
    return [f"{len(notes)} note(s):"] + [f"  - {n}" for n in notes] if notes else []
