"""Rough edges of issue 24 points 4 and 7: `ablate` names its own way of picking an entry and
documents its grid keys; a run whose plugin file moved is one sentence naming the file and
`--plugin`, and evaluates from the file's new place."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRID_KEYS = ("task", "base", "axes", "entries", "one_pass", "plugins")  # those Grid.load accepts (hand-listed)

HEAD = '''
import torch
from torch import nn

from migue.fusion import register_head


@register_head("moved-max", tasks=("mg",), inputs=("rgb", "joint"))
class MovedMax(nn.Module):
    """Max over each stream's tokens, concatenated, one linear layer."""

    def __init__(self, shapes, num_classes):
        super().__init__()
        self.names = list(shapes)
        self.fc = nn.Linear(sum(d for _, d in shapes.values()), num_classes)

    def forward(self, batch):
        return self.fc(torch.cat([batch[n].amax(dim=1) for n in self.names], dim=-1))
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(4, 1, 1), signal=0.6)
    return root


def test_ablate_help_lists_every_grid_key():
    from migue.pipeline.orchestration.ablate import GRID_KEYS as ACCEPTED

    assert set(ACCEPTED) == set(GRID_KEYS)
    out = CliRunner().invoke(main, ["ablate", "--help"]).output
    for key in GRID_KEYS:
        assert f"\n    {key}: " in out, (key, out)


def test_ablate_names_the_grid_key_when_several_entries_fit(cache, tmp_path):
    root = tmp_path / "cache"
    shutil.copytree(cache, root)
    (pose,) = [p for p in root.iterdir() if p.name.startswith("pose-")]
    shutil.copytree(pose, root / f"{pose.name}-copy")
    grid = tmp_path / "grid.yaml"
    grid.write_text("task: mg\nbase: {epochs: 1}\n")
    result = CliRunner().invoke(main, ["ablate", str(grid), "--cache", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "several 'pose' entries" in result.output
    assert "name one with the grid file's key `entries: {pose: NAME}`" in result.output
    assert "--entry" not in result.output


@pytest.fixture(scope="module")
def moved_run(cache, tmp_path_factory) -> tuple[Path, Path, Path, float]:
    """(run trained with a plugin head from a file, the file's old place, its new place, test clips)."""
    root = tmp_path_factory.mktemp("moved")
    old = root / "old" / "moved_max.py"
    old.parent.mkdir()
    old.write_text(HEAD)
    run = root / "run"
    trained = CliRunner().invoke(main, ["fuse-train", "--plugin", str(old), "--task", "mg", "--cache", str(cache),
                                        "--out", str(run), "--fusion", "moved-max", "--epochs", "2"])
    assert trained.exit_code == 0, trained.output
    new = root / "new" / "moved_max.py"
    new.parent.mkdir()
    old.rename(new)
    return run, old, new, json.loads((run / "metrics.json").read_text())["test"]["n"]


def _migue(*args: str) -> subprocess.CompletedProcess:
    """A fresh process: nothing of the plugin is imported."""
    migue = str(Path(sys.executable).with_name("migue"))
    return subprocess.run([migue, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", [["evaluate"], ["evaluate", "--trust-run"], ["predict", "--out", "p.csv"],
                                     ["predict", "--trust-run", "--out", "p.csv"]])
def test_a_moved_plugin_file_is_one_sentence(moved_run, command, tmp_path):
    run, old, _, _ = moved_run
    args = [a if a != "p.csv" else str(tmp_path / a) for a in command]
    result = _migue(args[0], str(run), *args[1:])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"error: {run} was trained with head 'moved-max' from the plugin file {old.resolve()}, which is "
                    "not there any more: pass --plugin NEW_PATH, the file's new place")


def test_a_moved_plugin_run_evaluates_from_the_new_place(moved_run):
    run, _, new, n = moved_run
    result = _migue("predict", str(run), "--plugin", str(new), "--out", str(new.parent / "p.csv"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((new.parent / "p.csv").read_text().splitlines()) == n + 1  # every test clip, and a header


@pytest.fixture(scope="module")
def skeleton_sample(tmp_path_factory) -> Path:
    """A MiGA 2025 sample without videos: 12 videos, 6 of them in train (synth's split)."""
    from migue.synth.sample import write_sample

    root = tmp_path_factory.mktemp("sample")
    write_sample(root, videos=12, frames=260, seed=1, rgb=False)
    return root


def _check(root: Path):
    return CliRunner().invoke(main, ["data", "check", str(root), "--no-skeletons", "--cache", str(root / "cache")])


def test_data_check_names_a_deleted_emotion_label_file(skeleton_sample, tmp_path):
    assert _check(skeleton_sample).exit_code == 0  # the whole sample: no problem
    root = tmp_path / "sample"
    shutil.copytree(skeleton_sample, root)
    (labels,) = root.glob("**/train_label.csv")
    labels.unlink()
    result = _check(root)
    assert result.exit_code == 1, result.output
    assert (f"no train_label.csv under {root}: it holds the emotion labels (video_id,label; 1 win, 0 lose) of the "
            "train videos, so 6 of the 6 have none and the emotion task cannot train on them") in result.output


def test_data_check_names_videos_an_emotion_label_file_lacks(skeleton_sample, tmp_path):
    root = tmp_path / "sample"
    shutil.copytree(skeleton_sample, root)
    (labels,) = root.glob("**/validation_label.csv")
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:-1]) + "\n")  # the last video's row gone
    result = _check(root)
    assert result.exit_code == 1, result.output
    assert f"1 of the 3 val videos have no emotion label in {labels}" in result.output
