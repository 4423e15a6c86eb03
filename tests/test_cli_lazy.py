"""The command group loads each command's module only when it runs or shows its help."""
from __future__ import annotations

import subprocess
import sys

import click

from migue.pipeline.cli import app, options


def test_help_imports_no_heavy_stack() -> None:
    code = ("import sys; from migue.pipeline.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'mmengine', 'h5py', 'pandas', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "fuse-train" in out and "extract" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_every_listed_command_loads() -> None:
    for name, (module, attr, short) in app.COMMANDS.items():
        command = app.main.get_command(click.Context(app.main), name)
        assert isinstance(command, click.Command), name
        assert short and len(short) < 70, name


def test_default_window_is_the_readers() -> None:
    from migue.pipeline.datasets.common import DEFAULT_WINDOW

    assert options.DEFAULT_WINDOW == DEFAULT_WINDOW
