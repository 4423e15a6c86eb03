"""The online (Track 2) metric against hand-worked cases: tIoU, the strict and kit matching rules,
P/R/F1 pooled over sequences, per class, and mAP. Every expected number is worked out by hand in the
comment beside it."""
from __future__ import annotations

import pytest

from migue.fusion.online.score import (Segment, match_kit, match_strict, mean_average_precision, score_segments,
                                       tiou)


def S(video: str, label, start: int, end: int, score: float | None = None) -> Segment:
    return Segment(video, label, start, end, score)


def prf(result: dict) -> tuple:
    return (result["precision"], result["recall"], result["f1"], result["matched"], result["predictions"],
            result["truths"])


# --- tIoU ---------------------------------------------------------------------------------------------

def test_tiou_by_hand():
    assert tiou(0, 10, 5, 15) == pytest.approx(5 / 15)      # (10 - 5) / (15 - 0)
    assert tiou(0, 10, 0, 10) == 1.0
    assert tiou(0, 4, 10, 20) == 0.0                         # disjoint: (4 - 10) / 20 < 0 -> 0
    assert tiou(0, 10, 10, 20) == 0.0                        # touching: (10 - 10) / 20


def test_tiou_of_zero_length_spans():
    assert tiou(5, 5, 5, 5) == 1.0                           # denominator 0, equal spans
    assert tiou(5, 5, 6, 6) == 0.0                           # denominator 1, numerator -1
    assert tiou(5, 5, 0, 10) == 0.0                          # a point inside a span: 0 / 10


# --- threshold: strictly greater ------------------------------------------------------------------------

def test_tiou_exactly_at_the_threshold_does_not_match():
    truth = [S("v1", 1, 0, 10)]
    # tIoU = (3 - 0) / (10 - 0) = 0.3: not > 0.3
    assert prf(score_segments([S("v1", 1, 0, 3)], truth, 0.3)) == (0.0, 0.0, 0.0, 0, 1, 1)
    assert prf(score_segments([S("v1", 1, 0, 3)], truth, 0.3, "kit")) == (0.0, 0.0, 0.0, 0, 1, 1)
    # tIoU 0.4 > 0.3; and 0.3 > 0.29
    assert prf(score_segments([S("v1", 1, 0, 4)], truth, 0.3)) == (1.0, 1.0, 1.0, 1, 1, 1)
    assert prf(score_segments([S("v1", 1, 0, 3)], truth, 0.29)) == (1.0, 1.0, 1.0, 1, 1, 1)


def test_zero_length_spans_match_only_an_equal_span():
    assert score_segments([S("v1", 1, 5, 5)], [S("v1", 1, 5, 5)])["matched"] == 1   # tIoU 1
    assert score_segments([S("v1", 1, 5, 5)], [S("v1", 1, 5, 6)])["matched"] == 0   # tIoU 0 / 1


# --- video and label must agree -------------------------------------------------------------------------

def test_segments_of_other_videos_never_match():
    # same label, same frames, another sequence: P = 0/1, R = 0/1
    assert prf(score_segments([S("v2", 1, 0, 100)], [S("v1", 1, 0, 100)])) == (0.0, 0.0, 0.0, 0, 1, 1)
    assert prf(score_segments([S("v2", 1, 0, 100)], [S("v1", 1, 0, 100)], matching="kit")) == \
        (0.0, 0.0, 0.0, 0, 1, 1)


def test_label_mismatch_never_matches():
    assert prf(score_segments([S("v1", 2, 0, 100)], [S("v1", 1, 0, 100)])) == (0.0, 0.0, 0.0, 0, 1, 1)
    assert prf(score_segments([S("v1", 2, 0, 100)], [S("v1", 1, 0, 100)], matching="kit")) == \
        (0.0, 0.0, 0.0, 0, 1, 1)


# --- empty files ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("matching", ["strict", "kit"])
def test_empty_predictions_or_truths_give_zeros(matching):
    truths = [S("v1", 1, 0, 10), S("v1", 2, 20, 30)]
    assert prf(score_segments([], truths, matching=matching)) == (0.0, 0.0, 0.0, 0, 0, 2)
    assert prf(score_segments(truths, [], matching=matching)) == (0.0, 0.0, 0.0, 0, 2, 0)
    both = score_segments([], [], matching=matching)
    assert prf(both) == (0.0, 0.0, 0.0, 0, 0, 0)
    assert both["per_class"] == {}


# --- duplicates -----------------------------------------------------------------------------------------

def test_two_identical_predictions_for_one_truth():
    truth = [S("v1", 1, 0, 100)]
    preds = [S("v1", 1, 0, 100), S("v1", 1, 0, 100)]
    # strict: the first takes the truth, the second finds it used: 1 match; P = 1/2, R = 1/1,
    # F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    strict = score_segments(preds, truth)
    assert prf(strict) == pytest.approx((0.5, 1.0, 2 / 3, 1, 2, 1))
    # kit: the truth is matched once (by the first prediction); correct = 1: the same numbers
    assert prf(score_segments(preds, truth, matching="kit")) == pytest.approx((0.5, 1.0, 2 / 3, 1, 2, 1))
    assert match_strict(preds, truth) == [(0, 0)]
    assert match_kit(preds, truth) == [(0, 0)]


