"""Grid files are bounded and clear (issue 23, case 10): YAML aliases refused, runs capped (with
--max-runs to raise the cap), every shape error a sentence naming the key and the file, every run
folder inside --out, and a grid whose every run fails still gets its summary."""
from __future__ import annotations

import time

import pandas as pd
import pytest
from click.testing import CliRunner

from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main
from migue.pipeline.orchestration.ablate import MAX_RUNS, Grid, run_ablation, run_id

BOMB = """task: mg
base:
  a: &a [x, x, x, x, x, x, x, x, x]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
axes: {seed: [0]}
"""


def _grid(tmp_path, text):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Old code: a 1 KB file of nested aliases expanded to gigabytes (json.dumps of the base) and died."""
    path = _grid(tmp_path, BOMB)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^{path}: YAML aliases are not allowed in a grid file \(\*a at line 4\)"):
        Grid.load(path)
    assert time.perf_counter() - started < 2


def test_a_huge_grid_is_refused_before_it_is_expanded(tmp_path):
    """Old code: 10^6 runs hung without output while the runs were expanded."""
    axes = ", ".join(f"k{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" for i in range(6))
    path = _grid(tmp_path, f"task: mg\naxes: {{{axes}}}\n")
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^{path}: the grid has 1000000 runs \(k0 10 x k1 10 x .*\), more than "
                                         rf"the cap of {MAX_RUNS}; raise it with --max-runs"):
        Grid.load(path)
    assert time.perf_counter() - started < 2
    small = _grid(tmp_path, "task: mg\naxes: {lr: [0.1, 0.2, 0.3], seed: [0, 1]}\n")
    with pytest.raises(ValueError, match="the grid has 6 runs"):
        Grid.load(small, max_runs=5)
    assert len(Grid.load(small, max_runs=6).runs()) == 6
    result = CliRunner().invoke(main, ["ablate", str(small), "--out", str(tmp_path / "abl"), "--max-runs", "5"])
    assert result.exit_code == 2 and "the grid has 6 runs" in result.output and "--max-runs" in result.output
    assert not (tmp_path / "abl").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("task: mg\naxes: [head, lr]\n", "'axes' must be a mapping of setting names to lists of values, got a list"),
    ("task: mg\nbase: [1, 2]\n", "'base' must be a mapping of setting names to values, got a list"),
    ("task: [mg]\n", "'task' must be one of mg, emotion, online, got ['mg']"),
    ("task: gestures\n", "'task' must be one of mg, emotion, online, got 'gestures'"),
    ("task: mg\nentries: [rgb]\n", "'entries' must be a mapping of modality to entry name, got a list"),
    ("task: mg\naxes: {1: [a]}\n", "'axes' must be a mapping of setting names to lists of values, got the key 1"),
    ("task: mg\nbase: {null: 3}\n", "'base' must be a mapping of setting names to values, got the key None"),
    ("- task\n- mg\n", "a grid file is a mapping with 'task' and optional 'base', 'axes', 'entries', 'one_pass', "
                       "'plugins', got a list"),
    ("task: mg\none_pass: maybe\n", "'one_pass' must be true or false, got 'maybe'"),
    ("task: mg\nplugins: heads.py\n", "'plugins' must be a list of module names or .py files, got 'heads.py'"),
    ("task: mg\nbase: {epochs: 1}\nextra: 1\n", "a grid needs 'task' and may have 'base', 'axes', 'entries', "
                                                "'one_pass', 'plugins'; unexpected keys ['extra']"),
])
def test_every_shape_error_is_a_sentence_naming_the_key_and_the_file(tmp_path, text, message):
    path = _grid(tmp_path, text)
    with pytest.raises(ValueError) as info:
        Grid.load(path)
    assert str(info.value) == f"{path}: {message}"
    result = CliRunner().invoke(main, ["ablate", str(path), "--out", str(tmp_path / "abl")])
    assert result.exit_code == 2 and result.output.strip() == f"error: {path}: {message}", result.output


@pytest.mark.parametrize("config", [{"head": "probe-linear-rgb", "seed": "/../../x"},
                                    {"head": "../../../evil", "seed": 0}, {"head": "..", "seed": ".."},
                                    {"head": "a/b\\c\x00d", "seed": ["/", ".."]}])
def test_run_names_are_plain_folder_names(config):
    name = run_id(config)
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".") and len(name) <= 64


def test_a_grid_whose_every_run_fails_gets_its_summary_and_stays_inside_out(tmp_path, dask_cluster):
    """Old code: the summary crashed (KeyError) when no run finished, and a seed of /../../x made
    a run folder outside --out."""
    cache = tmp_path / "cache"
    write_mg(cache, per_class=(2, 1, 1))
    out = tmp_path / "a" / "b" / "abl"
    grid = Grid(task="mg", base={"epochs": 1}, axes={"head": ["probe-linear-rgb", "no-such-head"],
                                                     "seed": ["/../../x", "../y"]})
    before = set((tmp_path / "a").rglob("*"))
    table = run_ablation(grid, cache, out, scheduler=dask_cluster.scheduler_address)
    assert len(table) == 4 and (table["status"] == "failed").all()
    assert "4 runs, 4 failed" in (out / "results.md").read_text()
    assert len(pd.read_csv(out / "results.csv")) == 4
    assert "setting seed='/../../x': expected an integer" in (out / "results.md").read_text()
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())  # refused before any task started
    made = {p for p in set((tmp_path / "a").rglob("*")) - before if not p.is_relative_to(out)}
    assert made <= {tmp_path / "a" / "b"}, made  # nothing but out's own parents
    assert all((out / "runs" / rid).resolve().parent == (out / "runs").resolve() for rid in table["run"])


def test_a_deeply_nested_grid_is_one_sentence(tmp_path):
    """Old code: 5000 nested `[` raised RecursionError from the YAML composer (a traceback)."""
    path = _grid(tmp_path, "task: mg\nbase: {a: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(ValueError, match=rf"^{path}: nested more than \d+ levels deep"):
        Grid.load(path)
    result = CliRunner().invoke(main, ["ablate", str(path), "--out", str(tmp_path / "abl")])
    assert result.exit_code == 2 and "nested more than" in result.output, result.output


def test_a_grid_that_is_not_a_regular_file_is_refused(tmp_path):
    """Old code: a FIFO (or /dev/zero) reports size 0 and read_text() blocked or read without end."""
    import os

    fifo = tmp_path / "grid.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^{fifo}: not a regular file"):
        Grid.load(fifo)
    with pytest.raises(ValueError, match=r"^/dev/zero: not a regular file"):
        Grid.load("/dev/zero")
    assert time.perf_counter() - started < 2


def test_a_refused_run_config_is_its_message_unquoted():
    """Old code: the results row read `KeyError: "unknown config keys ..."` (KeyError's quoted str)."""
    from migue.pipeline.orchestration.ablate import _config_problem

    problem = _config_problem("mg", {"head": "probe-linear-rgb", "no_such_key": 1})
    assert problem.startswith("unknown config keys ['no_such_key'] for head 'probe-linear-rgb'"), problem
    assert _config_problem("mg", {"batch_size": 0}).startswith("setting batch_size=0: expected an integer >= 1")
