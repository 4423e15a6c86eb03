"""What a person reads after training (issue 24 points 5-6): the end-of-run table with n and a
warning when a split is too small, per-epoch progress off a terminal, and figures whose numbers are
written beside them (confusion counts, the best epoch, the metric axis limits). Expected values are
worked by hand in the comments."""
from __future__ import annotations

import io
import json
import logging

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from migue.cache.labels import MG_CLASS_NAMES
from migue.fusion.progress import EpochProgress
from migue.fusion.reports import metric_limits, plot_confusion, plot_curves
from migue.fusion.summary import run_summary, small_split_warning, wilson_interval
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main


def test_wilson_interval_matches_hand_worked_values():
    # 3/3, z^2 = 3.8415: centre (1 + 0.6402) / 2.2805 = 0.7193, half 1.96 * sqrt(3.8415 / 36) / 2.2805 = 0.2808
    assert wilson_interval(3, 3) == pytest.approx((0.4385, 1.0), abs=1e-4)
    # 0/10: upper (z^2 / n) / (1 + z^2 / n) = 0.38415 / 1.38415
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    # 5/10: centre 0.5, half 1.96 * sqrt(0.025 + 0.0096) / 1.38415 = 0.2634
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_a_split_too_small_to_compare_heads_is_named():
    sentence = small_split_warning("test", {"n": 3, "accuracy": 1.0, "f1": 1.0}, "video")
    assert sentence == "test accuracy 1.00 on 3 videos: 95% interval 0.44-1.00, too few to compare heads"
    # top1 0.5 on 38 clips: half 1.96 * sqrt(0.25/38 + 3.8415/5776) / 1.1011 = 0.1515, width 0.303 > 0.3
    assert "on 38 clips: 95% interval 0.35-0.65" in small_split_warning("val", {"n": 38, "top1": 0.5}, "clip")
    # on 40 clips: half 1.96 * sqrt(0.25/40 + 3.8415/6400) / 1.0960 = 0.1480, width 0.296: enough
    assert small_split_warning("val", {"n": 40, "top1": 0.5}, "clip") is None
    assert small_split_warning("test", {"n": 0, "notes": ["no labelled items in this split"]}) is None


def test_the_run_summary_is_a_table_with_n_epochs_and_files(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "curves.png").write_bytes(b"")
    metrics = {"task": "emotion", "head": "interfusion", "monitor": "accuracy", "best_epoch": 4, "epochs_run": 9,
               "val": {"n": 3, "accuracy": 1.0, "f1": 1.0, "roc_auc": float("nan"), "loss": 0.1, "notes": []},
               "test": {"n": 3, "accuracy": 2 / 3, "f1": 0.5, "roc_auc": 1.0, "loss": 0.4, "notes": []},
               "chance": {"uniform": 0.5, "majority_class": 1, "majority": 2 / 3}}
    text = run_summary(tmp_path, metrics, "video", epochs=20)
    lines = text.splitlines()
    assert "epochs    9 of 20 (early stop), best epoch 4 by val accuracy (head.pt holds it)" in lines
    header = next(line for line in lines if line.startswith("split"))
    assert header.split() == ["split", "n", "accuracy*", "f1", "roc_auc", "loss"]
    assert next(line for line in lines if line.startswith("test")).split() == ["test", "3", "0.667", "0.500",
                                                                                "1.000", "0.400"]
    assert next(line for line in lines if line.startswith("val")).split()[4] == "-", "NaN shows as -"
    # 2/3: centre (0.6667 + 0.6402) / 2.2805 = 0.5731, half 1.96 * sqrt(0.0741 + 0.1067) / 2.2805 = 0.3655
    assert "warning: test accuracy 0.67 on 3 videos: 95% interval 0.21-0.94, too few to compare heads" in lines
    assert "  metrics:   metrics.json" in lines and "  plots:     curves.png" in lines
    assert "per_class" not in text, "files the run folder lacks are not listed"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _rows(values):
    return [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0, "val_top1": v} for e, v in enumerate(values, 1)]


