"""`migue fuse-train`, `evaluate` and `predict`: stage two over the cache."""
from __future__ import annotations

import json
from pathlib import Path

import click

from migue.cache import FeatureStore
from migue.common.splits import SPLITS

from .options import (ALLOW_PARTIAL_HELP, CACHE_HELP, DATA_HELP, DEFAULT_WINDOW, SCOPE_HELP, data_layouts,
                      json_value, load_plugins_option, pairs, scope_options)

DATA_LAYOUTS = data_layouts()


def _check_head(run_dir: Path) -> None:
    """A run's head.pt must load with the safe loader (tensors and plain values only, as fuse-train
    writes it): a refused or corrupt one is one sentence, before the run's entries are read."""
    import pickle

    import torch

    path = run_dir / "head.pt"
    if not path.is_file():
        return  # not a finished run: evaluate_run / predict_run say so
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        why = next((line.split("error:", 1)[-1].split(" was not")[0].strip() for line in str(exc).splitlines()
                    if "WeightsUnpickler error" in line), "an object the safe loader does not allow")
        raise click.ClickException(f"{path} holds objects beyond tensors ({why}), which the safe loader refuses: "
                                   "fuse-train writes no such file; train the run again") from None
    except Exception as exc:  # any failure of this one load: truncated, not a zip, bad magic, struct errors
        first = (str(exc).splitlines() or [""])[0][:160] or type(exc).__name__
        raise click.ClickException(f"{path} is not a readable head checkpoint ({first}); train the run again") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise click.ClickException(f"{path} is not a readable head checkpoint (no state_dict in it); "
                                   "train the run again")


class _FusionChoice(click.ParamType):
    name = "head"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "HEAD"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from migue.fusion.registry import list_heads

        if value not in list_heads():
            self.fail(f"{value!r} is not a head; choose from: {', '.join(list_heads())}", param, ctx)
        return value



class _TaskChoice(click.ParamType):
    """A registered task (built-in or a plugin's: --plugin loads first), checked when given."""

    name = "task"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        from migue.fusion.tasks import list_tasks

        return "[" + "|".join(list_tasks()) + "]"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from migue.fusion.tasks import list_tasks

        if value not in list_tasks():
            self.fail(f"{value!r} is not a task; choose from: {', '.join(list_tasks())} (a plugin task needs "
                      "--plugin MODULE first)", param, ctx)
        return value


class _FormatChoice(click.ParamType):
    """`migue` or a submission format some registered task declares (the run's task must have it)."""

    name = "format"

    @staticmethod
    def formats() -> list[str]:
        from migue.fusion.tasks import list_tasks

        return list(dict.fromkeys(["migue", *(f for t in list_tasks().values() for f in t.submissions)]))

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.formats()) + "]"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value not in self.formats():
            self.fail(f"{value!r} is not a format; choose from: {', '.join(self.formats())}", param, ctx)
        return value


class _HeadsCommand(click.Command):
    """A command whose help ends with the registered tasks and heads, plugins included (listed when shown)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from migue.fusion import heads_help, tasks_help

        self.epilog = "\b\nTasks (--task):\n" + tasks_help() + "\n\n\b\nHeads (--fusion):\n" + heads_help()
        super().format_epilog(ctx, formatter)



def _scope(task: str, data_root: tuple[Path, ...], data_layout: str, window: int, readers: dict) -> dict | None:
    """The unit ids of --data's dataset per entry role (None without --data)."""
    if not data_root:
        return None
    from .scope import dataset_scope

    return dataset_scope(task, data_root, data_layout, window, readers)


@click.command("fuse-train", cls=_HeadsCommand)
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE", is_eager=True, callback=load_plugins_option,
              expose_value=False,
              help="Import MODULE (a module name or a .py file) that registers heads or tasks with "
                   "migue.fusion.register_head / register_task; repeatable. Those of the `migue.heads` and "
                   "`migue.tasks` entry-point groups load by themselves.")
@click.option("--task", type=_TaskChoice(), required=True, help="What to learn: a registered task (listed below).")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option("--fusion", type=_FusionChoice(), default=None,
              help="Head to train (default: the task's, listed below: cmtf for mg, interfusion for emotion).")
@click.option("--entry", "entries", multiple=True, metavar="MODALITY=NAME",
              help="Pick a cache entry when several exist for a modality.")
