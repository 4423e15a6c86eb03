"""The README's Python example (open entries, build task data, train a custom head, read its
metrics) runs verbatim on a real small cache."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from migue.fusion.synthetic import write_mg

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def readme_example() -> str:
    match = re.search(r"<!-- api-example -->\n```python\n(.*?)\n```", README.read_text(), re.S)
    assert match, "README.md has no <!-- api-example --> python block"
    return match.group(1)


def test_the_readme_python_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    write_mg(tmp_path / "cache", signal=0.5)
    monkeypatch.setenv("MIGUE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    metrics = (tmp_path / "runs" / "mean-concat" / "metrics.json").read_text()
    assert '"head": "mean-concat"' in metrics
    top1, chance = map(float, re.search(r"test top-1 ([\d.]+) \(chance ([\d.]+)\)", printed).groups())
    assert top1 > 4 * chance  # the planted class signal is learnt by the user's head
    assert "'rgb': (2, 16)" in printed and "'joint': (5, 16)" in printed  # the shapes it was built on
