"""The SMG release: reader (segments, bad rows, split, auto-detection), the kinect25 joint layout,
the synthetic SMG release, pose extraction on it and `migue data check`'s long-sequence lines.

Expected values are worked by hand from the rows written here (SMG rows are 1-based; segments are
0-based and inclusive: row `3,1,10` is class index 2, frames 0..9)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from migue.extractors.skeleton_layouts import KINECT25, get_layout
from migue.pipeline.cli import main
from migue.pipeline.datasets import detect_layout, read_dataset
from migue.pipeline.datasets.kinect import KINECT_JOINTS
from migue.pipeline.datasets.manifest import Segment
from migue.pipeline.datasets.skeleton import SkeletonError, joint_values, read_skeleton
from migue.pipeline.datasets.smg import kit_split
from migue.synth.smg import write_smg

FRAMES = 30


def skeleton_rows(frames: int, shift: float = 0.0) -> str:
    """`frames` rows of 25 joints x 11 values; joint j of frame t at world (0.1 j + shift, 0.01 t, 2)."""
    rows = []
    for t in range(frames):
        values = []
        for j in range(25):
            values += [0.1 * j + shift, 0.01 * t, 2.0, 0, 0, 0, 1, 256, 212, 960, 540]
        rows.append(",".join(f"{v:g}" for v in values))
    return "\n".join(rows) + "\n"


def write_sequence(root: Path, sid: str, labels: str | None, data: str = f"{FRAMES},30,4500\n",
                   skeleton: bool = True, frames: int = FRAMES) -> Path:
    folder = root / sid
    folder.mkdir(parents=True)
    if skeleton:
        (folder / f"{sid}_skeleton.csv").write_text(skeleton_rows(frames))
    if labels is not None:
        (folder / f"{sid}_finelabels.csv").write_text(labels)
    if data is not None:
        (folder / f"{sid}_data.csv").write_text(data)
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Two sequences with hand-made rows (the kit's split of two: the first train, the second test)."""
    write_sequence(tmp_path, "Sample0001", "3,1,10\n17,12,30\n")
    write_sequence(tmp_path, "Sample0002", "1,5,8\n2,20,20\n1,6,9\n")
    return tmp_path


def test_segments_are_the_rows_0_based_inclusive(tiny: Path) -> None:
    manifest = read_dataset(tiny)
    assert manifest.layout == "smg" and manifest.problems == []
    first, second = manifest.videos["Sample0001"], manifest.videos["Sample0002"]
    assert (first.split, second.split) == ("train", "test")
    assert first.frames == second.frames == FRAMES, "the frame count is numFrames of _data.csv"
    assert first.segments == (Segment(2, 0, 9), Segment(16, 11, 29))
    # in start order; overlapping gestures (rows 1 and 3) are both kept
    assert second.segments == (Segment(0, 4, 7), Segment(0, 5, 8), Segment(1, 19, 19))
    clips = sorted((u.video_id, u.mg_label, u.start, u.end, u.label_row) for u in manifest.of_kind("mg"))
    assert clips == [("Sample0001", 2, 0, 9, 0), ("Sample0001", 16, 11, 29, 1), ("Sample0002", 0, 4, 7, 0),
                     ("Sample0002", 0, 5, 8, 2), ("Sample0002", 1, 19, 19, 1)]
    assert manifest.joint_layout == "kinect25" and len(manifest.class_names) == 17


def test_bad_rows_are_named_and_the_rest_is_read(tiny: Path) -> None:
    bad = write_sequence(tiny, "Sample0003", "0,1,2\n18,1,2\n2,9,3\n2,25,31\n2,x,7\n2,0,4\n2,3\n4,2,3\n")
    write_sequence(tiny, "Sample0004", "1,1,2\n", data="30,thirty,4500\n")
    write_sequence(tiny, "Sample0005", "1,1,2\n", skeleton=False)
    manifest = read_dataset(tiny)
    labels = bad / "Sample0003_finelabels.csv"
    expected = [f"{labels}: row 1: class 0 is not in 1..17", f"{labels}: row 2: class 18 is not in 1..17",
                f"{labels}: row 3: start frame 9 is after end frame 3",
                f"{labels}: row 4: end frame 31 is past numFrames 30",
                f"{labels}: row 5: start frame 'x' is not an integer",
                f"{labels}: row 6: start frame 0 is before the first frame",
                f"{labels}: row 7: has 2 columns, expected 3"]
    for text in expected:
        assert any(p.startswith(text) for p in manifest.problems), (text, manifest.problems)
    assert any(p.startswith(f"{tiny / 'Sample0004' / 'Sample0004_data.csv'}: row 1: fps 'thirty'")
               for p in manifest.problems)
    assert any(str(tiny / "Sample0005" / "Sample0005_skeleton.csv") in p and "missing" in p for p in manifest.problems)
    assert manifest.videos["Sample0003"].segments == (Segment(3, 1, 2),), "the good row 8 is kept"
    # the other sequences are all read: Sample0004's frames come from its skeleton instead
    assert set(manifest.videos) == {f"Sample000{i}" for i in range(1, 6)}
    assert manifest.videos["Sample0004"].frames == FRAMES
    assert manifest.videos["Sample0001"].segments == (Segment(2, 0, 9), Segment(16, 11, 29))


