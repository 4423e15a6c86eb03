"""Issue 23 case 4: readers check each shard's checksum (once per process), so a same-size edit of
tokens or labels with its mtime restored is refused by training, evaluation and prediction."""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from migue.cache import EntryReader, FeatureStore, ShardError, verify_entry
from migue.cache import checksums
from migue.fusion import config_for, evaluate_run, predict_run, train_run
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main

TINY = {"width": 16, "depth": 1, "num_heads": 2, "epochs": 1, "warmup_epochs": 0}
CONFIG = {"modality": "rgb", "backbone": "mvit", "arch": "tiny",
          "streams": {"tokens": {"tokens": 4, "dim": 8}}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _entry(tmp_path: Path) -> Path:
    writer = FeatureStore(tmp_path / "cache").writer(CONFIG)
    rng = np.random.default_rng(0)
    for ids in ("ab", "cd"):
        writer.write({"unit_id": list(ids), "kind": ["mg"] * 2, "video_id": list(ids), "split": ["train"] * 2,
                      "start": [0, 0], "end": [9, 9], "mg_label": [1, 2]},
                     {"tokens": [rng.standard_normal((4, 8)) for _ in ids]})
    return writer.dir


def _edit_in_place(shard: Path, dataset: str, index: tuple, value: float) -> None:
    """Change one value inside a shard as an attacker would: same size, mtime put back."""
    st = shard.stat()
    with h5py.File(shard, "r+") as f:
        f[dataset][index] = value
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert shard.stat().st_size == st.st_size and shard.stat().st_mtime_ns == st.st_mtime_ns


def _shard(entry: Path, k: int = 0) -> Path:
    return entry / json.loads((entry / "index.json").read_text())["shards"][k]["file"]


@pytest.mark.parametrize("dataset,index,value", [("streams/tokens/tokens", (1, 3), 42.0),
                                                  ("units/mg_label", (0,), 7)])
def test_a_same_size_edit_with_its_mtime_restored_is_refused_on_open(tmp_path, dataset, index, value):
    entry = _entry(tmp_path)
    shard = _shard(entry, 1)
    _edit_in_place(shard, dataset, index, value)
    assert not verify_entry(entry).ok  # `cache verify` saw it already
    with pytest.raises(ShardError) as err:
        EntryReader(entry)
    message = str(err.value)
    assert entry.name in message and shard.name in message and "checksum" in message


def test_new_shards_record_a_blake3_checksum_and_old_indexes_check_sha256(tmp_path):
    entry = _entry(tmp_path)
    index = json.loads((entry / "index.json").read_text())
    assert all(len(s["blake3"]) == 64 for s in index["shards"])
    for shard in index["shards"]:  # an index written before blake3 was recorded: sha256 is checked
        del shard["blake3"]
    (entry / "index.json").write_text(json.dumps(index))
    assert len(EntryReader(entry)) == 4
    _edit_in_place(_shard(entry, 0), "streams/tokens/tokens", (0, 0), -3.0)
    with pytest.raises(ShardError, match="checksum"):
        EntryReader(entry)


def test_each_shard_is_hashed_once_per_process(tmp_path, monkeypatch):
    entry = _entry(tmp_path)
    hashed = []
    real = checksums.shard_digest
    monkeypatch.setattr(checksums, "shard_digest", lambda path, kind: hashed.append(path.name) or real(path, kind))
    checksums.forget_checked()
    for _ in range(3):
        with EntryReader(entry) as reader:
            reader.read("tokens")
    assert sorted(hashed) == sorted({_shard(entry, 0).name, _shard(entry, 1).name})
    # a shard rewritten under the same name after it was checked is hashed again (ctime moved)
    _edit_in_place(_shard(entry, 0), "streams/tokens/tokens", (0, 0), 5.0)
    with pytest.raises(ShardError, match="checksum"):
        EntryReader(entry)


def test_fuse_train_evaluate_and_predict_refuse_an_edited_shard(tmp_path):
    root = tmp_path / "cache"
    stores = write_mg(root, per_class=(2, 1, 1), num_classes=4)
    run = tmp_path / "run"
    train_run("mg", stores, run, config_for("mg", "probe-linear-pose-joint", TINY))
    pose = stores["pose"].dir
    shard = _shard(pose, 0)
    _edit_in_place(shard, "streams/joint/tokens", (0, 0), 9.0)
    checksums.forget_checked()  # a new process
    for call in (evaluate_run, predict_run):
        with pytest.raises(ShardError, match="checksum") as err:
            call(run, "test")
        assert shard.name in str(err.value)
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(root), "--out",
                                       str(tmp_path / "again"), "--fusion", "probe-linear-pose-joint",
                                       "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert shard.name in result.output and pose.name in result.output and "checksum" in result.output
