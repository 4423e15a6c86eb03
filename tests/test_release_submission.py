"""Each head reads only its own entries, and `migue predict --format miga` writes the challenge's
Track 1 / Track 3 files, complete or not at all."""
from __future__ import annotations

import io
import shutil
import zipfile

import pandas as pd
import pytest
from click.testing import CliRunner

from migue.cache import FeatureStore
from migue.fusion.synthetic import write_emotion, write_mg
from migue.pipeline.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = ["--epochs", "3", "--set", "width=16"]


def _only(root, entries, keep):
    """Remove every entry but `keep` from the cache: a skeleton-only (or face-only) cache."""
    for role, reader in entries.items():
        if role != keep:
            shutil.rmtree(reader.dir)


@pytest.fixture(scope="module")
def pose_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose-only")
    entries = write_mg(root, per_class=(3, 1, 1), signal=0.8)
    _only(root, entries, "pose")
    return root, entries["pose"]


@pytest.fixture(scope="module")
def face_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("face-only")
    entries = write_emotion(root, videos=(12, 6, 7), signal=0.8)
    _only(root, entries, "face")
    return root, entries["face"]


def _train(cache, task, head, out):
    result = CliRunner().invoke(main, ["fuse-train", "--task", task, "--fusion", head, "--cache", str(cache),
                                       "--out", str(out), *_fast(head)])
    assert result.exit_code == 0, result.output
    return out


def _fast(head):
    """FAST, its width only for a head that reads one (`--set` names only keys the head reads)."""
    from migue.fusion import get_head

    return FAST if "width" in get_head(head).settings else FAST[:2]


@pytest.mark.parametrize("head", ["late-pose", "probe-linear-pose-joint", "probe-mlp-pose-bone"])
def test_pose_heads_train_evaluate_predict_from_pose_alone(head, pose_only, tmp_path):
    cache, _ = pose_only
    run = _train(cache, "mg", head, tmp_path / head)
    assert CliRunner().invoke(main, ["evaluate", str(run)]).exit_code == 0
    result = CliRunner().invoke(main, ["predict", str(run), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns[:5]) == ["unit_id", "video_id", "label", "video_name", "label_row"]
    assert [f"p_{k:02d}" for k in range(32)] == list(table.columns[5:])
    assert table.iloc[:, 5:].sum(axis=1).round(4).eq(1).all()


@pytest.mark.parametrize("head", ["probe-linear-face", "probe-mlp-face"])
def test_face_probes_from_face_alone(head, face_only, tmp_path):
    cache, _ = face_only
    run = _train(cache, "emotion", head, tmp_path / head)
    result = CliRunner().invoke(main, ["predict", str(run), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["video_id", "label", "video_name", "p_win"]


def test_a_head_missing_its_input_names_the_command(pose_only, tmp_path):
    cache, _ = pose_only
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--fusion", "cmtf", "--cache", str(cache),
                                       "--out", str(tmp_path / "r"), *FAST])
    assert result.exit_code != 0
    assert "no 'rgb' features" in result.output and "migue extract --modality rgb" in result.output
    assert "'cmtf' reads rgb + pose" in result.output


def test_track1_file(pose_only, tmp_path):
    cache, pose = pose_only
    run = _train(cache, "mg", "late-pose", tmp_path / "run")
    out = tmp_path / "prediction.zip"
    result = CliRunner().invoke(main, ["predict", str(run), "--format", "miga", "--zip", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["prediction.csv"]
        text = archive.read("prediction.csv").decode()
    assert text.splitlines()[0] == "Id,Target"
    table = pd.read_csv(io.StringIO(text), dtype={"Id": str})
    units = pose.units[pose.units["split"] == "test"]
    wanted = [f"{v}_{k}" for v, k in sorted(zip(units["video_name"], units["label_row"]))]
    assert table["Id"].tolist() == wanted, "one row per test clip, in release order"
    assert table["Target"].between(0, 31).all()


def test_track1_refuses_an_incomplete_file(pose_only, tmp_path):
    cache, pose = pose_only
    run = _train(cache, "mg", "probe-linear-pose-joint", tmp_path / "run")
    test = pose.units[pose.units["split"] == "test"]
    video = test["video_id"].iloc[0]
    lost = f"{video}:999990-999999"
    # a test clip that failed extraction, recorded as extraction records it
    FeatureStore(cache).writer(pose.config).record_failures({lost: "VideoError: cannot decode frame 999990"})
    out = tmp_path / "prediction.csv"
    result = CliRunner().invoke(main, ["predict", str(run), "--format", "miga", "--out", str(out)])
    assert result.exit_code != 0 and not out.exists()
    assert "1 test clip(s)" in result.output and lost in result.output and "cannot decode" in result.output


def test_track3_file(face_only, tmp_path):
    cache, face = face_only
    run = _train(cache, "emotion", "probe-linear-face", tmp_path / "run")
    out = tmp_path / "submission.csv"
    result = CliRunner().invoke(main, ["predict", str(run), "--format", "miga", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "video_id,label"
    table = pd.read_csv(out, dtype={"video_id": str})
    test_videos = sorted(face.units.loc[face.units["split"] == "test", "video_id"].unique())
    assert table["video_id"].tolist() == test_videos
    assert set(table["label"]) <= {0, 1}


def test_fuse_train_refuses_an_empty_train_split(tmp_path):
    write_mg(tmp_path / "cache", per_class=(0, 1, 1))  # no train clips at all
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--fusion", "probe-linear-pose-joint",
                                       "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "r"),
                                       *_fast("probe-linear-pose-joint")])
    assert result.exit_code != 0
    assert "the train split is empty" in result.output and "nothing to train on" in result.output
    assert not (tmp_path / "r" / "head.pt").exists()


def test_track1_target_is_the_0_based_class_on_hand_worked_rows(tmp_path):
    """A label file as released (raw ids 1..31 and 99) read as a perfect predictor would see it:
    raw 1 -> Target 0, raw 2 -> 1, raw 31 -> 30, raw 99 -> 31 (worked by hand, not by the code)."""
    from migue.pipeline.cli.submission import Expected, miga_table
    from migue.pipeline.datasets.labels import read_clip_labels

    label_file = tmp_path / "0054_label.csv"
    label_file.write_text("99,0,9\n1,10,19\n31,20,29\n2,30,39\n")
    problems: list[str] = []
    clips = read_clip_labels(label_file, 100, problems)
    assert not problems
    predicted = pd.DataFrame({"unit_id": [f"0054:{c.start}-{c.end}" for c in clips],
                              "video_name": "0054", "label_row": [c.index for c in clips],
                              "label": [c.mg_label for c in clips]})
    expected = Expected(frozenset({"0054_0", "0054_1", "0054_2", "0054_3"}), "the hand-worked file", {})
    table = miga_table("mg", predicted, expected)
    assert table.to_dict("list") == {"Id": ["0054_0", "0054_1", "0054_2", "0054_3"], "Target": [31, 0, 30, 1]}


def test_track1_refuses_a_class_outside_0_to_31():
    from migue.pipeline.cli.submission import Expected, SubmissionError, miga_table

    predicted = pd.DataFrame({"unit_id": ["0054:0-9"], "video_name": "0054", "label_row": [0], "label": [99]})
    with pytest.raises(SubmissionError, match="class index 99 is not a Track 1 class"):
        miga_table("mg", predicted, Expected(frozenset({"0054_0"}), "x", {}))
