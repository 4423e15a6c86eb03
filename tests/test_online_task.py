"""The online task end to end on a small dense entry written by hand (issue 22 points 4, 6): fuse-train
--task online finds planted gestures, evaluate prints both matching rules and mAP, predict writes the
Track 2 zip (one CSV per test sequence) and the segments CSV that `score online` reads with the same F1
as evaluate; an entry without its sequences' ground truth is refused in one sentence."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from migue.cache import EntryWriter
from migue.cache.units import format_segments
from migue.fusion.online.segments import StepGrid
from migue.fusion.online.synthetic import synthetic_sequences

GRID = StepGrid(stride=8, window=32)
CLASSES = ["wave", "touch", "scratch", "fold"]
DIM = 16
TRAIN = ["--epochs", "25", "--set", "batch_size=4", "--set", "lr=0.005", "--set", "warmup_epochs=0"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli(*args):
    from migue.pipeline.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _centre_label(gestures, start, end) -> int:
    centre = start + (end - start) // 2
    return next((c for c, a, b in gestures if a <= centre <= b), -1)


def write_dense_entry(cache, with_segments: bool = True, dense: bool = True) -> None:
    """A pose@dense entry of synthetic window tokens with planted gestures: 16 train and 6 test
    sequences of 40-60 windows (32 frames every 8), the contract's units and columns."""
    parts = {"train": synthetic_sequences(16, len(CLASSES), DIM, (40, 60), GRID, signal=2.0, seed=0, prefix="tr"),
             "test": synthetic_sequences(6, len(CLASSES), DIM, (40, 60), GRID, signal=2.0, seed=1, prefix="te")}
    config = {"modality": "pose", "backbone": "hand-made", "unit_kind": "dense" if dense else "mg",
              "class_names": CLASSES, "dataset_layout": "smg",
              "streams": {"joint": {"dim": DIM, "tokens": 1}, "bone": {"dim": DIM, "tokens": 1}}}
    if dense:
        config["dense"] = {"window": GRID.window, "stride": GRID.stride}
    writer = EntryWriter(cache / "pose@dense-hand", config)
    columns: dict[str, list] = {k: [] for k in ("unit_id", "kind", "video_id", "subject", "split", "start", "end",
                                                "mg_label", "segments")}
    joint, bone = [], []
    rng = np.random.default_rng(5)
    for split, sequences in parts.items():
        for s in sequences:
            for t, token in enumerate(s.tokens):
                start = t * GRID.stride
                end = start + GRID.window - 1
                columns["unit_id"].append(f"{s.video_id}:{start:06d}-{end:06d}")
                columns["kind"].append("dense" if dense else "mg")
                columns["video_id"].append(s.video_id)
                columns["subject"].append(s.video_id)
                columns["split"].append(split)
                columns["start"].append(start)
                columns["end"].append(end)
                columns["mg_label"].append(_centre_label(s.gestures, start, end))
                columns["segments"].append(format_segments(s.gestures) if t == 0 and with_segments else "")
                joint.append(token[None])                                          # (1, D)
                bone.append((token + 0.5 * rng.standard_normal(DIM)).astype(np.float32)[None])
    writer.write(columns, {"joint": joint, "bone": bone})
    writer.close()


@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    write_dense_entry(root / "cache")
    result = _cli("fuse-train", "--task", "online", "--cache", root / "cache", "--out", root / "run", *TRAIN)
    assert result.exit_code == 0, result.output
    return root


