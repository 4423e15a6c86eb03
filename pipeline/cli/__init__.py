"""The `migue` command line (click): one group (`app.py`), each command group in its own module."""
from .app import main

__all__ = ["main"]
