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