def test_a_run_finds_the_planted_gestures_and_writes_its_reports(online_run):
    run = online_run / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["n"] == 6 and test["f1@0.3"] >= 0.5, test["f1@0.3"]
    assert metrics["monitor"] == "f1@0.3" and metrics["class_names"] == CLASSES
    for rule in ("strict", "kit"):
        assert set(test[rule]) >= {"precision", "recall", "f1", "per_class"}
    assert sorted(test["mAP_by_iou"]) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    for name in ("timeline.png", "curves.png", "history.csv", "head.pt", "done.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["num_classes"] == 4  # the entry's classes, not iMiGUE's 32
    assert config["config"]["score_threshold"] == 0.2 and config["config"]["min_length"] == 16


def test_evaluate_prints_both_rules_per_class_and_map(online_run):
    result = _cli("evaluate", online_run / "run", "--split", "test")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "strict matching at tIoU > 0.3" in out and "kit matching at tIoU > 0.3" in out
    assert "0 wave" in out and "3 fold" in out and "mAP at tIoU 0.3:" in out


def test_predict_writes_track2_zip_and_a_csv_that_score_online_reads_like_evaluate(online_run, tmp_path):
    run = online_run / "run"
    result = _cli("predict", run, "--split", "test", "--format", "miga", "--zip", "--out", tmp_path / "online.zip")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "online.zip") as archive:
        names = sorted(archive.namelist())
        assert names == [f"te{k:03d}.csv" for k in range(6)]
        first = pd.read_csv(io.BytesIO(archive.read(names[0])))
    assert list(first.columns) == ["GestureID", "StartFrame", "EndFrame"]
    assert first["GestureID"].between(1, 4).all() and (first["StartFrame"] >= 1).all()  # SMG: 1-based
    result = _cli("predict", run, "--split", "test", "--format", "csv", "--out", tmp_path / "pred.csv",
                  "--truth-out", tmp_path / "truth.csv")
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == ["video_id", "label", "start", "end", "score"]
    # the same gestures, 0-based here and 1-based in the zip
    with zipfile.ZipFile(tmp_path / "online.zip") as archive:
        zipped = pd.read_csv(io.BytesIO(archive.read("te000.csv")))
    mine = pred[pred["video_id"] == "te000"].sort_values(["start", "end"])
    assert list(zipped["StartFrame"]) == list(mine["start"] + 1) and list(zipped["GestureID"]) == list(mine["label"] + 1)
    scored = _cli("score", "online", "--pred", tmp_path / "pred.csv", "--truth", tmp_path / "truth.csv")
    assert scored.exit_code == 0, scored.output
    f1 = json.loads(scored.output.strip().splitlines()[-1])["f1"]
    evaluated = _cli("evaluate", run, "--split", "test", "--json")
    assert f1 == pytest.approx(json.loads(evaluated.output)["f1@0.3"])
    kit = _cli("score", "online", "--pred", tmp_path / "pred.csv", "--truth", tmp_path / "truth.csv",
               "--matching", "kit")
    assert json.loads(kit.output.strip().splitlines()[-1])["f1"] == pytest.approx(
        json.loads(evaluated.output)["kit"]["f1"])


def test_track2_files_worked_by_hand(tmp_path):
    from migue.pipeline.cli.submission import FILE_WRITERS

    table = pd.DataFrame({"video_id": ["a", "a"], "label": [2, 0], "start": [40, 0], "end": [70, 15],
                          "score": [0.9, 0.5]})
    table.attrs.update(sequences=["a", "b"], layout="smg")
    FILE_WRITERS["miga-track2"](table, tmp_path / "smg.zip", True)
    with zipfile.ZipFile(tmp_path / "smg.zip") as archive:
        assert archive.read("a.csv").decode() == "GestureID,StartFrame,EndFrame\n1,1,16\n3,41,71\n"
        assert archive.read("b.csv").decode() == "GestureID,StartFrame,EndFrame\n"  # nothing found: header only
    table.attrs.update(layout="imigue")
    table.loc[1, "label"] = 31  # iMiGUE: index 31 is raw 99, frames 0-based as its label files
    FILE_WRITERS["miga-track2"](table, tmp_path / "imigue", False)
    assert (tmp_path / "imigue" / "a.csv").read_text() == "GestureID,StartFrame,EndFrame\n99,0,15\n3,40,70\n"


def test_an_entry_without_segments_is_refused(tmp_path):
    write_dense_entry(tmp_path / "cache", with_segments=False)
    result = _cli("fuse-train", "--task", "online", "--cache", tmp_path / "cache", "--out", tmp_path / "run", *TRAIN)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert "holds no `segments`" in result.output and "--units dense" in result.output
    assert "pose@dense-hand" in result.output and not (tmp_path / "run" / "done.json").exists()


def test_decode_settings_are_task_keys():
    from migue.fusion.config import resolve_config

    cfg = resolve_config("online", {"score_threshold": 0.4, "min_length": 8})
    assert cfg["score_threshold"] == 0.4 and cfg["min_length"] == 8 and cfg["monitor"] == "f1@0.3"
    with pytest.raises(ValueError, match="setting min_length=1.5"):
        resolve_config("online", {"min_length": 1.5})
    assert "score_threshold" not in resolve_config("mg", {})  # mg's config is as before
    with pytest.raises(KeyError, match="score_threshold"):
        resolve_config("mg", {"score_threshold": 0.4})