def test_progress_off_a_terminal_is_a_log_line_every_few_epochs(caplog):
    values = [0.1, 0.3, 0.2, 0.25] + [0.2] * 16  # best 0.3 at epoch 2
    rows = _rows(values)
    progress = EpochProgress("cmtf", 1, 20, "top1", stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="migue.fusion.train"):
        for k in range(1, 21):
            progress.update(rows[:k], 2 if k >= 2 else 1)
    lines = [r.getMessage() for r in caplog.records]
    # 20 epochs, about 10 lines: every 2nd epoch, and the first
    assert [int(line.split()[2].split("/")[0]) for line in lines] == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert lines[2].startswith("cmtf epoch 4/20  train loss 0.250  val top1 0.250 (best 0.300 at epoch 2)")
    assert "ETA" in lines[2] and "ETA" not in lines[-1]


def test_progress_on_a_terminal_is_a_bar_and_no_log(caplog):
    stream = _Terminal()
    progress = EpochProgress("cmtf", 1, 3, "top1", stream=stream)
    rows = _rows([0.1, 0.4, 0.2])
    with caplog.at_level(logging.INFO, logger="migue.fusion.train"):
        progress.update(rows[:1], 1)
        progress.update(rows[:2], 2, stopped=True)  # early stop: the bar closes
    assert not caplog.records
    assert "loss 0.500  val top1 0.400 (best 0.400 @2)" in stream.getvalue() and progress.bar is None


def test_an_early_stop_off_a_terminal_is_logged(caplog):
    rows = _rows([0.1, 0.4, 0.2])
    progress = EpochProgress("cmtf", 1, 50, "top1", stream=io.StringIO())  # every 5th epoch
    with caplog.at_level(logging.INFO, logger="migue.fusion.train"):
        for k in range(1, 4):
            progress.update(rows[:k], 2 if k >= 2 else 1, stopped=k == 3)
    assert [r.getMessage().split()[2] for r in caplog.records] == ["1/50", "3/50"]


def test_confusion_csv_holds_the_counts_of_a_hand_made_prediction_set(tmp_path):
    from migue.fusion.metrics import confusion

    labels = np.array([0, 0, 1, 2, 31, 31])
    predicted = np.array([0, 1, 1, 31, 31, 31])
    logits = np.eye(32)[predicted]
    plot_confusion(confusion("mg", labels, logits, 32), tmp_path / "confusion.png", "run: cmtf mg, test",
                   list(MG_CLASS_NAMES))
    table = pd.read_csv(tmp_path / "confusion.csv", index_col=0)
    assert list(table.index) == list(MG_CLASS_NAMES) and list(table.columns) == [*MG_CLASS_NAMES, "total"]
    assert table.loc["turtle neck", "turtle neck"] == 1 and table.loc["turtle neck", "deep breath"] == 1
    assert table.loc["deep breath", "deep breath"] == 1
    assert table.loc["touch hat", "illustrative"] == 1 and table.loc["illustrative", "illustrative"] == 2
    assert table.drop(columns="total").to_numpy().sum() == 6 and table["total"].tolist()[:3] == [2, 1, 1]
    width, height = Image.open(tmp_path / "confusion.png").size
    assert width >= 1200 and height >= 1200, "32 classes need room for legible names and counts"


