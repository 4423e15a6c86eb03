"""`ablate` into an --out that holds results (issue 23, case 7): the same grid resumes there; another
grid is refused (results.csv, results.md and grid.json kept) unless --overwrite."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main
from migue.pipeline.orchestration.ablate import Grid, run_ablation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

A = {"task": "mg", "base": {"epochs": 1, "batch_size": 64}, "axes": {"head": ["probe-linear-rgb"], "seed": [0]}}
B = {**A, "axes": {"head": ["probe-linear-rgb"], "seed": [1]}}
RESULTS = ("results.csv", "results.md", "grid.json")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(2, 1, 1))
    return root


def _results(out):
    return {name: (out / name).read_bytes() for name in RESULTS}


def test_another_grid_into_the_same_out_is_refused_unless_overwrite(cache, tmp_path, dask_cluster):
    """Old code: the second grid silently replaced the first one's results.csv, results.md and grid.json."""
    out, scheduler = tmp_path / "abl", dask_cluster.scheduler_address
    run_ablation(Grid(**A), cache, out, scheduler=scheduler)
    again = run_ablation(Grid(**A), cache, out, scheduler=scheduler)  # the same grid: resumes (nothing to run)
    assert (again["status"] == "ok").all() and len(again) == 1
    before = _results(out)
    with pytest.raises(ValueError, match=rf"^{out} holds the results of another grid \(it differs in axes\); "
                                         r"pass --overwrite to replace them, or choose another --out"):
        run_ablation(Grid(**B), cache, out, scheduler=scheduler)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(B))
    refused = CliRunner().invoke(main, ["ablate", str(tmp_path / "b.yaml"), "--cache", str(cache), "--out", str(out),
                                        "--scheduler", scheduler])
    assert refused.exit_code == 2 and "holds the results of another grid" in refused.output, refused.output
    assert _results(out) == before
    replaced = CliRunner().invoke(main, ["ablate", str(tmp_path / "b.yaml"), "--cache", str(cache), "--out", str(out),
                                         "--scheduler", scheduler, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert pd.read_csv(out / "results.csv")["seed"].tolist() == [1]
    assert Grid(**B).__dict__ == {**Grid(**B).__dict__, **yaml.safe_load((out / "grid.json").read_text())}


def test_results_of_an_unknown_grid_are_not_replaced(cache, tmp_path, dask_cluster):
    out = tmp_path / "abl"
    out.mkdir()
    (out / "results.csv").write_text("run,status\nold,ok\n")
    with pytest.raises(ValueError, match=rf"^{out} holds results.csv of an unknown grid \(no grid.json\)"):
        run_ablation(Grid(**A), cache, out, scheduler=dask_cluster.scheduler_address)
    assert (out / "results.csv").read_text() == "run,status\nold,ok\n"


def test_overwrite_keeps_the_old_results_when_the_grid_cannot_start(tmp_path):
    """Old code: --overwrite removed the old grid's reports before the entries were looked up, so a
    wrong --cache lost them."""
    out = tmp_path / "abl"
    out.mkdir()
    (out / "results.csv").write_text("run,status\nold,ok\n")
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(A))
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    result = CliRunner().invoke(main, ["ablate", str(tmp_path / "a.yaml"), "--cache", str(empty), "--out", str(out),
                                       "--overwrite"])
    assert result.exit_code == 2, result.output
    assert (out / "results.csv").read_text() == "run,status\nold,ok\n"
    assert not (out / "grid.json").exists()
