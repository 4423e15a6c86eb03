"""The online (MiGA Track 2) metric: F1 of predicted gesture segments against the annotated ones.

A prediction and a truth match when they share video and label and their temporal IoU exceeds the
threshold (strictly: tIoU = 0.3 does not match at 0.3). Two matching rules:

- `strict` (default): predictions in descending score (file order on ties, or all of them in file
  order without scores) each take the still-unmatched truth of their video and label with the highest
  tIoU (the earliest in file order on ties); one truth, one prediction. P = matched / predictions,
  R = matched / truths.
- `kit`: the organisers' SMG starter kit (`tester_SMG` in `online recognition/SMG/THDutils.py`): each
  truth, in file order, is matched by the first prediction in file order that qualifies; predictions are
  never used up (the kit's `numpy.delete` result is discarded), so one prediction can match several
  truths. `matched` counts the truths matched (the kit's `correct_count`), and both P = matched /
  predictions and R = matched / truths use it, as the kit does: a kit precision can exceed 1.

Counts are pooled over all sequences; F1 = 2PR / (P + R), 0 when P + R = 0 (also no predictions and no
truths: all 0). The kit adds 1e-7 to F1's denominator; here it is exact. mAP over tIoU 0.3:0.1:0.7 is a
second, detection-community view (`mean_average_precision`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MATCHING = ("strict", "kit")
MAP_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class Segment:
    """One gesture: its sequence, class label, first and last frame (integers), and a score where the
    predictor gives one (None: file order ranks it)."""

    video_id: str
    label: Hashable
    start: int
    end: int
    score: float | None = None


def tiou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Temporal IoU as the kit computes it: (min(ends) - max(starts)) / (max(ends) - min(starts)); 1 for
    two equal zero-length spans (denominator 0), 0 for disjoint spans (the raw value is negative there)."""
    union = max(a_end, b_end) - min(a_start, b_start)
    if union == 0:
        return 1.0 if (a_start, a_end) == (b_start, b_end) else 0.0
    return max(0.0, (min(a_end, b_end) - max(a_start, b_start)) / union)


def ranked(predictions: Sequence[Segment]) -> list[int]:
    """Indices of `predictions` by descending score; a stable sort, so ties and score-less files keep
    file order. Scores must be all present or all absent."""
    given = [p.score is not None for p in predictions]
    if any(given) and not all(given):
        raise ValueError(f"predictions: {given.count(False)} of {len(predictions)} have no score; "
                         "give every prediction a score or none")
    if not any(given):
        return list(range(len(predictions)))
    return sorted(range(len(predictions)), key=lambda i: -float(predictions[i].score))  # type: ignore[arg-type]


def match_strict(predictions: Sequence[Segment], truths: Sequence[Segment], iou: float = 0.3
                 ) -> list[tuple[int, int]]:
    """(prediction index, truth index) pairs of the one-to-one `strict` rule."""
    by_key: dict[tuple[str, Hashable], list[int]] = defaultdict(list)
    for j, t in enumerate(truths):
        by_key[(t.video_id, t.label)].append(j)
    taken: set[int] = set()
    pairs = []
    for i in ranked(predictions):
        p = predictions[i]
        best, best_iou = None, iou
        for j in by_key.get((p.video_id, p.label), ()):  # file order: the earliest wins a tie
            if j in taken:
                continue
            overlap = tiou(p.start, p.end, truths[j].start, truths[j].end)
            if overlap > best_iou:
                best, best_iou = j, overlap
        if best is not None:
            taken.add(best)
            pairs.append((i, best))
    return pairs


def match_kit(predictions: Sequence[Segment], truths: Sequence[Segment], iou: float = 0.3
              ) -> list[tuple[int, int]]:
    """(prediction index, truth index) pairs of the starter kit's rule: per truth in file order, the
    first qualifying prediction in file order; a prediction may appear in several pairs."""
    by_key: dict[tuple[str, Hashable], list[int]] = defaultdict(list)
    for i, p in enumerate(predictions):
        by_key[(p.video_id, p.label)].append(i)
    pairs = []
    for j, t in enumerate(truths):
        for i in by_key.get((t.video_id, t.label), ()):
            if tiou(predictions[i].start, predictions[i].end, t.start, t.end) > iou:
                pairs.append((i, j))
                break
    return pairs


def _prf(matched: int, predictions: int, truths: int) -> dict[str, Any]:
    precision = matched / predictions if predictions else 0.0
    recall = matched / truths if truths else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": matched,
            "predictions": predictions, "truths": truths}


