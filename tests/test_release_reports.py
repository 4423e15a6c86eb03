"""Reports a researcher reads: the demo's chance columns come from the run's chance levels,
confusion matrices are labelled with class names, each run folder has a per-class CSV."""
from __future__ import annotations

import numpy as np
import pytest

from migue.fusion.metrics import chance_levels
from migue.pipeline.orchestration.demo import _headline


def test_demo_chance_columns_follow_the_chance_levels():
    train = np.array([3] * 30 + [1] * 10)
    test = np.array([3] * 12 + [0] * 4)  # always guessing 3 is right on 12 of 16
    mg = {"test": {"top1": 0.9, "top5": 1.0, "macro_f1": 0.8}, "chance": chance_levels("mg", train, test, 32)}
    assert _headline("mg", mg)["chance top-1"] == pytest.approx(0.75)
    emo = {"test": {"accuracy": 0.9, "f1": 0.9, "roc_auc": 0.9},
           "chance": chance_levels("emotion", np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0, 1]), 2)}
    assert _headline("emotion", emo)["chance accuracy"] == pytest.approx(0.5), "uniform beats majority here"
