"""`migue score online`: the last line is the JSON of the metric (hand-worked case); bad files are one
`error:` line naming the file and row; its help imports no torch."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from migue.pipeline.cli import main


@pytest.fixture
def files(tmp_path):
    # nested truths [0, 100] and [10, 90] of one class; one prediction [0, 100]
    truth = tmp_path / "truth.csv"
    truth.write_text("video_id,label,start,end\nv1,1,0,100\nv1,1,10,90\nv2,4,0,50\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("video_id,label,start,end,score\nv1,1,0,100,0.7\nv2,3,0,50,0.9\n")
    return pred, truth


def test_last_line_is_the_metric_as_json(files):
    pred, truth = files
    result = CliRunner().invoke(main, ["score", "online", "--pred", str(pred), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    # strict: 1 match of 2 predictions and 3 truths: P 1/2, R 1/3, F1 2 * (1/6) / (5/6) = 0.4
    assert last["matched"] == 1 and last["predictions"] == 2 and last["truths"] == 3
    assert (last["precision"], last["recall"], last["f1"]) == pytest.approx((0.5, 1 / 3, 0.4))
    assert last["matching"] == "strict" and last["iou"] == 0.3
    assert "all" in result.output and "mAP @0.3" in result.output


def test_kit_matching_and_threshold(files):
    pred, truth = files
    result = CliRunner().invoke(main, ["score", "online", "--pred", str(pred), "--truth", str(truth),
                                       "--matching", "kit"])
    # kit: the one v1 prediction matches both v1 truths: correct 2; P 2/2, R 2/3, F1 2 * (2/3) / (5/3) = 0.8
    last = json.loads(result.output.strip().splitlines()[-1])
    assert (last["matched"], last["precision"], last["recall"], last["f1"]) == (2, 1.0, pytest.approx(2 / 3),
                                                                               pytest.approx(0.8))
    # at tIoU > 0.85 the nested truth (tIoU 0.8) no longer matches under kit
    result = CliRunner().invoke(main, ["score", "online", "--pred", str(pred), "--truth", str(truth),
                                       "--matching", "kit", "--iou", "0.85"])
    assert json.loads(result.output.strip().splitlines()[-1])["matched"] == 1


def test_a_bad_file_is_one_error_line(tmp_path, files):
    _, truth = files
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,label,start,end\nv1,1,0,10\nv1,1,40,12\n")
    result = CliRunner().invoke(main, ["score", "online", "--pred", str(bad), "--truth", str(truth)])
    assert result.exit_code == 2
    assert f"error: {bad}, row 2 (line 3): start 40 > end 12" in result.output


def test_rules_named_in_the_cli_are_the_metric_s():
    from migue.fusion.online.score import MATCHING
    from migue.pipeline.cli.score import MATCHING as CLI_MATCHING

    assert CLI_MATCHING == MATCHING


def test_help_imports_no_torch():
    code = ("import sys; from migue.pipeline.cli import main\n"
            "try:\n    main(['score', 'online', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--matching [strict|kit]" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"
