"""The `migue` command line (click): one command group, its commands in `commands.py`."""
from .commands import main

__all__ = ["main"]
