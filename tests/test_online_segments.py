"""Steps <-> segments: training targets, the detector's decoding (threshold, class-wise NMS, minimum
length) and the probe's merge of consecutive windows; expected values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from migue.fusion.online.score import Segment
from migue.fusion.online.segments import DecodeSettings, StepGrid, decode_steps, encode_targets, merge_steps, nms

# one-frame windows every 10 frames: step t's centre is frame 10 t
GRID = StepGrid(stride=10, window=1)


def test_grid_centres():
    assert StepGrid(stride=8, window=32).centres(3).tolist() == [15.5, 23.5, 31.5]  # 8 t + 31 / 2
    assert StepGrid(stride=8, window=32, first_frame=1).centres(1).tolist() == [16.5]


def test_grid_from_a_sequence_s_windows():
    # 32-frame windows every 8 from frame 1; the last one cut to 20 frames by the sequence's end
    grid = StepGrid.from_windows([1, 9, 17, 25], [32, 40, 48, 44], last_frame=44, video_id="s01")
    assert grid == StepGrid(stride=8, window=32, first_frame=1, last_frame=44)
    with pytest.raises(ValueError, match="sequence 's01': windows are not evenly spaced"):
        StepGrid.from_windows([1, 9, 18], [32, 40, 49], video_id="s01")
    with pytest.raises(ValueError, match="windows of different lengths \\[16, 32\\]"):
        StepGrid.from_windows([1, 9, 17], [32, 24, 48])


def test_nms_suppresses_an_overlapping_weaker_segment_of_the_same_class_only():
    strong = Segment("v", 0, 0, 100, 0.9)
    weaker = Segment("v", 0, 10, 100, 0.8)        # tIoU 90/100 with `strong`: suppressed at 0.5
    other_class = Segment("v", 1, 10, 100, 0.7)   # same span, another class: kept
    other_video = Segment("w", 0, 10, 100, 0.6)   # same span and class, another sequence: kept
    apart = Segment("v", 0, 200, 260, 0.5)        # same class, no overlap: kept
    assert nms([weaker, other_class, strong, other_video, apart], 0.5) == [strong, other_class, other_video, apart]
    # with a threshold above their tIoU (0.9) both stay
    assert nms([weaker, strong], 0.95) == [strong, weaker]


def decoded(settings: DecodeSettings) -> list[Segment]:
    # 5 steps, 2 classes. Step 1: class 0 at 0.9, offsets (1, 1) step -> [10 - 10, 10 + 10] = [0, 20]
    # (20 frames). Step 3: class 1 at 0.8, offsets (0.5, 0.5) -> [25, 35] (10 frames). The rest: background.
    probs = np.array([[1.0, 0, 0], [0.1, 0.9, 0], [1.0, 0, 0], [0.2, 0, 0.8], [1.0, 0, 0]])
    offsets = np.array([[0, 0], [1, 1], [0, 0], [0.5, 0.5], [0, 0]])
    return decode_steps(probs, offsets, GRID, settings, "v")


def test_decode_drops_segments_shorter_than_min_length():
    assert decoded(DecodeSettings(score_threshold=0.5, min_length=16)) == [Segment("v", 0, 0, 20, 0.9)]
    assert decoded(DecodeSettings(score_threshold=0.5, min_length=10)) == [Segment("v", 0, 0, 20, 0.9),
                                                                         Segment("v", 1, 25, 35, 0.8)]


def test_decode_score_threshold_and_class_names():
    assert decoded(DecodeSettings(score_threshold=0.85, min_length=0)) == [Segment("v", 0, 0, 20, 0.9)]
    probs, offsets = np.array([[0.1, 0.9]]), np.array([[1.0, 2.0]])
    assert decode_steps(probs, offsets, GRID, DecodeSettings(min_length=0), "v", classes=["sit"]) == \
        [Segment("v", "sit", 0, 20, 0.9)]  # centre 0: [0 - 10, 0 + 20] clipped at frame 0


def test_decode_nms_keeps_the_best_of_neighbouring_steps():
    # steps 1 and 2 both see class 0 at [0, 30]: (centre 10, offsets 1, 2) and (centre 20, offsets 2, 1);
    # tIoU 1, so the weaker goes
    probs = np.array([[1.0, 0.0], [0.3, 0.7], [0.4, 0.6]])
    offsets = np.array([[0, 0], [1, 2], [2, 1]])
    assert decode_steps(probs, offsets, GRID, DecodeSettings(min_length=0), "v") == [Segment("v", 0, 0, 30, 0.7)]


def test_decode_clips_to_the_sequence_and_caps_the_count():
    grid = StepGrid(stride=10, window=1, last_frame=25)
    probs = np.array([[0.0, 0.9, 0.0], [0.0, 0.0, 0.8]])
    offsets = np.array([[0.0, 9.0], [0.0, 9.0]])  # ends 90 and 100, clipped to 25
    found = decode_steps(probs, offsets, grid, DecodeSettings(min_length=0), "v")
    assert found == [Segment("v", 0, 0, 25, 0.9), Segment("v", 1, 10, 25, 0.8)]
    assert decode_steps(probs, offsets, grid, DecodeSettings(min_length=0, max_segments=1), "v") == found[:1]


def test_merge_joins_consecutive_windows_of_one_class():
    # arg-max per step: bg, c0, c0, bg, c1. The c0 run: [10 - 5, 20 + 5] = [5, 25], score (0.8 + 0.6) / 2;
    # the c1 step: [35, 45], 10 frames, dropped at min_length 16
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.2, 0.1, 0.7]])
    assert merge_steps(probs, GRID, DecodeSettings(min_length=16), "v") == [Segment("v", 0, 5, 25, pytest.approx(0.7))]
    assert merge_steps(probs, GRID, DecodeSettings(min_length=0), "v") == [
        Segment("v", 0, 5, 25, pytest.approx(0.7)), Segment("v", 1, 35, 45, pytest.approx(0.7))]
    assert merge_steps(probs, GRID, DecodeSettings(min_length=0, score_threshold=0.75), "v") == []


def test_targets_of_a_gesture():
    # centres 0, 10, 20, 30; gesture class 2 over frames 5..25 holds the centres 10 and 20
    labels, offsets = encode_targets([(2, 5, 25)], 4, GRID)
    assert labels.tolist() == [0, 3, 3, 0]
    assert offsets.tolist() == [[0, 0], [0.5, 1.5], [1.5, 0.5], [0, 0]]  # (10-5)/10, (25-10)/10; ...


def test_targets_of_nested_and_tiny_gestures():
    # class 0 over 0..35 holds centres 0..30; class 1 over 8..12 is shorter and takes centre 10
    labels, _ = encode_targets([(0, 0, 35), (1, 8, 12)], 4, GRID)
    assert labels.tolist() == [1, 2, 1, 1]
    # a gesture holding no centre (12..14) takes the nearest free step (centre 10)
    labels, offsets = encode_targets([(1, 12, 14)], 3, GRID)
    assert labels.tolist() == [0, 2, 0]
    assert offsets[1].tolist() == pytest.approx([0.0, 0.4])  # start after the centre: 0; (14 - 10) / 10


def test_settings_from_a_run_config():
    settings = DecodeSettings.from_config({"score_threshold": 0.4, "min_length": 8, "lr": 0.001})
    assert settings == DecodeSettings(score_threshold=0.4, nms_iou=0.5, min_length=8, max_segments=200)
    with pytest.raises(ValueError, match="setting min_length=-1"):
        DecodeSettings.from_config({"min_length": -1})
    with pytest.raises(ValueError, match="setting nms_iou=1.5"):
        DecodeSettings(nms_iou=1.5)