@click.option("--epochs", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any head/training config value (JSON-parsed), e.g. --set lr=3e-4.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last completed epoch (same config and entries; "
                   "the result equals an uninterrupted run's).")
@click.option("--overwrite", is_flag=True,
              help="Replace the run already in --out (its results go before the new run starts). Without "
                   "--resume or --overwrite, a folder that holds anything is refused.")
@click.option("--allow-partial", is_flag=True, help=ALLOW_PARTIAL_HELP)
@scope_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the run's full metrics as JSON (what metrics.json holds) instead of the summary table.")
def fuse_train(task: str, cache: Path | None, out: Path, fusion: str | None, entries: tuple[str, ...],
               epochs: int | None, seed: int, overrides: tuple[str, ...], resume: bool, overwrite: bool,
               allow_partial: bool, data_root: tuple[Path, ...], data_layout: str, window: int,
               as_json: bool) -> None:
    """Train a fusion head (or a baseline) on cached features. Shows a bar per epoch (a log line every
    few epochs when stderr is no terminal) and ends with a table: the metrics of val and test with
    their n, the epochs and the best one, and where the run folder keeps metrics.json, per_class.csv,
    confusion.csv and the plots."""
    from migue.fusion.runs import check_run_dir, train_run

    from migue.pipeline.orchestration.entries import head_roles, select_entries

    check_run_dir(out, resume, overwrite)
    config = {k: json_value(v) for k, v in pairs(overrides).items()}
    config["seed"] = seed
    if fusion:
        config["head"] = fusion
    if epochs is not None:
        config["epochs"] = epochs
    readers = select_entries(FeatureStore(cache), task, pairs(entries), head_roles(task, config),
                             head=fusion or "")
    if resume:
        config["resume"] = True
    if allow_partial:
        config["allow_partial"] = True
    scope = _scope(task, data_root, data_layout, window, readers)
    metrics = train_run(task, readers, out, config, scope=scope)
    if as_json:
        _echo_json(metrics)
        return
    from migue.fusion.summary import run_summary

    record = _run_config(out)
    click.echo(run_summary(out, metrics, _items(task), record["config"].get("epochs")))


RUN_CACHE_HELP = ("Read the run's cache entries, by the names its config.json records, from this cache (default: "
                  "the paths recorded at training; " + CACHE_HELP + ")")


def _cache_entries(run_dir: Path, cache: Path | None) -> dict | None:
    """The run's entries by role, opened by name in `cache` (None without --cache); a missing one is
    a LookupError naming it and the cache."""
    if cache is None:
        return None
    store = FeatureStore(cache)
    out = {}
    for role, info in _run_config(run_dir)["entries"].items():
        if not (store.root / info["name"]).is_dir():
            raise LookupError(f"{run_dir} was trained on cache entry {info['name']} ({role}), which {store.root} "
                              "does not hold: give the cache it was trained from")
        out[role] = store.reader(info["name"])
    return out


def _run_config(run_dir: Path) -> dict:
    """The run folder's config.json (task, resolved config, entries)."""
    return json.loads((Path(run_dir) / "config.json").read_text())


def _items(task: str) -> str:
    """What one evaluated item of `task` is ('clip', 'video'), for the summary's sentences."""
    from migue.fusion.tasks import get_task

    return get_task(task).items


def _echo_json(metrics: dict) -> None:
    """Metrics as JSON, NaN as null (the same as metrics.json)."""
    from migue.fusion.reports import jsonable

    click.echo(json.dumps(jsonable(metrics), indent=1, default=str))


def _write_segments(task: str, table, split: str, out: Path, fmt: str, zipped: bool, truth_out: Path | None) -> None:
    """predict for a task of sequences: the format's files from the gestures found, and the truth CSV."""
    from .submission import FILE_WRITERS, write_submission, writer_for

    spec, _ = writer_for(task, fmt)
    if spec.writer not in FILE_WRITERS:
        raise click.UsageError(f"format {fmt!r} of task {task!r} is not written from segments")
    what = FILE_WRITERS[spec.writer](table, out, zipped)
    click.echo(f"wrote {len(table)} gestures found in {len(table.attrs['sequences'])} {split} sequences "
               f"({spec.title}: {what}) to {out}")
    if truth_out is not None:
        truth = table.attrs.get("truth")
        if truth is None:
            raise click.ClickException(f"the {split} split has no labelled sequences: no truth to write to {truth_out}")
        write_submission(truth, truth_out, "truth.csv", False)
        click.echo(f"wrote {len(truth)} annotated gestures of the {split} split to {truth_out}")


def _run_plugin_options(command: click.Command) -> click.Command:
    """--plugin and --trust-run of evaluate / predict: a plugin run's code loads only when named."""
    command = click.option("--trust-run", is_flag=True,
                           help="Import the plugin module or file the run's config.json names (run folders "
                                "from others can name any file: prefer --plugin).")(command)
    return click.option("--plugin", "plugins", multiple=True, metavar="MODULE", is_eager=True,
                        callback=load_plugins_option, expose_value=False,
                        help="Import MODULE (a module name or a .py file) that registers the run's head or "
                             "task; a plugin run says which it needs. Repeatable.")(command)


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@_run_plugin_options
@click.option("--allow-partial", is_flag=True, help=ALLOW_PARTIAL_HELP)
@scope_options
@click.option("--json", "as_json", is_flag=True, help="Print the split's full metrics as JSON instead of the table.")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=RUN_CACHE_HELP)
def evaluate(run_dir: Path, split: str, trust_run: bool, allow_partial: bool, data_root: tuple[Path, ...],
             data_layout: str, window: int, as_json: bool, cache: Path | None) -> None:
    """Recompute a run's metrics on a split from the cache: a table of them with n (--json: all of them,
    per-class lists included), and a warning when the split is too small to compare heads."""
    from migue.fusion.runs import evaluate_run

    from .scope import run_entries, run_task

    _check_head(run_dir)
    entries = _cache_entries(run_dir, cache) or (run_entries(run_dir) if data_root else None)
    scope = _scope(run_task(run_dir), data_root, data_layout, window, entries) if data_root else None
    metrics = evaluate_run(run_dir, split, entries, trust_run=trust_run, partial=allow_partial, scope=scope)
    if as_json:
        _echo_json(metrics)
        return
    from migue.fusion.summary import evaluation_summary

    record = _run_config(run_dir)
    click.echo(evaluation_summary(run_dir, split, metrics, _items(record["task"]), record["config"].get("monitor")))
    report = _task_report(record["task"], metrics)
    if report:
        click.echo(report)


