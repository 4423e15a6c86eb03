"""Human-readable summaries: what a dataset holds, what a demo produced."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from migue.pipeline.datasets.classes import MG_CLASS_NAMES
from migue.common.splits import SPLITS
from migue.pipeline.datasets.manifest import Manifest


def describe_manifest(manifest: Manifest) -> str:
    """Videos (with a video file, with a skeleton) and subjects per split, emotion labels per
    split, MG clips per class and split, emotion windows, and the reader's notes."""
    lines = [f"dataset {manifest.root} (layout {manifest.layout})"]
    videos = list(manifest.videos.values())
    if not videos:
        return "\n".join(lines + ["no videos found"] + _notes(manifest))
    per_split = Counter(v.split for v in videos)
    with_video = Counter(v.split for v in videos if v.video_path is not None)
    with_skeleton = Counter(v.split for v in videos if v.skeleton_path is not None)
    lines.append("videos: " + ", ".join(
        f"{s} {per_split[s]} ({with_video[s]} with video, {with_skeleton[s]} with skeleton)" for s in SPLITS))
    subjects = {s: {v.subject for v in videos if v.split == s} for s in SPLITS}
    if any(v.subject != v.video_id for v in videos):
        lines.append("subjects: " + ", ".join(f"{s} {len(subjects[s])}" for s in SPLITS))
    emo = Counter((v.split, v.emotion) for v in videos)
    lines.append("emotion labels: " + ", ".join(
        f"{s} win {emo[(s, 1)]} / lose {emo[(s, 0)]} / unknown {emo[(s, -1)]}" for s in SPLITS))
    mg = manifest.of_kind("mg")
    clips = Counter(u.split for u in mg)
    lines.append(f"MG clips: {len(mg)} (" + ", ".join(f"{s} {clips[s]}" for s in SPLITS)
                 + f"); emotion windows: {len(manifest.of_kind('window'))}")
    counts = Counter((u.mg_label, u.split) for u in mg)
    table = pd.DataFrame(
        [[MG_CLASS_NAMES[c]] + [counts[(c, s)] for s in SPLITS] for c in range(len(MG_CLASS_NAMES))],
        columns=["class"] + list(SPLITS))
    lines.append(table.to_string(index=False))
    return "\n".join(lines + _notes(manifest))


def _notes(manifest: Manifest) -> list[str]:
    notes = getattr(manifest, "notes", [])
    return [f"{len(notes)} note(s):"] + [f"  - {n}" for n in notes] if notes else []
