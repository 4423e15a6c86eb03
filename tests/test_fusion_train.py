"""Fusion training: every head learns a planted signal; runs are deterministic, reported, re-evaluable."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from migue.cache import EntryReader
from migue.fusion import config_for, evaluate_run, list_heads, predict_run, train_run
from migue.fusion.reports import jsonable
from migue.fusion.synthetic import write_emotion, write_mg

TINY = {"width": 32, "depth": 1, "num_heads": 2, "epochs": 10, "lr": 3e-3, "warmup_epochs": 0.5}
TASK = {"mg": {}, "emotion": {"batch_size": 8}}
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return {"mg": write_mg(root, signal=0.3), "emotion": write_emotion(root, signal=0.4)}


@pytest.fixture(scope="module")
def runs(stores, tmp_path_factory):
    """One trained run per task (cmtf, interfusion): folder and returned metrics."""
    out = {}
    for task, head in (("mg", "cmtf"), ("emotion", "interfusion")):
        folder = tmp_path_factory.mktemp(f"run-{task}")
        out[task] = folder, train_run(task, stores[task], folder, config_for(task, head, {**TINY, **TASK[task]}))
    return out


def beats_chance(task, metrics):
    if task == "mg":
        return metrics["test"]["top1"] >= 4 * metrics["chance"]["uniform"]
    return metrics["test"]["accuracy"] > 0.75


HEADS = [(task, name) for task in ("mg", "emotion") for name in list_heads(task)]


@pytest.mark.parametrize(("task", "name"), HEADS)
def test_every_head_beats_chance(task, name, stores, tmp_path):
    metrics = train_run(task, stores[task], tmp_path, config_for(task, name, {**TINY, **TASK[task]}))
    assert beats_chance(task, metrics), metrics["test"]


@pytest.mark.parametrize("overrides", [
    {"cmtf_mode": "cross", "modality_dropout": 0.3},
    {"class_balance": "sampler"},
    {"class_balance": "weighted-loss", "label_smoothing": 0.0},
])
def test_cmtf_options_learn(overrides, stores, tmp_path):
    metrics = train_run("mg", stores["mg"], tmp_path, {**TINY, **overrides})
    assert beats_chance("mg", metrics), metrics["test"]


def test_emotion_options_learn(stores, tmp_path):
    config = {**TINY, **TASK["emotion"], "context_pool": "cls", "class_balance": "weighted-loss",
              "max_windows": 4}
    assert beats_chance("emotion", train_run("emotion", stores["emotion"], tmp_path, config))


def test_same_seed_same_metrics(runs, stores, tmp_path):
    folder, _ = runs["mg"]
    train_run("mg", stores["mg"], tmp_path / "again", {**TINY, "head": "cmtf"})
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (folder / "metrics.json").read_bytes()
    train_run("mg", stores["mg"], tmp_path / "other", {**TINY, "head": "cmtf", "seed": 1})
    assert (tmp_path / "other" / "metrics.json").read_bytes() != (folder / "metrics.json").read_bytes()


def test_streaming_training_matches_in_memory(runs, stores, tmp_path):
    folder, metrics = runs["emotion"]
    streamed = train_run("emotion", stores["emotion"], tmp_path,
                         {**TINY, **TASK["emotion"], "head": "interfusion", "in_memory": False})
    assert json.loads((tmp_path / "config.json").read_text())["data"]["in_memory"] is False
    assert jsonable(streamed) == jsonable(metrics)


@pytest.mark.parametrize("task", ["mg", "emotion"])
def test_run_folder_reports(task, runs, stores):
    folder, returned = runs[task]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics == jsonable(returned)
    assert {"task", "head", "best_epoch", "epochs_run", "test", "val", "chance"} <= metrics.keys()
    wanted = {"top1", "top5", "macro_f1", "per_class_accuracy"} if task == "mg" else {"accuracy", "f1", "roc_auc"}
    assert wanted <= metrics["test"].keys() and wanted <= metrics["val"].keys()
    if task == "mg":
        assert len(metrics["test"]["per_class_accuracy"]) == 32
    history = pd.read_csv(folder / "history.csv")
    assert len(history) == metrics["epochs_run"] and list(history["epoch"]) == list(range(1, len(history) + 1))
    assert {"train_loss", "val_loss"} <= set(history.columns)
    for png in ("confusion.png", "curves.png"):
        assert (folder / png).read_bytes()[:8] == PNG
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == task and config["config"]["width"] == 32
    for role, entry in config["entries"].items():
        assert EntryReader(entry["path"]).index["key"] == entry["key"] == stores[task][role].index["key"]
    checkpoint = torch.load(folder / "head.pt", weights_only=True)
    assert checkpoint["head"] == metrics["head"] and checkpoint["state_dict"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses == pytest.approx(list(history["train_loss"]), rel=1e-6)


@pytest.mark.parametrize("task", ["mg", "emotion"])
def test_evaluate_run_reproduces_metrics(task, runs, stores):
    folder, _ = runs[task]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert jsonable(evaluate_run(folder)) == metrics["test"]
    assert jsonable(evaluate_run(folder, "val", entries=stores[task])) == metrics["val"]


@pytest.mark.parametrize("task", ["mg", "emotion"])
def test_predict_run(task, runs, stores):
    folder, metrics = runs[task]
    predicted = predict_run(folder, "test")
    units = stores[task][next(iter(stores[task]))].units
    test = units[units["split"] == "test"]
    if task == "mg":
        assert list(predicted.columns[:5]) == ["unit_id", "video_id", "label", "video_name", "label_row"]
        assert list(predicted.columns[5:]) == [f"p_{k:02d}" for k in range(32)] and len(predicted) == len(test)
        assert (predicted[predicted.columns[5:]].to_numpy().argmax(axis=1) == predicted["label"]).all()
        truth = test.set_index("unit_id").loc[predicted["unit_id"], "mg_label"].to_numpy()
        assert np.mean(predicted["label"].to_numpy() == truth) == pytest.approx(metrics["test"]["top1"])
    else:
        assert list(predicted.columns) == ["video_id", "label", "video_name", "p_win"]
        assert len(predicted) == test["video_id"].nunique()
        assert ((predicted["p_win"] >= 0.5) == (predicted["label"] == 1)).all()
        truth = test.groupby("video_id")["emotion"].first().loc[predicted["video_id"]].to_numpy()
        assert np.mean(predicted["label"].to_numpy() == truth) == pytest.approx(metrics["test"]["accuracy"])


def test_early_stopping_and_best_checkpoint(stores, tmp_path):
    metrics = train_run("mg", stores["mg"], tmp_path, {**config_for("mg", "probe-linear-rgb", TINY), "lr": 0.0,
                                                        "patience": 2, "epochs": 30})
    assert metrics["best_epoch"] == 1 and metrics["epochs_run"] == 3  # frozen weights: never better
    assert len(pd.read_csv(tmp_path / "history.csv")) == metrics["epochs_run"]


def test_head_must_fit_task(stores, tmp_path):
    with pytest.raises(ValueError, match="does not fit task 'mg'"):
        train_run("mg", stores["mg"], tmp_path, {"head": "interfusion"})