def _task_report(task: str, metrics: dict) -> str:
    """What a task with its own runner adds to evaluate's table (online: both matching rules per class
    and mAP per tIoU), '' for the others."""
    from migue.fusion.tasks import get_task

    runner = get_task(task).run_module()
    return runner.report(metrics) if runner is not None and hasattr(runner, "report") else ""


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@_run_plugin_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="File to write (CSV, or zip with --zip).")
@click.option("--format", "fmt", type=_FormatChoice(), default="migue", show_default=True,
              help="migue: ids, predicted label, release names, label rows and class probabilities. "
                   "Others are the submission formats the run's task declares; miga: the challenge's file "
                   "(mg run: Track 1 Id,Target, Target the 0-based class index: raw label 1 -> 0, raw 31 -> 30, "
                   "raw 99 -> 31, as the 2025 winners' scored file; emotion run: Track 3 video_id,label, 1 win, "
                   "0 lose; online run: Track 2 (2023), one <sequence>.csv per sequence of the split with rows "
                   "GestureID,StartFrame,EndFrame numbered as the release's own label files: SMG classes 1..17 "
                   "and 1-based frames (_finelabels.csv), iMiGUE raw class ids 1..31/99 and 0-based frames "
                   "(<id>_label.csv); the organisers' pages do not state a base, so a file matches its release). "
                   "csv (online): video_id,label,start,end,score with 0-based classes and frames, what "
                   "`migue score online` reads.")
@click.option("--zip", "zipped", is_flag=True,
              help="Write the CSV inside a zip at --out, named as the task's format says (Track 1: "
                   "prediction.csv in prediction.zip; Track 2: one CSV per sequence; without --zip Track 2 "
                   "writes those CSVs into the folder --out).")
@click.option("--data", "data_root", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, help=SCOPE_HELP + "With --format miga: check completeness against this dataset's "
                                  "split (default: the run's cache entries and their failed units). " + DATA_HELP)
@click.option("--layout", "data_layout", type=click.Choice(DATA_LAYOUTS), default="auto", show_default=True)
@click.option("--allow-partial", is_flag=True, help=ALLOW_PARTIAL_HELP)
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True,
              help="Frames per emotion window, as given to extract (with --data).")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help=RUN_CACHE_HELP)
@click.option("--truth-out", type=click.Path(path_type=Path), default=None,
              help="Online runs: also write the split's annotated gestures as video_id,label,start,end (0-based, "
                   "as --format csv), for `migue score online --pred OUT --truth THIS`.")
def predict(run_dir: Path, split: str, out: Path, fmt: str, zipped: bool, data_root: tuple[Path, ...],
            data_layout: str, trust_run: bool, allow_partial: bool, window: int, cache: Path | None,
            truth_out: Path | None) -> None:
    """Predict every item of a split, labelled or not. --format miga writes the MiGA submission file
    and refuses an incomplete one (every test clip or video exactly once), naming what is missing."""
    from migue.fusion.runs import predict_run

    from .submission import expected_from_manifest, expected_from_run, miga_table, write_submission, writer_for, zip_name

    _check_head(run_dir)
    task = json.loads((run_dir / "config.json").read_text())["task"]
    from .scope import run_entries

    entries = _cache_entries(run_dir, cache) or (run_entries(run_dir) if data_root else None)
    scope = _scope(task, data_root, data_layout, window, entries) if data_root else None
    table = predict_run(run_dir, split, entries, trust_run=trust_run, partial=allow_partial, scope=scope)
    if "sequences" in table.attrs:  # a task of whole sequences: its rows are the gestures found
        _write_segments(task, table, split, out, "csv" if fmt == "migue" else fmt, zipped, truth_out)
        return
    if truth_out is not None:
        raise click.UsageError("--truth-out is for runs of whole sequences (task online)")
    track = "migue"
    if fmt != "migue":
        track = writer_for(task, fmt)[0].title  # the task must have the format (and a writer for it)
        if data_root:
            from migue.pipeline.datasets import read_dataset

            expected = expected_from_manifest(task, read_dataset(data_root, data_layout), split, fmt)
        else:
            expected = expected_from_run(task, run_dir, split, fmt)
        table = miga_table(task, table, expected, fmt)
    write_submission(table, out, zip_name(task, fmt), zipped)
    click.echo(f"wrote {len(table)} {split} predictions ({track}, {', '.join(table.columns[:2])}) to {out}")
