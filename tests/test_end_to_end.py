"""From synth to metrics through the command line, as a researcher runs it (tiny MViT)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from scipy.stats import binomtest

from migue.fusion import list_heads
from migue.pipeline.cli import main

pytestmark = pytest.mark.slow

MG_CHANCE = 1 / 32
# The fewest videos at which every head below still beats chance on the test split: with 16 or 20
# videos CMTF stays at chance (5 steps an epoch; patience stops it first), measured in
# benchmarks/RESULTS.md ("Test suite"). The demo's own default.
E2E_VIDEOS = 30


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """`migue demo --quick` (8-frame clips, 2 face crops) with the tiny MViT over E2E_VIDEOS videos."""
    workdir = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", "--workdir", str(workdir), "--arch", "tiny", "--quick",
                                       "--videos", str(E2E_VIDEOS)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (workdir / "demo.out").write_text(result.output)
    return workdir


def test_demo_shows_its_stages_and_decodes_each_video_once(demo_dir):
    out = (demo_dir / "demo.out").read_text()
    stages = [line.split("]")[0] for line in out.splitlines() if line.startswith("demo [")]
    assert stages == [f"demo [{k}/10" for k in range(1, 11)], out
    extract = next(line for line in out.splitlines() if line.startswith("extract: decoded "))
    decoded, needed = (int(x) for x in extract.split("decoded ")[1].split(" frames needed")[0].split(" of "))
    assert decoded <= 1.05 * needed and f"{E2E_VIDEOS} videos" in extract, extract


def test_demo_writes_a_summary_with_every_run(demo_dir):
    summary = json.loads((demo_dir / "summary.json").read_text())
    heads = {(r["task"], r["head"]) for r in summary["results"]}
    assert {("mg", "cmtf"), ("emotion", "interfusion")} <= heads
    assert "Micro-gesture" in (demo_dir / "summary.md").read_text()
    assert ("online", "detect") in heads  # the online track's one line (its own SMG sample)
    from migue.fusion.tasks import get_task

    for run in (demo_dir / "runs").iterdir():
        figures = get_task(json.loads((run / "config.json").read_text())["task"]).figures
        pictures = tuple(f"{f}.png" for f in figures if f != "per_class")  # curves, confusion | timeline
        for name in ("config.json", "metrics.json", "history.csv", "head.pt", *pictures):
            assert (run / name).is_file(), f"{run.name} lacks {name}"


def test_heads_beat_chance_on_the_planted_signal(demo_dir):
    results = {r["head"]: r for r in json.loads((demo_dir / "summary.json").read_text())["results"]}
    assert results["cmtf"]["test top-1"] >= 2 * MG_CHANCE, results["cmtf"]
    assert results["interfusion"]["test accuracy"] >= 0.75, results["interfusion"]


# One head of each baseline family (linear probe, MLP probe, late fusion, concat), over every
# stream a task reads: a fixed list, so a new head does not make the suite slower.
BASELINES = {"mg": ["probe-linear-rgb", "probe-mlp-pose-joint", "probe-linear-pose-bone", "late", "concat"],
             "emotion": ["probe-linear-face", "probe-mlp-context", "late", "concat"]}


def _family(head: str) -> str:
    return next((f for f in ("probe-linear", "probe-mlp") if head.startswith(f + "-")), head)


def test_the_fixed_baseline_list_names_one_head_of_each_family():
    for task, heads in BASELINES.items():
        assert set(heads) <= set(list_heads(task)), task
        assert {_family(h) for h in heads} == {"probe-linear", "probe-mlp", "late", "concat"}, task


@pytest.mark.parametrize("task", ["mg", "emotion"])
def test_every_baseline_beats_chance_on_the_generated_sample(demo_dir, tmp_path, task, dask_cluster):
    """One head of each baseline family, trained on the demo's cache (probes in one pass, two
    seeds), is better than chance on the test split: one-sided binomial test at 5% on the
    correct predictions of both seeds together."""
    baselines = BASELINES[task]
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"task": task, "one_pass": True, "axes": {"head": baselines, "seed": [0, 1]}}))
    result = CliRunner().invoke(main, ["ablate", str(grid), "--cache", str(demo_dir / "cache"),
                                       "--out", str(tmp_path / "abl"), "--scheduler", dask_cluster.scheduler_address],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "abl" / "results.csv")
    assert sorted(set(table["head"])) == sorted(baselines) and (table["status"] == "ok").all()
    chance = MG_CHANCE if task == "mg" else 0.5
    for head, runs in table.groupby("head"):
        correct = total = 0
        for run in runs["run"]:
            test = json.loads((tmp_path / "abl" / "runs" / run / "metrics.json").read_text())["test"]
            correct += round((test["top1"] if task == "mg" else test["accuracy"]) * test["n"])
            total += test["n"]
        p = binomtest(correct, total, chance, alternative="greater").pvalue
        assert p < 0.05, f"{head}: {correct} of {total} test items right, chance {chance:.3f} (p={p:.3f})"


def test_cache_ls_lists_the_four_modalities(demo_dir):
    out = CliRunner().invoke(main, ["cache", "ls", "--cache", str(demo_dir / "cache")]).output
    for modality in ("rgb", "context", "pose", "face"):
        assert f" {modality} " in out, out


def test_evaluate_recomputes_the_saved_test_metrics(demo_dir):
    run = demo_dir / "runs" / "mg-cmtf"
    result = CliRunner().invoke(main, ["evaluate", str(run), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    saved = json.loads((run / "metrics.json").read_text())["test"]
    assert again["top1"] == pytest.approx(saved["top1"]) and again["top5"] == pytest.approx(saved["top5"])


def test_predict_writes_a_miga_submission(demo_dir, tmp_path):
    out = tmp_path / "submission.csv"
    result = CliRunner().invoke(main, ["predict", str(demo_dir / "runs" / "emotion-interfusion"),
                                       "--format", "miga", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype={"video_id": str})
    assert list(table.columns) == ["video_id", "label"] and set(table["label"]) <= {0, 1}
    test_videos = pd.read_csv(demo_dir / "data" / "imigue_data_phase2" / "test_label.csv", dtype={"video_id": str})
    assert sorted(table["video_id"]) == sorted(test_videos["video_id"])


def test_fuse_train_from_the_command_line_with_a_baseline(demo_dir, tmp_path):
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(demo_dir / "cache"),
                                       "--fusion", "late-pose", "--out", str(tmp_path / "run"),
                                       "--epochs", "5", "--set", "lr=1e-3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["head"] == "late-pose" and config["config"]["lr"] == 1e-3


def test_unknown_head_is_refused_with_the_list(demo_dir, tmp_path):
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(demo_dir / "cache"),
                                       "--fusion", "nope", "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and "cmtf" in result.output
