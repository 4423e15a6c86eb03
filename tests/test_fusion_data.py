"""Fusion data: aligning entries, grouping windows into videos, memory modes; metrics edge cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from migue.fusion import Input, UnitMismatchError, build_data
from migue.fusion.metrics import task_metrics
from migue.fusion.synthetic import write_emotion, write_mg

MG_INPUTS = {"rgb": Input("rgb", "tokens", "time"), "joint": Input("pose", "joint", "none")}
EMOTION_INPUTS = {"face": Input("face", "embedding"), "context": Input("context", "tokens", "time")}


@pytest.fixture(scope="module")
def mg(tmp_path_factory):
    return write_mg(tmp_path_factory.mktemp("mg"), per_class=(2, 1, 1))


@pytest.fixture(scope="module")
def emotion(tmp_path_factory):
    return write_emotion(tmp_path_factory.mktemp("emotion"), videos=(6, 3, 3))


def test_misaligned_entries_are_a_clear_error(tmp_path):
    entries = write_mg(tmp_path, per_class=(1, 1, 1), drop_pose_units=3)
    rgb, pose = entries["rgb"], entries["pose"]
    missing = rgb.units["unit_id"].iloc[0]
    with pytest.raises(UnitMismatchError) as err:
        build_data("mg", entries, MG_INPUTS)
    message = str(err.value)
    assert rgb.name in message and pose.name in message and missing in message
    assert "3 only in" in message and "synthetic-mg-partial" in message
    data = build_data("mg", entries, MG_INPUTS, align="inner")
    assert sum(len(s) for s in data.splits.values()) == len(rgb.units) - 3


def test_mg_items_align_by_unit_id_and_carry_labels(mg):
    data = build_data("mg", mg, MG_INPUTS)
    assert data.shapes == {"rgb": (2, 16), "joint": (10, 16)}
    train = data.splits["train"]
    table = mg["rgb"].units.set_index("unit_id")
    assert list(train.labels) == list(table.loc[train.ids, "mg_label"])
    pose_ids = mg["pose"].units["unit_id"].to_numpy()[train.rows["joint"]]
    assert list(pose_ids) == train.ids
    batch = train.batch([3, 0])
    assert batch["rgb"].dtype == torch.float32 and batch["rgb"].shape == (2, 2, 16)
    raw = mg["rgb"].read("tokens", [train.rows["rgb"][3]]).astype(np.float32)
    assert np.allclose(batch["rgb"][0].numpy(), raw.reshape(2, 4, 16).mean(1), atol=1e-2)


def test_emotion_groups_windows_by_video_in_time_order(emotion):
    data = build_data("emotion", emotion, EMOTION_INPUTS, splits=("train",))
    train, units = data.splits["train"], emotion["face"].units
    windows = units[(units["split"] == "train")].groupby("video_id").size()
    assert train.ids == sorted(windows.index)
    assert list(np.diff(train.offsets)) == list(windows.loc[train.ids])
    starts = units["start"].to_numpy()[train.rows["face"]]
    for i in range(len(train)):
        assert np.all(np.diff(starts[train.offsets[i]:train.offsets[i + 1]]) > 0)
    batch = train.batch(range(len(train)))
    assert batch["face"].shape[:2] == batch["mask"].shape == (len(train), windows.max())
    assert list(batch["mask"].sum(1)) == list(windows.loc[train.ids])
    assert not batch["face"][~batch["mask"]].any()
    label_of = units.groupby("video_id")["emotion"].first()
    assert list(train.labels) == list(label_of.loc[train.ids])


def test_max_windows_subsamples_each_video(emotion):
    data = build_data("emotion", emotion, EMOTION_INPUTS, max_windows=3)
    assert all(np.diff(s.offsets).max() <= 3 for s in data.splits.values())


@pytest.mark.parametrize(("task", "inputs"), [("mg", MG_INPUTS), ("emotion", EMOTION_INPUTS)])
def test_streaming_gives_the_same_batches_as_memory(task, inputs, mg, emotion):
    entries = mg if task == "mg" else emotion
    held = build_data(task, entries, inputs, in_memory="auto")
    streamed = build_data(task, entries, inputs, in_memory="auto", memory_budget_gb=0.0)
    assert held.in_memory and not streamed.in_memory
    assert streamed.splits["train"].tokens is None
    idx = np.random.default_rng(0).permutation(len(held.splits["train"]))[:7]
    a, b = held.splits["train"].batch(idx), streamed.splits["train"].batch(idx)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("in_memory", [True, False])
def test_an_empty_split_gives_empty_batches_of_the_pooled_shape(tmp_path, in_memory):
    entries = write_mg(tmp_path, per_class=(1, 0, 1))
    data = build_data("mg", entries, MG_INPUTS, in_memory=in_memory)
    assert len(data.splits["val"]) == 0 and len(data.splits["test"]) == 32
    batch = data.splits["val"].batch([])
    assert batch["rgb"].shape == (0, *data.shapes["rgb"]) and batch["joint"].shape == (0, *data.shapes["joint"])


def test_wrong_roles_and_pools_are_errors(mg, emotion):
    with pytest.raises(ValueError, match="missing \\['pose'\\]"):
        build_data("mg", {"rgb": mg["rgb"]}, MG_INPUTS)
    with pytest.raises(ValueError, match="is a 'pose' entry, given as 'rgb'"):
        build_data("mg", {"rgb": mg["pose"], "pose": mg["pose"]}, MG_INPUTS)
    with pytest.raises(ValueError, match="no token grid"):
        build_data("emotion", emotion, {"context": Input("context", "cls", "time")})


def test_metrics_degenerate_splits_give_nan_with_a_note():
    one_class = task_metrics("emotion", np.ones(4, int), np.array([0.3, -1.0, 2.0, 0.1]))
    assert math.isnan(one_class["roc_auc"]) and "roc_auc undefined" in one_class["notes"][0]
    assert one_class["accuracy"] == 0.75
    logits = np.eye(32)[[0, 1, 1]] * 5
    logits[1, 0] = 1.0  # the second clip's true class is its runner-up
    mg = task_metrics("mg", np.array([0, 0, 1]), logits)
    assert mg["top1"] == pytest.approx(2 / 3) and mg["top5"] == 1.0
    assert mg["per_class_accuracy"][:2] == [0.5, 1.0] and math.isnan(mg["per_class_accuracy"][2])
    assert task_metrics("mg", np.zeros(0, int), np.zeros((0, 32)))["n"] == 0
