"""Heads anyone can add: a head in a file outside the repo trains through `--plugin` on a real
cache, is listed in `fuse-train --help`, loads from a grid's `plugins:` and from the `migue.heads`
entry-point group; a head that breaks the contract is refused before training."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from migue.fusion import get_head, list_heads, load_plugins, register_head
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main
from migue.pipeline.orchestration.ablate import Grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEAD_FILE = '''
import torch
from torch import nn

from migue.fusion import register_head


@register_head("{name}", tasks=("mg",), inputs=("rgb", "joint"))
class MaxConcat(nn.Module):
    """Max over each stream's tokens, concatenated, one linear layer (a plugin head)."""

    def __init__(self, shapes, num_classes, scale: float = 1.0):
        super().__init__()
        self.names, self.scale = list(shapes), scale
        self.fc = nn.Linear(sum(d for _, d in shapes.values()), num_classes)

    def forward(self, batch):
        return self.fc(torch.cat([batch[n].amax(dim=1) for n in self.names], dim=-1) * self.scale){tail}
'''


def write_head(folder, name, tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(HEAD_FILE.format(name=name, tail=tail))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(4, 1, 1), signal=0.6)
    return root


def test_a_head_in_a_file_outside_the_repo_trains_through_plugin(cache, tmp_path):
    plugin = write_head(tmp_path / "elsewhere", "plugin-max-concat")
    runner = CliRunner()
    shown = runner.invoke(main, ["fuse-train", "--plugin", str(plugin), "--help"])
    assert shown.exit_code == 0 and "plugin-max-concat" in shown.output and "(plugin:" in shown.output
    result = runner.invoke(main, ["fuse-train", "--plugin", str(plugin), "--task", "mg", "--cache", str(cache),
                                  "--out", str(tmp_path / "run"), "--fusion", "plugin-max-concat", "--epochs", "3",
                                  "--set", "scale=0.5"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["config"]["head"] == "plugin-max-concat" and record["config"]["scale"] == 0.5
    assert set(record["head"]["inputs"]) == {"rgb", "joint"}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["n"] > 0


def test_set_names_only_keys_the_head_reads(cache, tmp_path):
    plugin = write_head(tmp_path / "elsewhere", "plugin-strict")
    result = CliRunner().invoke(main, ["fuse-train", "--plugin", str(plugin), "--task", "mg", "--cache", str(cache),
                                       "--out", str(tmp_path / "run"), "--fusion", "plugin-strict",
                                       "--set", "depth=3"])
    assert result.exit_code == 2
    assert "unknown config keys ['depth'] for head 'plugin-strict': it reads scale" in result.output
    assert not (tmp_path / "run" / "history.csv").exists()


def test_a_head_with_the_wrong_output_is_refused_before_training(cache, tmp_path):
    wrong = "\n\n    def __call__(self, batch):\n        return super().__call__(batch)[:, :3]  # 3 logits, not 32"
    plugin = write_head(tmp_path / "elsewhere", "plugin-wrong-shape", tail=wrong)
    result = CliRunner().invoke(main, ["fuse-train", "--plugin", str(plugin), "--task", "mg", "--cache", str(cache),
                                       "--out", str(tmp_path / "run"), "--fusion", "plugin-wrong-shape"])
    assert result.exit_code == 2
    message = result.output
    assert re.search(r"head 'plugin-wrong-shape' returned logits of shape \((\d+), 3\) for a mg batch of \1; "
                     r"expected \(\1, 32\)", message), message
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())  # no half run folder


def test_a_head_with_non_finite_logits_is_refused_before_training(cache, tmp_path):
    nan = "\n\n    def __call__(self, batch):\n        return super().__call__(batch) * float('nan')"
    plugin = write_head(tmp_path / "elsewhere", "plugin-nan", tail=nan)
    result = CliRunner().invoke(main, ["fuse-train", "--plugin", str(plugin), "--task", "mg", "--cache", str(cache),
                                       "--out", str(tmp_path / "run"), "--fusion", "plugin-nan"])
    assert result.exit_code == 2 and "head 'plugin-nan' returned non-finite logits" in result.output, result.output


def test_a_plugin_run_evaluates_and_predicts_in_a_fresh_process(cache, tmp_path):
    """The run folder records the plugin's file; `migue evaluate` / `predict` load it when the user
    names it again (--plugin) or trusts the run (--trust-run), never by themselves."""
    plugin = write_head(tmp_path / "elsewhere", "plugin-reload")
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, ["fuse-train", "--plugin", str(plugin), "--task", "mg", "--cache", str(cache),
                                        "--out", str(run), "--fusion", "plugin-reload", "--epochs", "2"])
    assert trained.exit_code == 0, trained.output
    assert json.loads((run / "config.json").read_text())["head"]["plugin"] == str(plugin.resolve())
    saved = json.loads((run / "metrics.json").read_text())["test"]
    migue = str(Path(sys.executable).with_name("migue"))  # a fresh process: the plugin is not imported
    evaluated = subprocess.run([migue, "evaluate", str(run), "--json", "--plugin", str(plugin)], capture_output=True,
                               text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["top1"] == pytest.approx(saved["top1"])
    predicted = subprocess.run([migue, "predict", str(run), "--trust-run", "--out", str(tmp_path / "p.csv")],
                               capture_output=True, text=True, timeout=600)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert len((tmp_path / "p.csv").read_text().splitlines()) == saved["n"] + 1


def test_a_run_folder_does_not_import_the_plugin_it_names(cache, tmp_path):
    """Issue 23 case 8. Old code: `migue evaluate RUN` imported whatever file RUN/config.json
    named, so copying someone's run folder was enough to execute their code."""
    trusted = write_head(tmp_path / "mine", "plugin-trust-mine")
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, ["fuse-train", "--plugin", str(trusted), "--task", "mg", "--cache", str(cache),
                                        "--out", str(run), "--fusion", "plugin-trust-mine", "--epochs", "2"])
    assert trained.exit_code == 0, trained.output
    marker = tmp_path / "it-ran"  # the foreign file's side effect, were it imported
    foreign = write_head(tmp_path / "theirs", "plugin-trust-theirs",
                         tail=f"\n\nimport pathlib\npathlib.Path({str(marker)!r}).write_text('ran')")
    record = json.loads((run / "config.json").read_text())  # a run folder from someone else: it names their file
    record["config"]["head"] = record["head"]["name"] = "plugin-trust-theirs"
    record["head"]["plugin"] = str(foreign)
    (run / "config.json").write_text(json.dumps(record))
    for command in (["evaluate", str(run)], ["predict", str(run), "--out", str(tmp_path / "p.csv")]):
        refused = CliRunner().invoke(main, command)
        assert refused.exit_code == 2, refused.output
        assert f"needs the plugin {foreign}" in refused.output and "--plugin" in refused.output \
            and "--trust-run" in refused.output, refused.output
        assert len(refused.output.strip().splitlines()) == 1
        assert not marker.exists() and "plugin-trust-theirs" not in list_heads()
    trusting = CliRunner().invoke(main, ["evaluate", str(run), "--trust-run", "--json"])
    assert trusting.exit_code == 0, trusting.output
    assert marker.exists() and "top1" in json.loads(trusting.output)


def test_unknown_inputs_and_tasks_are_refused_at_registration():
    with pytest.raises(ValueError, match=r"unknown inputs \['depth'\]"):
        register_head("plugin-bad-input", tasks=("mg",), inputs=("rgb", "depth"))
    with pytest.raises(ValueError, match="task 'mg' has no input 'face'"):
        register_head("plugin-bad-task", tasks=("mg",), inputs=("face",))
    assert "plugin-bad-input" not in list_heads()


def test_a_plugin_that_cannot_be_imported_is_a_clear_cli_error(tmp_path):
    result = CliRunner().invoke(main, ["fuse-train", "--plugin", str(tmp_path / "missing.py"), "--help"])
    assert result.exit_code == 2 and "--plugin" in result.output and "missing.py" in result.output


def test_a_grid_names_plugins_and_its_worker_loads_them(cache, tmp_path):
    folder = tmp_path / "grids"
    write_head(folder, "plugin-grid-head")
    grid_file = folder / "grid.yaml"
    grid_file.write_text("task: mg\nplugins: [plugin_grid_head.py]\nbase: {epochs: 2}\n"
                         "axes: {head: [plugin-grid-head]}\n")
    grid = Grid.load(grid_file)
    assert grid.plugins == [str(folder / "plugin_grid_head.py")]
    entries = {m: str(p) for m, p in ((e.modality, cache / e.name) for e in _entries(cache))}
    script = textwrap.dedent(f"""
        from migue.pipeline.orchestration.ablate import train_one
        metrics = train_one("mg", {entries!r}, {str(tmp_path / 'run')!r}, {grid.runs()[0]!r}, {grid.plugins!r})
        print(metrics["head"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "plugin-grid-head"  # a fresh process, like a Dask worker


def test_heads_published_by_packages_load_from_the_entry_point_group(tmp_path, monkeypatch):
    module = tmp_path / "site" / "published_heads.py"
    module.parent.mkdir()
    module.write_text(HEAD_FILE.format(name="plugin-published", tail=""))
    monkeypatch.syspath_prepend(str(module.parent))
    point = metadata.EntryPoint("published", "published_heads", "migue.heads")
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [point] if kw.get("group") == "migue.heads" else real(**kw))
    load_plugins()
    assert get_head("plugin-published", "mg").source == "published_heads"


def _entries(root):
    from migue.cache import FeatureStore

    return FeatureStore(root).entries()
