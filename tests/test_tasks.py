"""A task is one registered object (issue 22 point 1): a task written outside the repo trains through
`--plugin`, `--task` lists the registered tasks, an unknown task is one sentence, and no code
branches on a task's name."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from migue.cache.labels import MG_CLASS_NAMES
from migue.fusion import get_task, list_heads, list_tasks, resolve_config
from migue.fusion.synthetic import write_mg
from migue.fusion.tasks import Task, UnknownTaskError
from migue.pipeline.cli import main
from migue.pipeline.orchestration.ablate import Grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
TASK_FILE = '''
from migue.fusion.tasks import Task, register_task


def thirds(units):
    """MG class index c -> c % 3 (unknown, -1, stays unknown)."""
    label = units["mg_label"]
    return label.where(label < 0, label % 3)


register_task(Task(
    name="mg-thirds", description="MG clips in three coarse groups (a plugin task)",
    unit_kind="mg", items="clip", labels=thirds, class_names=("upper", "middle", "lower"),
    loss="cross-entropy", metrics=("macro_f1", "top1"), default_head="probe-linear-pose-joint",
    modalities=("rgb", "pose"), streams=("rgb", "joint", "bone"), figures=("curves", "per_class"),
))
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Six MG classes, 4 / 1 / 1 clips each in train / val / test: test labels 0..5, thirds 0,1,2,0,1,2."""
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(4, 1, 1), num_classes=6, signal=0.8)
    return root


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The task file; its task leaves the registry after this module (other modules list the built-ins)."""
    path = tmp_path_factory.mktemp("elsewhere") / "thirds_task.py"
    path.write_text(TASK_FILE)
    yield path
    from migue.fusion.tasks import base

    base._TASKS.pop("mg-thirds", None)


@pytest.fixture(scope="module")
def run(cache, plugin, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "thirds"
    result = CliRunner().invoke(main, ["fuse-train", "--plugin", str(plugin), "--task", "mg-thirds",
                                       "--cache", str(cache), "--out", str(out), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    return out


def test_a_task_in_a_file_outside_the_repo_trains_through_plugin(run, plugin):
    record = json.loads((run / "config.json").read_text())
    assert record["task"] == "mg-thirds" and record["task_plugin"] == str(plugin.resolve())
    assert record["config"]["head"] == "probe-linear-pose-joint"  # the task's default head
    assert record["config"]["num_classes"] == 3 and record["config"]["monitor"] == "macro_f1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "mg-thirds" and metrics["test"]["n"] == 6
    assert set(metrics["test"]) == {"n", "macro_f1", "top1", "loss", "notes"}  # its metrics, not mg's
    assert metrics["chance"]["uniform"] == pytest.approx(1 / 3)
    per_class = pd.read_csv(run / "per_class.csv")
    assert per_class["class"].tolist() == ["upper", "middle", "lower"]
    assert per_class["support"].tolist() == [2, 2, 2]  # test classes 0..5 -> thirds 0,1,2,0,1,2
    assert not (run / "confusion.png").exists()  # its figures: curves and per_class only
    assert (run / "curves.png").is_file()


def test_the_plugin_task_is_listed_and_its_heads_chosen_by_what_it_reads(plugin):
    shown = CliRunner().invoke(main, ["fuse-train", "--plugin", str(plugin), "--help"])
    assert shown.exit_code == 0, shown.output
    assert "[mg|emotion|online|mg-thirds]" in shown.output
    assert re.search(r"mg-thirds\s+MG clips in three coarse groups \(a plugin task\).*\(plugin: ", shown.output)
    heads = list_heads("mg-thirds")  # clips with rgb, joint, bone: cmtf and the baselines over them fit
    assert {"cmtf", "late", "concat", "probe-linear-rgb", "late-pose"} <= set(heads)
    assert not {"interfusion", "probe-linear-face"} & set(heads)


def test_a_plugin_task_run_evaluates_and_predicts_in_a_fresh_process(run, plugin, tmp_path):
    migue = str(Path(sys.executable).with_name("migue"))  # a fresh process: the plugin is not imported
    refused = subprocess.run([migue, "evaluate", str(run)], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and f"needs the plugin {plugin.resolve()} (task 'mg-thirds')" in refused.stderr
    evaluated = subprocess.run([migue, "evaluate", str(run), "--json", "--plugin", str(plugin)], capture_output=True,
                               text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    saved = json.loads((run / "metrics.json").read_text())["test"]
    assert json.loads(evaluated.stdout)["macro_f1"] == pytest.approx(saved["macro_f1"])
    predicted = CliRunner().invoke(main, ["predict", str(run), "--plugin", str(plugin), "--out",
                                          str(tmp_path / "p.csv")])
    assert predicted.exit_code == 0, predicted.output
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns[-3:]) == ["p_00", "p_01", "p_02"] and table["label"].between(0, 2).all()
    no_format = CliRunner().invoke(main, ["predict", str(run), "--plugin", str(plugin), "--format", "miga",
                                          "--out", str(tmp_path / "m.csv")])
    assert no_format.exit_code == 2
    assert "task 'mg-thirds' has no submission format 'miga'; it writes: none" in no_format.output
    assert not (tmp_path / "m.csv").exists()


def test_task_choices_list_the_registered_tasks_and_refuse_others(cache, tmp_path):
    shown = CliRunner().invoke(main, ["fuse-train", "--help"])
    assert shown.exit_code == 0 and "--task [mg|emotion|online" in shown.output  # then any plugin's
    assert re.search(r"\bonline\s+online micro-gesture recognition", shown.output)
    refused = CliRunner().invoke(main, ["fuse-train", "--task", "gestures", "--cache", str(cache),
                                        "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2
    assert "'gestures' is not a task; choose from: mg, emotion, online" in refused.output  # (, plugin tasks)
    assert not (tmp_path / "run").exists()


def test_an_unknown_task_is_one_sentence_naming_the_known_ones(tmp_path):
    for call in (lambda: get_task("gestures"), lambda: resolve_config("gestures"), lambda: list_heads("gestures")):
        with pytest.raises(UnknownTaskError, match=r"unknown task 'gestures'; known tasks: mg, emotion, online\b"):
            call()
    grid = tmp_path / "grid.yaml"
    grid.write_text("task: gestures\n")
    with pytest.raises(ValueError, match=r"'task' must be one of mg, emotion, online(, [\w-]+)*, got 'gestures'"):
        Grid.load(grid)


def test_a_grid_names_a_plugin_task_through_its_plugins(plugin, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"task: mg-thirds\nplugins: [{plugin}]\naxes: {{seed: [0, 1]}}\n")
    assert Grid.load(grid).task == "mg-thirds"


def test_the_built_in_tasks_declare_what_the_code_used_to_branch_on():
    mg, emotion, online = (get_task(n) for n in ("mg", "emotion", "online"))
    assert list(list_tasks())[:3] == ["mg", "emotion", "online"]
    assert (mg.unit_kind, mg.items, mg.num_classes, mg.class_names, mg.default_head) == (
        "mg", "clip", 32, MG_CLASS_NAMES, "cmtf")
    assert mg.submissions["miga"].columns == ("Id", "Target") and mg.submissions["miga"].file_name == "prediction.csv"
    assert (emotion.unit_kind, emotion.items, emotion.binary, emotion.class_names, emotion.default_head) == (
        "window", "video", True, ("lose", "win"), "interfusion")
    assert emotion.submissions["miga"].columns == ("video_id", "label")
    assert (online.unit_kind, online.default_head, online.monitored) == ("dense", "detect", "f1@0.3")
    assert online.submissions["miga"].columns == ("GestureID", "StartFrame", "EndFrame")
    assert resolve_config("emotion")["num_classes"] == 2 and resolve_config("mg")["num_classes"] == 32


def test_a_task_that_contradicts_itself_is_refused_when_declared():
    base = dict(name="bad", description="x", unit_kind="mg", items="clip", labels="mg_label",
                class_names=("a", "b", "c"), loss="cross-entropy", metrics=("top1",), default_head="cmtf",
                modalities=("rgb",), streams=("rgb",))
    Task(**base)
    for change, message in [({"loss": "hinge"}, "loss 'hinge' must be one of"),
                            ({"items": "frames"}, "items 'frames' must be one of"),
                            ({"class_names": ("a", "a")}, "at least two distinct class names"),
                            ({"loss": "binary-cross-entropy"}, "a binary loss needs exactly two classes, got 3"),
                            ({"monitor": "roc_auc"}, "monitor 'roc_auc' is not among its metrics")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Task(**{**base, **change})


def test_no_code_branches_on_a_task_name():
    """Code asks the task (`get_task(name).unit_kind`), never `if task == "mg"`: none left in the package."""
    pattern = re.compile(r"""task\s*(==|!=)\s*["']|["']\s*(==|!=)\s*task\b|task\s+(not\s+)?in\s+\(["']""")
    found = [f"{path.relative_to(REPO)}:{n}" for folder in ("cache", "fusion", "pipeline", "extractors", "common")
             for path in sorted((REPO / folder).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
