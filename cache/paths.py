"""Where the feature store lives: `--cache DIR`, else $MIGUE_CACHE, else ~/.cache/migue."""
from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    """The cache root used when no `--cache` is given."""
    env = os.environ.get("MIGUE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "migue"


def resolve_cache_root(cache: str | os.PathLike | None) -> Path:
    """The explicit root if given, else the default one."""
    return Path(cache).expanduser() if cache else default_cache_root()


def safe_child(root: Path, name: str) -> Path:
    """`root / name`, refusing names that would escape `root` (`..`, absolute, separators)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"refusing path {name!r}: it must be a plain file name inside {root}")
    return root / name
