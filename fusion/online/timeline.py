"""The timeline figure of an online run: per sequence, the annotated gestures above the predicted
ones, one colour per class, the classes named in a legend (PNG; matplotlib's object API on an Agg canvas,
no pyplot state)."""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..reports import save_figure
from .score import Segment, _label_order

MAX_SEQUENCES = 12  # a figure taller than this many sequences is no longer read


def timeline_figure(truths: Sequence[Segment], predictions: Sequence[Segment],
                    class_names: Mapping[Hashable, str] | Sequence[str] | None = None,
                    videos: Sequence[str] | None = None, max_sequences: int = MAX_SEQUENCES) -> Figure:
    """One row per sequence (the first `max_sequences` of `videos`, default: every video named by a
    segment, sorted), truth above prediction; a prediction's alpha is its score where it has one."""
    names = _namer(class_names)
    shown = list(videos) if videos is not None else sorted({s.video_id for s in (*truths, *predictions)})
    hidden = max(0, len(shown) - max_sequences)
    shown = shown[:max_sequences]
    labels = sorted({s.label for s in (*truths, *predictions)}, key=_label_order)
    palette = matplotlib.colormaps["tab20"].resampled(max(len(labels), 1))
    colour = {label: palette(i) for i, label in enumerate(labels)}
    # tall enough for the legend too (one line a class): 17 SMG classes over 2 sequences were cut off
    fig = Figure(figsize=(12, max(0.9 + 0.8 * max(len(shown), 1), 0.6 + 0.24 * len(labels))), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row, video in enumerate(shown):
        y = len(shown) - 1 - row
        for lane, found, offset in (("truth", truths, 0.42), ("predicted", predictions, 0.02)):
            spans = [s for s in found if s.video_id == video]
            for s in spans:
                alpha = 1.0 if s.score is None else 0.35 + 0.65 * min(max(float(s.score), 0.0), 1.0)
                ax.broken_barh([(s.start, max(s.end - s.start, 1))], (y + offset, 0.36),
                               facecolors=colour[s.label], alpha=alpha,
                               edgecolor="black" if lane == "truth" else "none", linewidth=0.5)
    ax.set_yticks([len(shown) - 1 - r + 0.4 for r in range(len(shown))], shown)
    ax.set_xlabel("frame  (each row: truth above, predicted below)")
    ax.set_ylim(-0.1, max(len(shown), 1))
    title = "gestures per sequence: truth (outlined) and predicted"
    ax.set_title(title + (f"; {hidden} more sequence(s) not shown" if hidden else ""))
    if labels:
        ax.legend(handles=[Patch(color=colour[label], label=names(label)) for label in labels],
                  loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="class")
    return fig


def write_timeline(truths: Sequence[Segment], predictions: Sequence[Segment], path: str | Path,
                   class_names: Mapping[Hashable, str] | Sequence[str] | None = None,
                   videos: Sequence[str] | None = None, max_sequences: int = MAX_SEQUENCES, dpi: int = 100) -> Path:
    """`timeline_figure` as a PNG at `path`, rendered in memory and published atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(timeline_figure(truths, predictions, class_names, videos, max_sequences), path, dpi)
    return path


def _namer(class_names: Mapping[Hashable, str] | Sequence[str] | None):
    """label -> the name shown: from a mapping, from a list by integer index, else the label itself."""
    def name(label: Hashable) -> str:
        if isinstance(class_names, Mapping) and label in class_names:
            return f"{label}: {class_names[label]}"
        if (isinstance(class_names, Sequence) and not isinstance(class_names, str) and isinstance(label, int)
                and 0 <= label < len(class_names)):
            return f"{label}: {class_names[label]}"
        return str(label)

    return name
