"""The `migue` command group. Commands live one group per module and are imported only when
run or asked for help (`COMMANDS`), so `migue --help` never imports torch or the OpenMMLab stack."""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time

import click

# name -> (module, attribute, one-line help shown by `migue --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("migue.pipeline.cli.data", "synth", "Write a deterministic synthetic sample in a release layout."),
    "data": ("migue.pipeline.cli.data", "data", "Inspect a dataset folder."),
    "extract": ("migue.pipeline.cli.extract", "extract", "Run frozen backbones over a dataset; cache their tokens."),
    "cache": ("migue.pipeline.cli.cache_cmds", "cache", "Inspect, check and clean the feature store."),
    "weights": ("migue.pipeline.weights.cli", "weights", "List, fetch and add released checkpoints."),
    "fuse-train": ("migue.pipeline.cli.train", "fuse_train", "Train a fusion head (or a baseline) on cached features."),
    "evaluate": ("migue.pipeline.cli.train", "evaluate", "Recompute a run's metrics on a split from the cache."),
    "predict": ("migue.pipeline.cli.train", "predict", "Predict a split; write a MiGA submission file."),
    "score": ("migue.pipeline.cli.score", "score", "Score prediction files against annotations (online: F1 at tIoU)."),
    "demo": ("migue.pipeline.cli.jobs", "demo", "Synth a sample, extract, train, print a summary."),
    "ablate": ("migue.pipeline.cli.jobs", "ablate", "Run a grid of trainings as Dask tasks over one cache."),
}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not verbose:  # Dask's own start/stop chatter is noise at the command line
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.core",
                     "distributed.http.proxy"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input, a bad file or a full disk: printed as one line, no traceback."""
    from migue.cache import DiskFullError, DuplicateUnitsError, ShardError
    from migue.extractors.checkpoints import CheckpointError
    from migue.pipeline.datasets.skeleton import SkeletonError
    from migue.pipeline.datasets.video import VideoError

    return (ShardError, DiskFullError, DuplicateUnitsError, CheckpointError, SkeletonError, VideoError,
            ValueError, LookupError, OSError)


class _Migue(click.Group):
    """The top-level group: commands load lazily from `COMMANDS`; the project's own errors become
    `error: <message>` and exit code 2 (with -v, the traceback too)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            module, attr, _ = COMMANDS[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2] if name in COMMANDS else self.commands[name].get_short_help_str())
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        from . import interrupt

        protected = getattr(ctx, "_protected_args", None)  # click 8.2+: the public name is deprecated
        args = [*(ctx.protected_args if protected is None else protected), *ctx.args]
        started = time.time()
        previous = _catch_term(interrupt.raise_terminated)
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            # Ctrl-C, or TERM (interrupt.Terminated): the context managers have closed on the way here
            # (decoding workers stopped, nothing half-published); say what was kept and how to go on.
            term = isinstance(exc, interrupt.Terminated)
            command = args[0] if args else ""
            what = interrupt.interrupted_message(command, args[1:], started)
            click.echo(f"\ninterrupted ({'SIGTERM' if term else 'Ctrl-C'}): {what}", err=True)
            ctx.exit(143 if term else 130)
        except (click.exceptions.ClickException, click.exceptions.Exit):
            raise
        except BrokenPipeError:  # the reader went away (`migue cache ls | head`): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own advice (signal docs)
            ctx.exit(0)
        except Exception as exc:
            if not isinstance(exc, _user_errors()):
                raise
            if ctx.params.get("verbose"):
                import traceback

                traceback.print_exc()
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            click.echo(f"error: {' '.join(str(message).splitlines())}", err=True)
            ctx.exit(2)
        finally:
            interrupt.clear()
            _catch_term(previous)


def _catch_term(handler: object) -> object:
    """Install `handler` for SIGTERM (the main thread only: elsewhere signals cannot be caught);
    returns the one it replaces, to restore (a test calling `main` leaves pytest's in place)."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


@click.group(cls=_Migue, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging; with an error, its traceback.")
def main(verbose: bool) -> None:
    """migue: micro-gesture and emotion recognition on iMiGUE over cached backbone features."""
    _setup_logging(verbose)
