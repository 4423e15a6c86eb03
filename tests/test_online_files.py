"""Segment files: bad prediction/truth CSVs are refused naming the file and the row; predictions are
written as one CSV or as the MiGA Track 2 zip (one CSV per sequence); `score_files`; the timeline PNG."""
from __future__ import annotations

import zipfile

import pytest

from migue.fusion.online.files import SegmentFileError, read_segments, score_files, write_csv, write_miga
from migue.fusion.online.score import Segment
from migue.fusion.online.timeline import timeline_figure, write_timeline


def write(tmp_path, text: str, name: str = "pred.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_segments_with_and_without_scores(tmp_path):
    path = write(tmp_path, "video_id,label,start,end,score\nv1,3,10,40,0.9\nv2,walk,0,5,0.25\n")
    assert read_segments(path) == [Segment("v1", 3, 10, 40, 0.9), Segment("v2", "walk", 0, 5, 0.25)]
    # any column order, no score column, extra columns ignored, a whole-number float frame, a blank line
    path = write(tmp_path, "end,start,note,label,video_id\n40,10,x,03,v1\n\n7.0,7,,1,v2\n")
    assert read_segments(path) == [Segment("v1", 3, 10, 40), Segment("v2", 1, 7, 7)]


def test_empty_files_hold_no_segments(tmp_path):
    assert read_segments(write(tmp_path, "")) == []
    assert read_segments(write(tmp_path, "video_id,label,start,end\n")) == []


@pytest.mark.parametrize("text, message", [
    ("video_id,label,start\nv1,1,3\n", "missing column(s) end"),
    ("video,label,begin,end\n", "missing column(s) video_id, start"),
    ("video_id,label,start,end\nv1,1,0,10\nv1,1,3.5,10\n", "row 2 (line 3): start '3.5' is not an integer frame"),
    ("video_id,label,start,end\nv1,1,0,ten\n", "row 1 (line 2): end 'ten' is not an integer frame"),
    ("video_id,label,start,end\nv1,1,nan,10\n", "row 1 (line 2): start 'nan' is not an integer frame"),
    ("video_id,label,start,end\nv1,1,0,10\nv1,1,5,6\nv1,1,40,12\n", "row 3 (line 4): start 40 > end 12"),
    ("video_id,label,start,end,score\nv1,1,0,10,NaN\n", "row 1 (line 2): score 'NaN' is not a finite number"),
    ("video_id,label,start,end,score\nv1,1,0,10,0.5\nv1,1,0,10,\n", "row 2 (line 3): no score, while row 1 has one"),
    ("video_id,label,start,end,score\nv1,1,0,10,high\n", "row 1 (line 2): score 'high' is not a number"),
    ("video_id,label,start,end\nv1,1,-4,10\n", "row 1 (line 2): start -4 is negative"),
    ("video_id,label,start,end\nv1,1,0\n", "row 1 (line 2): 3 values for 4 columns"),
    ("video_id,label,start,end\n,1,0,4\n", "row 1 (line 2): video_id is empty"),
    ("video_id,label,start,end\nv1, ,0,4\n", "row 1 (line 2): label is empty"),
])
def test_bad_files_are_refused_naming_file_and_row(tmp_path, text, message):
    path = write(tmp_path, text, "truth.csv")
    with pytest.raises(SegmentFileError) as caught:
        read_segments(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_a_bad_file_is_a_value_error_for_the_cli(tmp_path):
    assert issubclass(SegmentFileError, ValueError)  # printed as `error: ...` by the CLI


def test_csv_round_trip(tmp_path):
    segments = [Segment("v1", 3, 10, 40, 0.875), Segment("v2", 0, 0, 16, 0.5)]
    path = write_csv(segments, tmp_path / "out" / "online.csv")
    assert path.read_text().splitlines() == ["video_id,label,start,end,score", "v1,3,10,40,0.875", "v2,0,0,16,0.5"]
    assert read_segments(path) == segments
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temp file left beside it
    unscored = [Segment("v1", 3, 10, 40), Segment("v2", 0, 0, 16)]
    assert read_segments(write_csv(unscored, tmp_path / "unscored.csv")) == unscored  # empty score cells


def test_miga_zip_has_one_csv_per_sequence(tmp_path):
    segments = [Segment("s02", 5, 100, 140, 0.5), Segment("s01", 2, 300, 360, 0.9), Segment("s01", 7, 10, 50, 0.3)]
    out = write_miga(segments, tmp_path / "online.zip", videos=["s01", "s02", "s03"])
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["s01.csv", "s02.csv", "s03.csv"]
        s01 = archive.read("s01.csv").decode().splitlines()
        assert s01 == ["GestureID,StartFrame,EndFrame", "7,10,50", "2,300,360"]  # by start frame
        assert archive.read("s02.csv").decode().splitlines() == ["GestureID,StartFrame,EndFrame", "5,100,140"]
        assert archive.read("s03.csv").decode().splitlines() == ["GestureID,StartFrame,EndFrame"]  # none found


def test_miga_class_numbers_and_unknown_videos(tmp_path):
    out = write_miga([Segment("s01", 0, 1, 20)], tmp_path / "folder", gesture_id=lambda c: c + 1, zipped=False)
    assert (out / "s01.csv").read_text().splitlines() == ["GestureID,StartFrame,EndFrame", "1,1,20"]
    with pytest.raises(ValueError, match="video 'x9'"):
        write_miga([Segment("x9", 0, 1, 20)], tmp_path / "z.zip", videos=["s01"])
    assert not (tmp_path / "z.zip").exists()


def test_score_files(tmp_path):
    truth = write(tmp_path, "video_id,label,start,end\nv1,1,0,100\nv1,1,10,90\n", "truth.csv")
    pred = write(tmp_path, "video_id,label,start,end,score\nv1,1,0,100,0.7\n", "pred.csv")
    # strict: one prediction, one of two truths: P 1, R 1/2, F1 2/3; kit: both truths, P 2/1, R 1, F1 4/3
    strict = score_files(pred, truth)
    assert (strict["precision"], strict["recall"], strict["matched"]) == (1.0, 0.5, 1)
    assert strict["f1"] == pytest.approx(2 / 3)
    kit = score_files(pred, truth, matching="kit")
    assert (kit["precision"], kit["recall"], kit["matched"], kit["f1"]) == (2.0, 1.0, 2, pytest.approx(4 / 3))


def test_timeline_names_the_classes(tmp_path):
    truths = [Segment("s01", 0, 10, 60), Segment("s02", 2, 100, 180)]
    preds = [Segment("s01", 0, 12, 58, 0.9), Segment("s02", 1, 100, 170, 0.4)]
    fig = timeline_figure(truths, preds, class_names=["arms crossed", "scratching head", "rubbing eyes"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["0: arms crossed", "1: scratching head", "2: rubbing eyes"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["s01", "s02"]
    path = write_timeline(truths, preds, tmp_path / "run" / "timeline.png", class_names={0: "a", 1: "b", 2: "c"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeline_caps_the_sequences_shown():
    truths = [Segment(f"s{k:02d}", 0, 0, 10) for k in range(5)]
    fig = timeline_figure(truths, [], max_sequences=3)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["s00", "s01", "s02"]
    assert "2 more sequence(s) not shown" in fig.axes[0].get_title()
