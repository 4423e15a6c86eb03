"""What an interrupted command kept, and how to go on (Ctrl-C, or a TERM the app turns into one).

The app (`app.py`) says it after any interruption: the message a command registered while running
(`on_interrupt`), else the one of its name in `KEPT`, given the options it was started with. Kept
light: no torch, no h5py (the cache index is plain JSON)."""
from __future__ import annotations

import json
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

Message = Callable[[], str]
_registered: list[Message] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread runs: context managers (decoding pools, entry writers)
    close on the way out, as for Ctrl-C."""


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second TERM during the clean-up ends it at once
    raise Terminated()


def on_interrupt(message: Message) -> None:
    """Register what to say if the running command is interrupted now (the last one registered wins)."""
    _registered.append(message)


def clear() -> None:
    _registered.clear()


def option(args: Sequence[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in a command's raw arguments (the last one)."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def published_since(cache: Path, started: float) -> list[tuple[str, int]]:
    """(entry, units published) of the entries under `cache` whose index changed since `started`."""
    out = []
    for index in sorted(cache.glob("*/index.json")) if cache.is_dir() else []:
        try:
            if index.stat().st_mtime < started:
                continue
            shards = json.loads(index.read_text())["shards"]
            out.append((index.parent.name, sum(int(s["units"]) for s in shards)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _kept_in_cache(cache: Path, started: float, again: str) -> str:
    entries = published_since(cache, started)
    if not entries:
        return f"no shard was published in {cache} yet; {again} to start again"
    kept = "; ".join(f"{n} units published in {name} are kept" if n else f"nothing was published in {name} yet"
                     for name, n in entries)
    return f"{kept}; {again} to resume (published units are not computed again)"


def _kept_epoch(out: Path) -> str:
    if not (out / "checkpoint.pt").is_file():
        return f"no epoch was completed in {out}; run the same command again to start over"
    return (f"the last completed epoch is kept in {out / 'checkpoint.pt'}; run the same command with --resume "
            "to continue from it")


def _cache_root(args: Sequence[str]) -> Path:
    from migue.cache.paths import resolve_cache_root

    return resolve_cache_root(option(args, "--cache"))


KEPT: dict[str, Callable[[Sequence[str], float], str]] = {
    "extract": lambda args, started: _kept_in_cache(_cache_root(args), started, "run the same command again"),
    "demo": lambda args, started: _kept_in_cache(Path(option(args, "--workdir") or "migue-demo") / "cache", started,
                                                 "run the same command again"),
    "fuse-train": lambda args, started: _kept_epoch(Path(option(args, "--out") or ".")),
    "ablate": lambda args, started: (f"the finished runs in {option(args, '--out')} are kept; run the same command "
                                     "again to resume (finished runs are reused)"),
}


def interrupted_message(command: str, args: Sequence[str], started: float) -> str:
    """What was kept and how to go on, for `command` started with `args` at `started` (time.time())."""
    try:
        if _registered:
            return _registered[-1]()
        if command in KEPT:
            return KEPT[command](args, started)
    except Exception as exc:  # saying what was kept must never hide the interruption itself
        return f"(what was kept is unknown: {type(exc).__name__}: {exc})"
    return "nothing of it was kept"
