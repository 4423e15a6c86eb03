"""Many probes, one read: the sweep reads each cache stream once and trains each probe as its own run would."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from migue.cache import EntryReader
from migue.fusion import evaluate_run, sweep_probes, train_run
from migue.fusion.synthetic import write_mg

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = {"epochs": 6, "patience": 0, "batch_size": 32}
CONFIGS = [
    {"head": "probe-linear-rgb"},
    {"head": "probe-linear-rgb", "lr": 2e-3},
    {"head": "probe-linear-rgb", "baseline_pool": "mean"},
    {"head": "probe-linear-rgb", "seed": 1},
    {"head": "probe-linear-pose-joint", "weight_decay": 0.0},
    {"head": "probe-linear-pose-joint", "baseline_pool": "time", "label_smoothing": 0.0},
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return write_mg(tmp_path_factory.mktemp("cache"), per_class=(3, 1, 1))


@pytest.fixture
def reads(monkeypatch):
    """Counter of EntryReader.read calls per stream."""
    counts: Counter = Counter()
    original = EntryReader.read

    def counting(self, stream, rows=None):
        counts[stream] += 1
        return original(self, stream, rows)

    monkeypatch.setattr(EntryReader, "read", counting)
    return counts


def runs(tmp_path, configs, **extra):
    return {tmp_path / f"run{i}": {**BASE, **c, **extra} for i, c in enumerate(configs)}


@pytest.mark.parametrize("in_memory", [True, False])
def test_linear_probes_in_a_sweep_equal_their_own_runs(stores, tmp_path, in_memory):
    swept = sweep_probes("mg", stores, runs(tmp_path / "sweep", CONFIGS, in_memory=in_memory))
    for i, config in enumerate(CONFIGS):
        alone = train_run("mg", stores, tmp_path / f"alone{i}", {**BASE, **config, "in_memory": in_memory})
        mine = swept[tmp_path / "sweep" / f"run{i}"]
        assert mine["test"] == alone["test"] and mine["val"] == alone["val"], config
        assert mine["best_epoch"] == alone["best_epoch"]


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_sweep_reads_each_stream_as_often_as_one_run(stores, tmp_path, reads, in_memory):
    train_run("mg", stores, tmp_path / "one", {**BASE, "head": "probe-linear-rgb", "in_memory": in_memory})
    one_run = reads["tokens"]
    reads.clear()
    sweep_probes("mg", stores, runs(tmp_path / "sweep", CONFIGS, in_memory=in_memory))
    # six probes, four of them on rgb tokens under three poolings, two on the joint stream; held in
    # memory the data is read once; streamed, once per pass: seed 1 (rgb only) is a second pass
    rgb_passes = 1 if in_memory else 2
    assert reads["tokens"] == rgb_passes * one_run and reads["joint"] == one_run, reads
    assert reads["bone"] == 0


def test_sweep_run_folders_are_ordinary_runs(stores, tmp_path):
    swept = sweep_probes("mg", stores, runs(tmp_path, CONFIGS[:2]))
    for out, metrics in swept.items():
        for name in ("config.json", "head.pt", "metrics.json", "history.csv", "confusion.png", "curves.png"):
            assert (out / name).is_file(), f"{out.name} lacks {name}"
        record = json.loads((out / "config.json").read_text())
        assert record["sweep"]["probes_in_pass"] == 2 and record["head"]["shapes"] == {"rgb": [4, 16]}
        assert evaluate_run(out)["top1"] == pytest.approx(metrics["test"]["top1"])
        assert len(json.loads((out / "metrics.json").read_text())["test"]["per_class_accuracy"]) == 32


def test_sweep_refuses_other_heads_and_mixed_data_settings(stores, tmp_path):
    with pytest.raises(ValueError, match="probe heads only.*cmtf"):
        sweep_probes("mg", stores, runs(tmp_path, [{"head": "probe-linear-rgb"}, {"head": "cmtf"}]))
    with pytest.raises(ValueError, match="differ in \\['in_memory'\\]"):
        sweep_probes("mg", stores, {tmp_path / "a": {"head": "probe-linear-rgb", "in_memory": True},
                                    tmp_path / "b": {"head": "probe-linear-rgb", "in_memory": False}})