def test_skeleton_of_another_length_than_declared_is_a_problem(tmp_path: Path) -> None:
    write_sequence(tmp_path, "Sample0001", "1,1,2\n", frames=28)
    write_sequence(tmp_path, "Sample0002", "1,1,2\n")
    manifest = read_dataset(tmp_path, read_skeletons=True)
    assert any("28 skeleton frames, but the release declares 30" in p for p in manifest.problems)
    assert manifest.videos["Sample0001"].frames == FRAMES


def test_autodetected_only_for_smg_folders(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert detect_layout(tiny) == ["smg"]
    nested = tmp_path_factory.mktemp("nested")
    write_sequence(nested / "smg_data_phase1" / "smg_skeleton_train", "Sample0001", "1,1,2\n")
    write_sequence(nested / "smg_data_phase1" / "smg_skeleton_validate", "Sample0031", "1,1,2\n")
    assert detect_layout(nested) == ["smg"]
    manifest = read_dataset(nested)
    assert {v: m.split for v, m in manifest.videos.items()} == {"Sample0001": "train", "Sample0031": "val"}
    other = tmp_path_factory.mktemp("miga")
    (other / "imigue_skeleton_train" / "0001").mkdir(parents=True)
    (other / "imigue_skeleton_train" / "0001" / "0001_label.csv").write_text("1,0,4\n")
    assert "smg" not in detect_layout(other)


def test_kit_split_by_hand() -> None:
    ids = [f"Sample{i:04d}" for i in range(40, 0, -1)]  # given unsorted
    split = kit_split(ids)
    assert [s for s in sorted(ids) if split[s] == "test"] == [f"Sample{i:04d}" for i in range(36, 41)]
    assert sum(v == "train" for v in split.values()) == 35
    assert sorted(kit_split([f"S{i:02d}" for i in range(10)]).values()).count("test") == 2  # 10 * 35 // 40 = 8 train
    assert kit_split(["b", "a"]) == {"a": "train", "b": "test"}


def test_kinect25_layout_shape() -> None:
    layout = get_layout("kinect25")
    assert layout is KINECT25 and layout.joints == KINECT_JOINTS and layout.num_node == 25
    assert len(layout.inward()) == 24 and len(layout.bone_pairs()) == 25
    assert layout.center == "SpineShoulder"
    assert ("HandTipLeft", "HandLeft") in layout.edges and ("ThumbLeft", "HandLeft") in layout.edges
    assert ("HandTipLeft", "ThumbLeft") in layout.bones, "mmaction2's JointToBone pair, unlike its graph"
    assert ("SpineShoulder", "SpineShoulder") in layout.bones, "the centre's bone is zero"


def test_kinect25_equals_mmaction2_ntu_graph_and_bones() -> None:
    import torch

    from migue.extractors import compat
    from migue.extractors.agcn import AGCNExtractor

    compat.apply()  # the mmaction2 import fixes, as building an extractor applies them
    from mmaction.datasets.transforms import JointToBone
    from mmaction.models.utils import Graph

    np.testing.assert_array_equal(Graph(**KINECT25.graph_cfg()).A, Graph(layout="nturgb+d", mode="spatial").A)
    keypoint = np.random.default_rng(0).random((1, 5, 25, 3)).astype(np.float32)
    expected = JointToBone(dataset="nturgb+d")(dict(keypoint=keypoint))["keypoint"]
    got = AGCNExtractor(layout="kinect25", frames=4).bones(torch.from_numpy(keypoint))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_pose_input_is_world_xyz_and_openpose_layouts_are_refused(tiny: Path) -> None:
    path = tiny / "Sample0001" / "Sample0001_skeleton.csv"
    keypoints = read_skeleton(path)
    assert keypoints.shape == (FRAMES, 25, 3)
    values = joint_values(keypoints[[0, 3]], ("HandTipLeft", "SpineBase"), path, 1920, 1080)
    np.testing.assert_allclose(values, [[[2.1, 0.0, 2.0], [0.0, 0.0, 2.0]], [[2.1, 0.03, 2.0], [0.0, 0.03, 2.0]]],
                               atol=1e-6)
    with pytest.raises(SkeletonError, match="kinect skeleton has no joint.*Nose.*--joints kinect25"):
        joint_values(keypoints[:1], get_layout("imigue22").joints, path, 1920, 1080)


def test_synth_smg_round_trip(tmp_path: Path) -> None:
    sequences = write_smg(tmp_path / "a", videos=4, seed=5, frames=300, gestures=4)
    again = write_smg(tmp_path / "b", videos=4, seed=5, frames=300, gestures=4)
    for name in ("Sample0002/Sample0002_skeleton.csv", "Sample0004/Sample0004_finelabels.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), "deterministic"
    assert sequences == again
    first = sequences[0].gestures[0]
    row = (tmp_path / "a" / "Sample0001" / "Sample0001_finelabels.csv").read_text().splitlines()[0]
    assert row == f"{first.cls + 1},{first.start + 1},{first.end + 1}", "1-based in the file"
    manifest = read_dataset(tmp_path / "a", read_skeletons=True)
    assert manifest.layout == "smg" and manifest.problems == []
    assert [s.split for s in sequences] == ["train", "train", "train", "test"]  # 4 * 35 // 40 = 3 train
    for s in sequences:
        video = manifest.videos[s.seq_id]
        assert video.split == s.split and video.frames == 300
        assert video.segments == tuple(Segment(g.cls, g.start, g.end) for g in s.gestures)


def test_synth_smg_gestures_move_the_hands(tmp_path: Path) -> None:
    """A planted gesture moves a wrist far more than the background drift does."""
    sequences = write_smg(tmp_path, videos=2, seed=1, frames=300, gestures=3)
    keypoints = read_skeleton(tmp_path / "Sample0001" / "Sample0001_skeleton.csv")
    wrists = keypoints[:, [KINECT_JOINTS.index("WristLeft"), KINECT_JOINTS.index("WristRight")]]
    rest = wrists[0]
    inside = np.zeros(300, dtype=bool)
    for g in sequences[0].gestures:
        middle = (g.start + g.end) // 2
        inside[g.start:g.end + 1] = True
        assert np.linalg.norm(wrists[middle] - rest, axis=-1).max() > 0.25, g
    assert np.linalg.norm(wrists[~inside] - rest, axis=-1).max() < 0.12


def test_synth_cli_and_data_check_report_segments(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "smg"
    result = runner.invoke(main, ["synth", "--layout", "smg", "--out", str(out), "--videos", "4", "--frames", "300",
                                  "--clips-per-video", "4"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 sequences, 16 MG clips" in result.output and "test 1 sequences" in result.output
    result = runner.invoke(main, ["data", "check", str(out), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("gesture segments per split") for line in lines)
    header = next(line for line in lines if "with segments" in line)
    assert header.split() == ["split", "sequences", "with", "segments", "segments", "mean", "length", "frames",
                              "background"]
    train = lines[lines.index(header) + 1].split()
    assert train[:4] == ["train", "3", "3", "12"] and train[5] == "900" and train[6].endswith("%")
    assert any(line.split()[:3] == ["SMG", "class", "17"] for line in lines), "SMG's own classes are counted"


def test_pose_extract_on_synth_smg_uses_kinect25(tmp_path: Path) -> None:
    data, cache = tmp_path / "smg", tmp_path / "cache"
    write_smg(data, videos=4, seed=2, frames=200, gestures=2)
    result = CliRunner().invoke(main, ["extract", "--modality", "pose", "--data", str(data), "--cache", str(cache),
                                       "--units", "mg", "--frames", "8", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "pose: 8 extracted" in result.output and "0 failed" in result.output
    assert "kinect25" in result.output, "the dataset's joint layout, without --joints"


def test_frame_labels_by_hand(tiny: Path) -> None:
    """Per-frame classes for dense windows: background -1, nested gestures hold their frames."""
    from dataclasses import replace

    second = read_dataset(tiny).videos["Sample0002"]  # rows 1,5,8 / 2,20,20 / 1,6,9 of 30 frames
    expected = np.full(FRAMES, -1)
    expected[4:9] = 0  # frames 4..7 and 5..8, both class index 0
    expected[19] = 1
    np.testing.assert_array_equal(second.frame_labels(), expected)
    nested = replace(second, segments=(Segment(3, 2, 12), Segment(5, 2, 4), Segment(6, 8, 9)))
    np.testing.assert_array_equal(nested.frame_labels()[:14], [-1, -1, 5, 5, 5, 3, 3, 3, 6, 6, 3, 3, 3, -1])
    with pytest.raises(ValueError, match="video Sample0002: no frame labels \\(segments unknown\\)"):
        replace(second, segments=None).frame_labels()