def score_segments(predictions: Sequence[Segment], truths: Sequence[Segment], iou: float = 0.3,
                   matching: str = "strict") -> dict[str, Any]:
    """precision, recall, f1, matched, predictions, truths pooled over all sequences, plus `per_class`
    (label -> the same six, computed on that label's segments alone)."""
    if matching not in MATCHING:
        raise ValueError(f"matching {matching!r}: expected one of {', '.join(MATCHING)}")
    if not 0 <= iou < 1:
        raise ValueError(f"iou {iou!r}: expected a tIoU threshold >= 0 and < 1")
    match = match_strict if matching == "strict" else match_kit
    pairs = match(predictions, truths, iou)
    # matched truths: one per pair under strict, and the kit's correct_count under kit
    matched_labels = [truths[j].label for _, j in pairs]
    out = _prf(len(pairs), len(predictions), len(truths))
    labels = sorted({s.label for s in (*predictions, *truths)}, key=_label_order)
    out["per_class"] = {label: _prf(matched_labels.count(label), sum(p.label == label for p in predictions),
                                    sum(t.label == label for t in truths)) for label in labels}
    return out


def _label_order(label: Hashable) -> tuple[int, Any]:
    """Integers first, by value; then the rest by text."""
    return (0, label) if isinstance(label, int) else (1, str(label))


def average_precision(predictions: Sequence[Segment], truths: Sequence[Segment], iou: float) -> float:
    """Area under the interpolated precision-recall curve (ActivityNet's all-point rule) of one class:
    predictions by descending score each take the unmatched truth of their video with the highest tIoU
    above `iou` (the strict rule); 0 without truths."""
    if not truths:
        return 0.0
    pairs = dict(match_strict(predictions, truths, iou))
    order = ranked(predictions)
    hits = [1 if i in pairs else 0 for i in order]
    precision, recall, tp = [], [], 0
    for rank, hit in enumerate(hits, 1):
        tp += hit
        precision.append(tp / rank)
        recall.append(tp / len(truths))
    # interpolate: precision at recall r is the best precision at any recall >= r
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    area, last_recall = 0.0, 0.0
    for p, r in zip(precision, recall):
        area += (r - last_recall) * p
        last_recall = r
    return area


def mean_average_precision(predictions: Sequence[Segment], truths: Sequence[Segment],
                           thresholds: Iterable[float] = MAP_THRESHOLDS) -> dict[str, Any]:
    """mAP per tIoU threshold (mean AP over the classes that have truths) and their mean: {'mAP': m,
    'by_iou': {0.3: m03, ...}}; 0 without truths."""
    labels = sorted({t.label for t in truths}, key=_label_order)
    by_iou = {}
    for threshold in thresholds:
        aps = [average_precision([p for p in predictions if p.label == label],
                                 [t for t in truths if t.label == label], threshold) for label in labels]
        by_iou[round(float(threshold), 4)] = sum(aps) / len(aps) if aps else 0.0
    return {"mAP": sum(by_iou.values()) / len(by_iou) if by_iou else 0.0, "by_iou": by_iou}


def online_metrics(predictions: Sequence[Segment], truths: Sequence[Segment], iou: float = 0.3) -> dict[str, Any]:
    """What an online run reports: both rules (each with per_class) and mAP at tIoU 0.3:0.1:0.7, plus
    the flat scalars a task lists (`f1@0.3`, `precision@0.3`, `recall@0.3` under strict, `mAP`)."""
    strict, kit = score_segments(predictions, truths, iou, "strict"), score_segments(predictions, truths, iou, "kit")
    detection = mean_average_precision(predictions, truths)
    return {f"f1@{iou:g}": strict["f1"], f"precision@{iou:g}": strict["precision"],
            f"recall@{iou:g}": strict["recall"], "mAP": detection["mAP"], "mAP_by_iou": detection["by_iou"],
            "strict": strict, "kit": kit}


def metrics_table(result: dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """A `score_segments` result as aligned text: one row per class (named where `class_names` has
    the integer label), then `all`."""
    def name(label: Hashable) -> str:
        if class_names is not None and isinstance(label, int) and 0 <= label < len(class_names):
            return f"{label} {class_names[label]}"
        return str(label)

    rows = [*((name(label), r) for label, r in result["per_class"].items()), ("all", result)]
    width = max(24, *(len(n) for n, _ in rows))
    lines = [f"{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>6} {'matched':>7} {'pred':>6} {'truth':>6}"]
    lines += [f"{n:<{width}} {r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>6.4f} {r['matched']:>7} "
              f"{r['predictions']:>6} {r['truths']:>6}" for n, r in rows]
    return "\n".join(lines)