def test_one_prediction_over_two_truths_the_rules_differ():
    # nested truths L = [0, 100], S = [10, 90]; one prediction [0, 100]: tIoU 1 with L, 80/100 with S
    truths = [S("v1", 1, 0, 100), S("v1", 1, 10, 90)]
    preds = [S("v1", 1, 0, 100)]
    # strict: the prediction takes L only. P = 1/1, R = 1/2, F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert prf(score_segments(preds, truths)) == pytest.approx((1.0, 0.5, 2 / 3, 1, 1, 2))
    # kit: it is not used up, so it matches L and then S: correct = 2; P = 2/1 = 2 (the kit's
    # precision can exceed 1), R = 2/2 = 1, F1 = 2 * 2 * 1 / 3 = 4/3
    assert prf(score_segments(preds, truths, matching="kit")) == pytest.approx((2.0, 1.0, 4 / 3, 2, 1, 2))
    assert match_kit(preds, truths) == [(0, 0), (0, 1)]


def test_nested_truths_strict_takes_the_highest_tiou():
    # L = [0, 100], S = [0, 40]; prediction [0, 60]: tIoU 60/100 = 0.6 with L, 40/60 = 0.667 with S
    truths = [S("v1", 1, 0, 100), S("v1", 1, 0, 40)]
    assert match_strict([S("v1", 1, 0, 60)], truths) == [(0, 1)]
    # kit: L first in file order takes the first prediction that qualifies (0.6 > 0.3), then S (0.667)
    assert match_kit([S("v1", 1, 0, 60)], truths) == [(0, 0), (0, 1)]


def test_nested_truths_each_found():
    # L = [0, 100], S = [40, 60]; p1 = [40, 60] (score 0.9), p2 = [0, 100] (score 0.8)
    # strict: p1 has tIoU 20/100 with L and 1 with S -> S; p2 -> L. Kit: L <- p2 (p1 is 0.2), S <- p1
    truths = [S("v1", 1, 0, 100), S("v1", 1, 40, 60)]
    preds = [S("v1", 1, 40, 60, 0.9), S("v1", 1, 0, 100, 0.8)]
    assert match_strict(preds, truths) == [(0, 1), (1, 0)]
    assert match_kit(preds, truths) == [(1, 0), (0, 1)]
    for matching in ("strict", "kit"):
        assert prf(score_segments(preds, truths, matching=matching)) == (1.0, 1.0, 1.0, 2, 2, 2)


def test_equal_tiou_goes_to_the_earliest_truth():
    truths = [S("v1", 1, 0, 10), S("v1", 1, 0, 10)]
    assert match_strict([S("v1", 1, 0, 10)], truths) == [(0, 0)]


# --- score order versus file order ---------------------------------------------------------------------

# T1 = [0, 100], T2 = [60, 160]. p1 = [40, 100]: tIoU 60/100 = 0.6 with T1, 40/120 = 0.333 with T2;
# p2 = [0, 100]: tIoU 1 with T1, 40/160 = 0.25 with T2 (no match).
ORDER_TRUTHS = [S("v1", 1, 0, 100), S("v1", 1, 60, 160)]


def test_scores_decide_the_order_of_strict_matching():
    preds = [S("v1", 1, 40, 100, 0.1), S("v1", 1, 0, 100, 0.9)]
    # by score: p2 takes T1, then p1 takes T2 (0.333 > 0.3): 2 matches; P = R = F1 = 1
    assert match_strict(preds, ORDER_TRUTHS) == [(1, 0), (0, 1)]
    assert prf(score_segments(preds, ORDER_TRUTHS)) == (1.0, 1.0, 1.0, 2, 2, 2)


@pytest.mark.parametrize("scores", [(None, None), (0.5, 0.5)], ids=["no scores", "tied scores"])
def test_without_scores_or_on_ties_strict_uses_file_order(scores):
    preds = [S("v1", 1, 40, 100, scores[0]), S("v1", 1, 0, 100, scores[1])]
    # file order: p1 takes T1 (0.6 beats 0.333); p2 finds T1 used and T2 at 0.25: 1 match;
    # P = 1/2, R = 1/2, F1 = 0.5
    assert match_strict(preds, ORDER_TRUTHS) == [(0, 0)]
    assert prf(score_segments(preds, ORDER_TRUTHS)) == (0.5, 0.5, 0.5, 1, 2, 2)


def test_kit_ignores_scores():
    preds = [S("v1", 1, 40, 100, 0.1), S("v1", 1, 0, 100, 0.9)]
    # T1 <- p1 (first in file order, 0.6), T2 <- p1 (0.333): correct = 2; P = 2/2, R = 2/2
    assert match_kit(preds, ORDER_TRUTHS) == [(0, 0), (0, 1)]
    assert prf(score_segments(preds, ORDER_TRUTHS, matching="kit")) == (1.0, 1.0, 1.0, 2, 2, 2)