def test_curves_record_the_best_epoch_and_fixed_limits_for_shares(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "train_loss": [3.0, 2.0, 1.5, 1.2, 1.0],
                            "val_loss": [2.0, 1.5, 1.2, 1.0, 0.9], "val_top1": [0.2, 0.5, 0.5, 0.4, np.nan]})
    plot_curves(history, tmp_path / "curves.png", "top1", title="run-a: cmtf mg")
    saved = json.loads((tmp_path / "curves.json").read_text())
    # highest val top1 0.5 at epochs 2 and 3; the tie goes to the lower val loss (1.2, epoch 3); NaN is worst
    assert saved["best_epoch"] == 3 and saved["best"]["val_top1"] == 0.5 and saved["title"] == "run-a: cmtf mg"
    assert saved["metric_ylim"] == [0.0, 1.05]
    assert Image.open(tmp_path / "curves.png").size == (1200, 450)
    plot_curves(history, tmp_path / "curves.png", "top1", best_epoch=2)  # the run's own choice is recorded
    assert json.loads((tmp_path / "curves.json").read_text())["best_epoch"] == 2


def test_a_constant_accuracy_is_drawn_on_the_whole_share_range():
    assert metric_limits(np.array([1.0, 1.0, 1.0])) == (0.0, 1.05), "not 0.96-1.04 around the flat line"
    assert metric_limits(np.array([0.0, 0.0])) == (0.0, 1.05)
    # beyond [0, 1]: the range 2..4 padded by max(5% of 2, 0.05) = 0.1 each side
    assert metric_limits(np.array([2.0, 4.0, np.nan])) == pytest.approx((1.9, 4.1))


@pytest.mark.usefixtures("one_torch_thread")
def test_fuse_train_ends_with_the_table_and_writes_what_it_names(tmp_path):
    cache = tmp_path / "cache"
    write_mg(cache, per_class=(3, 1, 1), signal=0.6)
    run = tmp_path / "mg-probe"
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(cache), "--out", str(run),
                                       "--fusion", "probe-linear-rgb", "--epochs", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"epochs    4 of 4, best epoch {metrics['best_epoch']} by val top1" in result.output
    assert "per_class_accuracy" not in result.output and "[" not in result.output, "no JSON block"
    test_row = next(line for line in result.output.splitlines() if line.startswith("test"))
    assert test_row.split()[:3] == ["test", "32", f"{metrics['test']['top1']:.3f}"]
    history = pd.read_csv(run / "history.csv")
    # the epoch kept: highest val top1, ties to the lower val loss, then the earlier epoch
    best = history.sort_values(["val_top1", "val_loss", "epoch"], ascending=[False, True, True]).iloc[0]["epoch"]
    assert metrics["best_epoch"] == best == json.loads((run / "curves.json").read_text())["best_epoch"]
    confusion = pd.read_csv(run / "confusion.csv", index_col=0)
    per_class = pd.read_csv(run / "per_class.csv")
    assert confusion["total"].tolist() == per_class["support"].tolist() == [1] * 32
    assert per_class["class"].tolist() == list(MG_CLASS_NAMES)
    as_json = CliRunner().invoke(main, ["evaluate", str(run), "--json"], catch_exceptions=False)
    assert json.loads(as_json.output)["top1"] == pytest.approx(metrics["test"]["top1"])
    table = CliRunner().invoke(main, ["evaluate", str(run)], catch_exceptions=False)
    assert next(line for line in table.output.splitlines() if line.startswith("test")).split()[:2] == ["test", "32"]


def test_a_run_without_labelled_val_or_test_says_so(tmp_path):
    metrics = {"task": "emotion", "head": "interfusion", "monitor": "accuracy", "best_epoch": 5, "epochs_run": 5,
               "val": {"n": 0, "notes": ["no labelled items in this split"]},
               "test": {"n": 0, "notes": ["no labelled items in this split"]},
               "chance": {"uniform": 0.5, "majority_class": 1, "majority": float("nan")}}
    lines = run_summary(tmp_path, metrics, "video", epochs=5).splitlines()
    assert "epochs    5 of 5, best epoch 5 (no labelled val: the last) (head.pt holds it)" in lines
    assert "* monitored; chance: uniform 0.500" in lines, "no majority share without labelled test items"
    assert [line.split() for line in lines if line.startswith(("val", "test"))] == [["val", "0"], ["test", "0"]]
    assert "note: test: no labelled items in this split" in lines and not any("warning" in x for x in lines)
