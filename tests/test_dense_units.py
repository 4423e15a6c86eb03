"""Dense windows over whole sequences (issue 22 point 3): the grid, centre-frame labels, the
`segments` column of each sequence's first window, their fingerprints, and dense pose / rgb+pose
extracts through the one plan (each video decoded once; a re-run extracts nothing)."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from migue.cache import FeatureStore
from migue.cache.files import fingerprint_bytes
from migue.cache.units import DENSE_KIND, KINDS, UnitSchemaError, format_segments, parse_segments, with_defaults
from migue.fusion.online.segments import StepGrid
from migue.pipeline.datasets.manifest import Segment, Unit, Video, dense_starts, dense_units
from migue.pipeline.extraction.fingerprints import label_fingerprint

LINE = re.compile(r"decoded (\d+) of (\d+) frames needed \(([\d.]+)x\), (\d+) videos, units: (.*), [\d.]+ s")


def test_grid_of_a_50_frame_sequence_worked_by_hand():
    # full windows of 32 start at 0, 8, 16 (16 + 32 = 48 <= 50; 24 + 32 = 56 > 50); the last full one
    # ends at 47 < 49, so one more at the next step, 24, cut at the last frame 49
    assert dense_starts(50, 32, 8) == [(0, 31), (8, 39), (16, 47), (24, 49)]
    assert dense_starts(40, 32, 8) == [(0, 31), (8, 39)]  # the last full window ends on frame 39
    assert dense_starts(20, 32, 8) == [(0, 19)]  # shorter than a window: all of it
    assert dense_starts(0, 32, 8) == []
    with pytest.raises(ValueError, match="stride of at least 1"):
        dense_starts(50, 32, 0)
    grid = StepGrid.from_windows([0, 8, 16, 24], [31, 39, 47, 49], last_frame=49, video_id="s")
    assert (grid.stride, grid.window, grid.first_frame) == (8, 32, 0)  # fusion reads the same grid back


def _video(segments):
    return Video("s01", "p1", "train", 1, None, None, frames=50, name="S01", segments=segments)


def test_centre_frame_labels_and_the_segments_of_the_first_window():
    # frames 5-30 class 3, nested 20-26 class 7 (it holds its frames), 34-40 class 5, the rest background
    video = _video((Segment(3, 5, 30), Segment(7, 20, 26), Segment(5, 34, 40)))
    units = dense_units(video, 32, 8)
    assert [u.unit_id for u in units] == ["s01:000000-000031", "s01:000008-000039", "s01:000016-000047",
                                          "s01:000024-000049"]
    # centres 0 + 31 // 2 = 15 (class 3), 8 + 15 = 23 (nested class 7), 16 + 15 = 31 (background),
    # 24 + 25 // 2 = 36 (class 5)
    assert [u.mg_label for u in units] == [3, 7, -1, 5]
    assert [u.segments for u in units] == ["3:5-30 7:20-26 5:34-40", "", "", ""]
    assert {u.kind for u in units} == {DENSE_KIND} and {u.emotion for u in units} == {1}
    assert {u.video_name for u in units} == {"S01"} and {u.split for u in units} == {"train"}


def test_unknown_and_empty_ground_truth():
    unknown = dense_units(_video(None), 32, 8)
    assert [u.mg_label for u in unknown] == [-1, -1, -1, -1]
    assert [u.segments for u in unknown] == ["?", "", "", ""]
    none = dense_units(_video(()), 32, 8)  # labelled, no gesture
    assert [u.mg_label for u in none] == [-1] * 4 and [u.segments for u in none] == ["", "", "", ""]
    assert dense_units(replace(_video(None), frames=0), 32, 8) == []  # frame count unknown: no window


def test_segments_format_and_parse_worked_by_hand():
    assert format_segments([(7, 20, 26), (3, 5, 30)]) == "3:5-30 7:20-26"  # ordered by start
    assert format_segments([]) == "" and format_segments(None) == "?"
    assert parse_segments("3:5-30 7:20-26") == [(3, 5, 30), (7, 20, 26)]
    assert parse_segments("?") is None and parse_segments("") == []
    for bad in ("3:30-5", "x:1-2", "3-5", "-1:0-4"):
        with pytest.raises(UnitSchemaError, match=f"unit s01:000000-000031: segments item '{re.escape(bad)}'"):
            parse_segments(bad, "s01:000000-000031")
    assert DENSE_KIND == "dense" and DENSE_KIND in KINDS
    old = with_defaults(pd.DataFrame({"unit_id": ["a"]}))  # an entry from before the column
    assert list(old["segments"]) == [""]


def test_label_fingerprint_covers_the_centre_label_and_the_first_window_segments():
    video = _video((Segment(3, 5, 30),))
    clip = Unit("s01:000005-000030", "mg", "s01", "p1", "train", 5, 30, 3, 1, video_name="S01", label_row=0)
    fields = {"unit_id": "s01:000005-000030", "kind": "mg", "video_id": "s01", "subject": "p1", "split": "train",
              "start": 5, "end": 30, "mg_label": 3, "emotion": 1, "video_name": "S01", "label_row": 0,
              "frame_size": [0, 0]}  # no `segments` key: an MG clip's fingerprint is what it was before the column
    assert label_fingerprint(clip, video) == fingerprint_bytes(json.dumps(fields, sort_keys=True))
    first = dense_units(video, 32, 8)[0]
    assert label_fingerprint(first, video) != label_fingerprint(replace(first, segments="3:5-31"), video)
    assert label_fingerprint(first, video) != label_fingerprint(replace(first, mg_label=4), video)


def _extract(data, cache, *args):
    from migue.pipeline.cli import main

    result = CliRunner().invoke(main, ["extract", "--data", str(data), "--cache", str(cache), "--workers", "0",
                                       *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_dense_pose_extract_of_an_smg_sample(tmp_path):
    from migue.pipeline.datasets import read_dataset
    from migue.pipeline.datasets.smg import CLASS_NAMES
    from migue.synth.smg import write_smg

    data = tmp_path / "smg"
    write_smg(data, videos=4, frames=170, gestures=3)
    args = ["--modality", "pose", "--units", "dense", "--dense-window", "64", "--dense-stride", "32", "--frames", "4"]
    output = _extract(data, tmp_path / "cache", *args)
    # 170 frames, 64 every 32: full windows at 0, 32, 64, 96 (96 + 64 = 160 <= 170), the last ends on
    # 159 < 169: one more at 128 cut at 169 -> 5 windows a sequence, 20 for 4 sequences
    assert "pose@dense: 20 extracted, 0 already cached, 0 failed" in output, output
    (entry,) = FeatureStore(tmp_path / "cache").find()
    assert entry.name.startswith("pose@dense-agcn-kinect25-") and entry.units == 20
    assert entry.config["unit_kind"] == DENSE_KIND and entry.config["dense"] == {"window": 64, "stride": 32}
    assert entry.config["class_names"] == list(CLASS_NAMES) and len(CLASS_NAMES) == 17
    units = FeatureStore(tmp_path / "cache").reader(entry.name).units
    assert sorted(units["start"].unique()) == [0, 32, 64, 96, 128]
    assert sorted(units["end"].unique()) == [63, 95, 127, 159, 169]
    manifest = read_dataset(data)
    for vid, video in manifest.videos.items():
        mine = units[units["video_id"] == vid].sort_values("start")
        truth = " ".join(f"{g.label}:{g.start}-{g.end}" for g in video.segments)
        assert len(video.segments) == 3 and list(mine["segments"]) == [truth, "", "", "", ""], vid
        labels = video.frame_labels()
        assert list(mine["mg_label"]) == [labels[s + (e - s) // 2] for s, e in zip(mine["start"], mine["end"])]
    again = _extract(data, tmp_path / "cache", *args)
    assert "pose@dense: 0 extracted, 20 already cached, 0 failed" in again, again
    # `cache verify --data` and stage two's `--data` read the dataset with the entry's grid
    from migue.pipeline.cli.scope import dataset_scope
    from migue.pipeline.extraction.fingerprints import changed_inputs

    store = FeatureStore(tmp_path / "cache")
    assert changed_inputs(store.root / entry.name, data) == {}
    scope = dataset_scope("online", [data], "auto", 64, {"pose": store.reader(entry.name)})
    assert scope["pose"] == set(units["unit_id"]) and len(scope["pose"]) == 20
    other = _extract(data, tmp_path / "cache", *args[:4], "--dense-window", "64", "--dense-stride", "64",
                     "--frames", "4")  # another grid: another entry, beside the first
    # full windows at 0 and 64 (128 + 64 > 170), the last ends on 127: one more, 128-169 -> 3 a sequence
    assert "pose@dense: 12 extracted" in other, other
    assert len(FeatureStore(tmp_path / "cache").find()) == 2


def test_smg_extracts_dense_windows_by_default_and_pose_takes_the_window_frames(tmp_path):
    """SMG is MiGA's online track: without --units, extract covers its dense windows (the issue's user
    path `migue extract --modality pose --data smg`), and 2s-AGCN takes each window's own frames
    (32), not the MG clip default (64, which would resample a 32-frame window up to twice the work)."""
    from migue.synth.smg import write_smg

    data = tmp_path / "smg"
    write_smg(data, videos=2, frames=120, gestures=2)
    output = _extract(data, tmp_path / "cache", "--modality", "pose")
    # 120 frames, 32 every 8: windows at 0, 8, ..., 88 (the last ends on 119, the last frame) -> 12 a
    # sequence, 24 for 2 sequences
    assert "pose@dense: 24 extracted, 0 already cached, 0 failed" in output, output
    assert "SMG" in output and "--units mg" in output, output  # says why, and how to get the clips
    (entry,) = FeatureStore(tmp_path / "cache").find()
    assert entry.config["unit_kind"] == DENSE_KIND and entry.config["dense"] == {"window": 32, "stride": 8}
    assert entry.config["extractor"]["frames"] == 32, entry.config["extractor"]
    clips = _extract(data, tmp_path / "cache", "--modality", "pose", "--units", "mg", "--frames", "8")
    assert "pose: 4 extracted" in clips, clips  # 2 gestures a sequence
    # an iMiGUE-layout dense extract keeps the MViT frames (16 of a 32-frame window) and takes the
    # window's frames for pose only where the window is shorter than the default
    from migue.pipeline.extraction.modalities import get_modality
    from migue.pipeline.extraction.options import ExtractOptions

    dense = ExtractOptions("pose", unit_kind=DENSE_KIND, dense_window=32)
    assert get_modality("pose").resolved(dense)["frames"] == 32
    assert get_modality("pose").resolved(replace(dense, dense_window=128))["frames"] == 64
    assert get_modality("pose").resolved(replace(dense, frames=48))["frames"] == 48
    assert get_modality("rgb").resolved(replace(dense, modality="rgb"))["frames"] == 16
    # MViTv2's frame count is fixed by its released weights (16): a shorter window does not lower it
    assert get_modality("rgb").resolved(replace(dense, modality="rgb", dense_window=8))["frames"] == 16
    assert get_modality("pose").resolved(ExtractOptions("pose"))["frames"] == 64


@pytest.mark.slow
def test_dense_rgb_and_pose_in_one_pass_decode_each_video_once(sample_dir, manifest, tmp_path):
    args = ["--modality", "rgb,pose", "--units", "dense", "--dense-window", "130", "--dense-stride", "130",
            "--arch", "tiny", "--frames", "2", "--size", "112"]
    output = _extract(sample_dir, tmp_path / "cache", *args)
    videos = [v for v in manifest.videos.values() if v.video_path]
    assert {v.frames for v in videos} == {260}  # two windows each: 0-129, 130-259
    found = LINE.search(output)
    assert found, output
    decoded, needed, _, decoded_videos, units = found.groups()
    assert int(decoded_videos) == len(videos) and 0 < int(decoded) <= 1.05 * int(needed), found.group(0)
    assert units == f"rgb@dense {2 * len(videos)}, pose@dense {2 * len(videos)}", found.group(0)
    store = FeatureStore(tmp_path / "cache")
    assert sorted(e.name.split("-")[0] for e in store.find()) == ["pose@dense", "rgb@dense"]
    for e in store.find():
        assert e.config["class_names"][0] == "turtle neck" and len(e.config["class_names"]) == 32
        first = store.reader(e.name).units.query("start == 0")
        assert (first["segments"] != "").all()  # the sample's videos are labelled: their truth travels
    again = _extract(sample_dir, tmp_path / "cache", *args)
    assert "rgb@dense: 0 extracted" in again and "pose@dense: 0 extracted" in again, again


def test_fuse_train_picks_the_dense_entries_for_the_online_task(tmp_path):
    from migue.pipeline.orchestration.entries import select_entries

    store = FeatureStore(tmp_path)
    for kind in ("mg", DENSE_KIND):
        writer = store.writer({"modality": "pose", "backbone": "agcn", "unit_kind": kind})
        writer.write({"unit_id": [f"{kind}:1"], "kind": [kind], "split": ["train"]},
                     {"joint": [np.zeros((1, 2), np.float32)]})
    chosen = select_entries(store, "online", roles=["pose"])
    assert chosen["pose"].name.startswith("pose@dense-agcn-")
    assert select_entries(store, "mg", roles=["pose"])["pose"].name.startswith("pose-agcn-")
    with pytest.raises(LookupError, match="--modality rgb --units dense"):
        select_entries(store, "online", roles=["rgb"])