def test_some_scores_missing_is_an_error():
    with pytest.raises(ValueError, match="1 of 2 have no score"):
        score_segments([S("v1", 1, 0, 10, 0.5), S("v1", 1, 0, 10)], [])


# --- pooling and per class ----------------------------------------------------------------------------

def test_counts_are_pooled_over_sequences():
    # v1: 1 truth, found. v2: 3 truths, 1 wrong prediction. Pooled: matched 1, predictions 2, truths 4:
    # P = 1/2, R = 1/4, F1 = 2 * 0.5 * 0.25 / 0.75 = 1/3 (the mean of per-sequence F1s would be 0.5)
    truths = [S("v1", 1, 0, 50), S("v2", 1, 0, 50), S("v2", 2, 100, 150), S("v2", 3, 200, 250)]
    preds = [S("v1", 1, 0, 50), S("v2", 3, 0, 50)]
    assert prf(score_segments(preds, truths)) == pytest.approx((0.5, 0.25, 1 / 3, 1, 2, 4))


def test_per_class():
    truths = [S("v1", 1, 0, 10), S("v1", 2, 20, 30)]
    preds = [S("v1", 1, 0, 10), S("v1", 2, 50, 60)]
    result = score_segments(preds, truths)
    assert prf(result) == (0.5, 0.5, 0.5, 1, 2, 2)
    assert prf(result["per_class"][1]) == (1.0, 1.0, 1.0, 1, 1, 1)
    assert prf(result["per_class"][2]) == (0.0, 0.0, 0.0, 0, 1, 1)
    assert list(result["per_class"]) == [1, 2]


def test_bad_rule_or_threshold_is_refused():
    with pytest.raises(ValueError, match="matching 'loose'"):
        score_segments([], [], matching="loose")
    with pytest.raises(ValueError, match="iou 1.5"):
        score_segments([], [], iou=1.5)


# --- mAP --------------------------------------------------------------------------------------------------

def test_map_by_hand():
    # one class, truths [0, 10] and [20, 30]; by score: a hit (0.9), a miss (0.8), a hit (0.7).
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; interpolated 1, 2/3, 2/3;
    # AP = 0.5 * 1 + 0 * 2/3 + 0.5 * 2/3 = 5/6 at every threshold (tIoU 1 or 0)
    truths = [S("v1", 1, 0, 10), S("v1", 1, 20, 30)]
    preds = [S("v1", 1, 0, 10, 0.9), S("v1", 1, 40, 50, 0.8), S("v1", 1, 20, 30, 0.7)]
    result = mean_average_precision(preds, truths)
    assert result["mAP"] == pytest.approx(5 / 6)
    assert list(result["by_iou"]) == [0.3, 0.4, 0.5, 0.6, 0.7]
    # a second class with a truth and no prediction has AP 0: mAP = (5/6 + 0) / 2
    assert mean_average_precision(preds, truths + [S("v1", 2, 0, 5)])["mAP"] == pytest.approx(5 / 12)


def test_map_over_thresholds():
    # tIoU of [0, 6] with [0, 10] is 0.6: a hit at 0.3, 0.4, 0.5 (AP 1), not at 0.6, 0.7 (AP 0): mean 3/5
    result = mean_average_precision([S("v1", 1, 0, 6, 0.5)], [S("v1", 1, 0, 10)])
    assert result["by_iou"] == {0.3: 1.0, 0.4: 1.0, 0.5: 1.0, 0.6: 0.0, 0.7: 0.0}
    assert result["mAP"] == pytest.approx(0.6)
    assert mean_average_precision([S("v1", 1, 0, 6, 0.5)], [])["mAP"] == 0.0


# --- what an online run reports ---------------------------------------------------------------------------

def test_online_metrics_carry_both_rules_and_map():
    from migue.fusion.online.score import metrics_table, online_metrics

    # the nested case above: strict P 1, R 1/2, F1 2/3; kit P 2, R 1, F1 4/3; mAP: one class, the
    # prediction hits (tIoU 1) at every threshold, recall 1/2 at precision 1: AP 0.5
    truths = [S("v1", 1, 0, 100), S("v1", 1, 10, 90)]
    result = online_metrics([S("v1", 1, 0, 100, 0.9)], truths)
    assert result["f1@0.3"] == pytest.approx(2 / 3)
    assert (result["precision@0.3"], result["recall@0.3"]) == (1.0, 0.5)
    assert result["kit"]["f1"] == pytest.approx(4 / 3)
    assert result["mAP"] == pytest.approx(0.5)
    table = metrics_table(result["strict"], class_names=["sit", "scratch"]).splitlines()
    assert table[1].split() == ["1", "scratch", "1.0000", "0.5000", "0.6667", "1", "1", "2"]
    assert table[-1].split()[0] == "all"
