"""Human-readable summaries: what a dataset holds, what a demo produced."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from .classes import MG_CLASS_NAMES
from .manifest import SPLITS, Manifest


def describe_manifest(manifest: Manifest) -> str:
    """Videos, clips per class and split, emotion labels per split."""
    lines = [f"dataset {manifest.root} (layout {manifest.layout})"]
    videos = pd.DataFrame([{"split": v.split, "emotion": v.emotion} for v in manifest.videos.values()])
    if videos.empty:
        return "\n".join(lines + ["no videos found"])
    per_split = videos.groupby("split").size().reindex(SPLITS, fill_value=0)
    lines.append("videos: " + ", ".join(f"{s} {n}" for s, n in per_split.items()))
    emo = Counter((v.split, v.emotion) for v in manifest.videos.values())
    lines.append("emotion labels: " + ", ".join(
        f"{s} win {emo[(s, 1)]} / lose {emo[(s, 0)]} / unknown {emo[(s, -1)]}" for s in SPLITS))
    mg = manifest.of_kind("mg")
    lines.append(f"MG clips: {len(mg)}; emotion windows: {len(manifest.of_kind('window'))}")
    counts = Counter((u.mg_label, u.split) for u in mg)
    table = pd.DataFrame(
        [[MG_CLASS_NAMES[c]] + [counts[(c, s)] for s in SPLITS] for c in range(len(MG_CLASS_NAMES))],
        columns=["class"] + list(SPLITS))
    lines.append(table.to_string(index=False))
    return "\n".join(lines)
