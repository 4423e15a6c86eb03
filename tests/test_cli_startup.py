"""`migue <command> --help` imports only what the help needs (issue 24 point 7): the commands whose
help lists nothing registered in torch code import no torch, and fuse-train, whose help lists the heads
(torch modules), reads them from fusion/catalogue.py (tests/test_catalogue.py). Times are measured by
benchmarks/cli_startup.py, not asserted here."""
from __future__ import annotations

import subprocess
import sys

import pytest

LIGHT = ("synth", "data", "extract", "cache", "weights", "fuse-train", "evaluate", "predict", "demo", "ablate")


def _heavy_after_help(command: str) -> list[str]:
    code = ("import sys; from migue.pipeline.cli import main\n"
            f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'mmengine', 'dask') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Usage:" in out, out
    return out.strip().splitlines()[-1].split(" ", 1)[1]


@pytest.mark.parametrize("command", LIGHT)
def test_help_imports_no_torch(command: str) -> None:
    assert _heavy_after_help(command) == "[]"


def test_registry_sees_builtins_without_the_package_importing_them() -> None:
    code = ("import sys, migue.extractors; assert 'torch' not in sys.modules\n"
            "from migue.extractors.registry import list_extractors; print(sorted(list_extractors()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['agcn', 'mvit', 'swinface']"
