"""Ablation grids over one cache, run as Dask tasks (a LocalCluster, or `--scheduler ADDRESS`).

A grid file names a task, a base config and axes; every combination is one run of
`migue.fusion.train_run` in its own folder. Workers only read the cache: no video is decoded
and no backbone is built. Finished runs (a valid done.json, written last) are skipped on a rerun; a
failing run is reported with its error and the others go on. With `one_pass: true` the
grid's probe runs are trained together, many heads per read of the cache
(`migue.fusion.sweep_probes`): one Dask task per group of probes sharing their data settings.

Grid files are bounded: YAML aliases are refused (a 1 KB alias bomb expands to gigabytes), a grid
of more than `MAX_RUNS` runs is refused before it is expanded (`--max-runs` raises the cap), each
shape error is one sentence naming the file and the key, and run folder names are plain names
inside `--out/runs`. An `--out` holding another grid's results is refused unless `overwrite`
(the same grid resumes there); every report is published by temp name and rename.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from migue.cache import FeatureStore
from migue.cache.atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from migue.cache.files import NotARegularFileError, require_regular_file
from migue.common.dask_client import connect, gpu_resources
from migue.fusion.reports import DONE_FILE, finished_metrics
from migue.fusion.tasks import get_task, list_tasks

from .entries import head_roles, ordered_roles, select_entries, task_modalities

log = logging.getLogger("migue.ablate")


MAX_RUNS = 1000  # runs a grid may have unless raised (--max-runs)
REPORTS = ("results.csv", "results.md", "results.png", "grid.json")  # what a grid writes at the top of --out
MAX_GRID_BYTES = 1 << 20  # a grid file is a few lines; anything this big is a mistake or an attack
MAX_GRID_DEPTH = 32  # nesting levels of a grid file (a few are used; thousands overflow the stack)
GRID_KEYS = ("task", "base", "axes", "entries", "one_pass", "plugins")
ENTRY_HINT = "the grid file's key `entries: {{{modality}: NAME}}`"  # how a grid picks one of several entries


class _GridLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (`*name` is an error, so nothing expands beyond the
    file) and nested at most MAX_GRID_DEPTH levels (the composer recurses once per level)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasError(f"*{event.anchor} at line {event.start_mark.line + 1}")
        if self.depth >= MAX_GRID_DEPTH:
            raise _DepthError(f"line {self.peek_event().start_mark.line + 1}")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _AliasError(yaml.YAMLError):
    pass


class _DepthError(yaml.YAMLError):
    pass


@dataclass
class Grid:
    """What to run: a task, shared settings, and the axes to cross."""

    task: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)
    one_pass: bool = False  # train the probe runs together: many heads, one read of the cache
    plugins: list[str] = field(default_factory=list)  # modules (or .py files) that register heads or tasks

    @classmethod
    def load(cls, path: Path, max_runs: int = MAX_RUNS) -> "Grid":
        """The grid in YAML file `path`; a ValueError naming the file and the key for any shape
        error, an alias, or more than `max_runs` runs."""
        raw = _read_grid_file(Path(path))
        plugins = raw.get("plugins") or []
        if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
            raise ValueError(f"{path}: 'plugins' must be a list of module names or .py files, got {plugins!r}")
        # a plugin file is found beside the grid file
        plugins = [str((Path(path).parent / p).resolve()) if p.endswith(".py") else p for p in plugins]
        _check_task(Path(path), raw["task"], plugins)
        grid = cls(raw["task"], raw.get("base") or {}, raw.get("axes") or {}, raw.get("entries") or {},
                   bool(raw.get("one_pass", False)), plugins)
        grid.check_size(max_runs, Path(path))
        return grid

    def size(self) -> int:
        """How many runs the grid has (the product of its axes' lengths), without expanding it."""
        return math.prod(len(values) for values in self.axes.values())

    def check_size(self, max_runs: int = MAX_RUNS, path: Path | str = "grid") -> None:
        """Refuse a grid of more than `max_runs` runs before anything is expanded or started."""
        if self.size() > max_runs:
            shape = " x ".join(f"{name} {len(values)}" for name, values in self.axes.items())
            raise ValueError(f"{path}: the grid has {self.size()} runs ({shape}), more than the cap of {max_runs}; "
                             "raise it with --max-runs if you mean it")

    def runs(self) -> list[dict[str, Any]]:
        """Every combination of the axes, each merged over the base config."""
        names = list(self.axes)
        combos = itertools.product(*(self.axes[n] for n in names)) if names else [()]
        return [{**self.base, **dict(zip(names, values))} for values in combos]


def _grid_text(path: Path) -> str:
    """The grid file's text: a regular file (a FIFO or a device would block or never end) of at
    most MAX_GRID_BYTES, read no further than that."""
    try:
        require_regular_file(path)
    except NotARegularFileError as exc:
        raise ValueError(str(exc)) from None
    with open(path, "rb") as f:
        data = f.read(MAX_GRID_BYTES + 1)
    if len(data) > MAX_GRID_BYTES:
        raise ValueError(f"{path}: more than {MAX_GRID_BYTES} bytes; a grid file is at most {MAX_GRID_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None


def _read_grid_file(path: Path) -> dict[str, Any]:
    """The grid file's top-level mapping, its shape checked key by key."""
    text = _grid_text(path)
    try:
        raw = yaml.load(text, Loader=_GridLoader)  # noqa: S506 - a SafeLoader without aliases or deep nesting
    except _AliasError as exc:
        raise ValueError(f"{path}: YAML aliases are not allowed in a grid file ({exc}); write the values out") from None
    except (_DepthError, RecursionError):
        raise ValueError(f"{path}: nested more than {MAX_GRID_DEPTH} levels deep; a grid file is a few levels "
                         "of mappings and lists") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a grid file is a mapping with 'task' and optional "
                         f"{', '.join(repr(k) for k in GRID_KEYS[1:])}, got {_kind(raw)}")
    unknown = set(raw) - set(GRID_KEYS)
    if unknown or "task" not in raw:
        raise ValueError(f"{path}: a grid needs 'task' and may have {', '.join(repr(k) for k in GRID_KEYS[1:])}; "
                         f"unexpected keys {sorted(map(str, unknown))}" if unknown else f"{path}: no 'task'")
    if not isinstance(raw["task"], str):
        raise ValueError(f"{path}: 'task' must be one of {', '.join(list_tasks())}, got {raw['task']!r}")
    _check_mapping(path, raw, "base", "a mapping of setting names to values")
    _check_mapping(path, raw, "axes", "a mapping of setting names to lists of values")
    _check_mapping(path, raw, "entries", "a mapping of modality to entry name")
    for name, values in (raw.get("axes") or {}).items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: axis {name!r} must be a non-empty list, got {values!r}")
    for modality, entry in (raw.get("entries") or {}).items():
        if not isinstance(entry, str):
            raise ValueError(f"{path}: 'entries' must be a mapping of modality to entry name, got {modality}: {entry!r}")
    if not isinstance(raw.get("one_pass", False), bool):
        raise ValueError(f"{path}: 'one_pass' must be true or false, got {raw['one_pass']!r}")
    return raw


def _check_task(path: Path, task: str, plugins: list[str]) -> None:
    """The grid's task must be registered: built in, or by one of the grid's plugins (loaded here)."""
    from migue.fusion import load_plugins

    load_plugins(plugins)
    known = list_tasks()
    if task not in known:
        raise ValueError(f"{path}: 'task' must be one of {', '.join(known)}, got {task!r}")


def _check_mapping(path: Path, raw: dict[str, Any], key: str, what: str) -> None:
    value = raw.get(key)
    if value is None:
        return
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {key!r} must be {what}, got {_kind(value)}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{path}: {key!r} must be {what}, got the key {bad[0]!r}")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__)


def run_id(config: dict[str, Any]) -> str:
    """A stable, readable folder name for one run's config: its head and seed reduced to a plain
    name (letters, digits, `.`, `_`, `-`: never a path), and a hash of the whole config."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    head = str(config.get("head", "auto"))
    return f"{_plain(head, 40)}-s{_plain(str(config.get('seed', 0)), 12)}-{digest}"


def _plain(text: str, limit: int) -> str:
    """`text` as part of a file name: other characters become `_`, no leading dot, at most `limit` long."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:limit] or "_"


def train_one(task: str, entry_dirs: dict[str, str], run_dir: str, config: dict[str, Any],
              plugins: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """One ablation run, executed on a Dask worker: reads the cache, trains a head, returns metrics."""
    from migue.cache import EntryReader
    from migue.fusion import load_plugins, train_run

    load_plugins(plugins)
    readers = {role: EntryReader(path) for role, path in entry_dirs.items()}
    try:
        return train_run(task, readers, Path(run_dir), dict(config))
    finally:
        for reader in readers.values():
            reader.close()


def _safe_train_one(task: str, entry_dirs: dict[str, str], run_dir: str, config: dict[str, Any],
                    plugins: list[str]) -> dict[str, Any]:
    try:
        return {"status": "ok", "metrics": train_one(task, entry_dirs, run_dir, config, plugins)}
    except Exception as exc:  # one failing run must not stop the others
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}


def _safe_sweep(task: str, entry_dirs: dict[str, str], runs: dict[str, dict[str, Any]],
                plugins: list[str]) -> dict[str, dict[str, Any]]:
    """A group of probe runs trained in one pass on a Dask worker: {run folder: outcome}."""
    from migue.cache import EntryReader
    from migue.fusion import load_plugins, sweep_probes

    load_plugins(plugins)
    readers = {role: EntryReader(path) for role, path in entry_dirs.items()}
    try:
        metrics = sweep_probes(task, readers, {Path(d): c for d, c in runs.items()})
        return {d: {"status": "ok", "metrics": metrics[Path(d)]} for d in runs}
    except Exception as exc:  # the group fails together; the grid's other runs go on
        failed = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        return {d: failed for d in runs}
    finally:
        for reader in readers.values():
            reader.close()


def _sweep_groups(task: str, todo: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Probe runs grouped by the settings that shape their data (one read per group)."""
    from migue.fusion.config import resolve_config
    from migue.fusion.sweep import DATA_KEYS, is_probe

    groups: dict[str, list[str]] = {}
    for rid, config in todo.items():
        try:
            cfg = resolve_config(task, config)
        except (KeyError, ValueError):
            continue  # run alone: its own task reports the error
        if is_probe(cfg["head"]):
            groups.setdefault(json.dumps([cfg[k] for k in DATA_KEYS], default=str), []).append(rid)
    return list(groups.values())


def _roles_or_none(task: str, config: dict[str, Any]) -> list[str]:
    """The entries a run's head reads; none for a run whose head or settings are unknown (that run
    then fails on its own, with its error in the results, and the others still run)."""
    try:
        return head_roles(task, config)
    except (KeyError, ValueError):
        return []


def run_ablation(grid: Grid, cache: Path | None, out: Path, scheduler: str | None = None,
                 workers: int = 2, max_runs: int = MAX_RUNS, overwrite: bool = False) -> pd.DataFrame:
    """Run (or resume) every run of the grid; write results.csv, results.md and results.png.
    An `out` holding another grid's results is refused unless `overwrite` (then they are replaced)."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    from migue.fusion import load_plugins

    grid.check_size(max_runs)
    out = Path(out)
    record = grid_record(grid)
    replaced = claim_out(out, record, overwrite)
    load_plugins(grid.plugins)  # the driver resolves the runs' configs: it must know their heads
    configs = {run_id(c): c for c in grid.runs()}
    _inside(out / "runs", configs)
    roles = {role for c in configs.values() for role in _roles_or_none(grid.task, c)}  # what the heads read
    entry_dirs = {m: str(r.dir) for m, r in select_entries(FeatureStore(cache), grid.task, grid.entries,
                                                           ordered_roles(task_modalities(grid.task), roles),
                                                           name_with=ENTRY_HINT).items()}
    out.mkdir(parents=True, exist_ok=True)
    remove_reports(out, replaced)  # only now that the grid can start: a wrong --cache keeps the old results
    atomic_write_text(out / "grid.json", json.dumps(record, indent=1))
    outcomes: dict[str, dict[str, Any]] = {}
    todo = {}
    for rid, config in configs.items():
        run_dir = out / "runs" / rid
        metrics = finished_metrics(run_dir)
        problem = None if metrics is not None else _config_problem(grid.task, config)
        if metrics is not None:
            outcomes[rid] = {"status": "ok", "metrics": metrics, "skipped": True}
        elif problem is not None:  # refused before any task starts: no worker, no run folder
            outcomes[rid] = {"status": "failed", "error": problem}
            log.error("run %s failed: %s", rid, problem)
        else:
            if (run_dir / "metrics.json").exists():
                log.info("run %s did not finish writing its results (no valid %s): running it again",
                         rid, DONE_FILE)
            todo[rid] = config
    log.info("%d runs in the grid, %d already finished, %d refused by their config, %d to run", len(configs),
             sum(o["status"] == "ok" for o in outcomes.values()), sum(o["status"] != "ok" for o in outcomes.values()),
             len(todo))
    if todo:
        with connect(scheduler, workers) as client:
            resources = gpu_resources(client)
            futures: dict[Any, tuple[list[str], bool]] = {}  # future -> (its runs, whether a sweep)
            for group in (_sweep_groups(grid.task, todo) if grid.one_pass else []):
                runs = {str(out / "runs" / rid): todo.pop(rid) for rid in group}
                log.info("%d probe runs in one pass over the cache", len(runs))
                futures[client.submit(_safe_sweep, grid.task, entry_dirs, runs, grid.plugins, key=f"sweep-{group[0]}",
                                      resources=resources or None, pure=False)] = (group, True)
            for rid, config in todo.items():
                futures[client.submit(_safe_train_one, grid.task, entry_dirs, str(out / "runs" / rid), config,
                                      grid.plugins, key=f"ablate-{rid}", resources=resources or None, pure=False)] = ([rid], False)
            progress = tqdm(total=sum(len(g) for g, _ in futures.values()), desc="ablation", unit="run",
                            disable=None)
            for future in as_completed(futures):
                rids, sweep = futures[future]
                result = future.result()
                for rid in rids:
                    outcomes[rid] = result[str(out / "runs" / rid)] if sweep else result
                    if outcomes[rid]["status"] != "ok":
                        log.error("run %s failed: %s", rid, outcomes[rid]["error"])
                progress.update(len(rids))
            progress.close()
    table = results_table(grid, configs, outcomes)
    write_reports(grid, table, out)
    return table


def _config_problem(task: str, config: dict[str, Any]) -> str | None:
    """Why a run's config cannot run (an unknown head or key, a setting outside its type or range),
    as its results row says it; None when it resolves."""
    from migue.fusion.config import resolve_config

    try:
        resolve_config(task, dict(config))
    except (KeyError, ValueError) as exc:
        return _message(exc)
    return None


def _message(exc: Exception) -> str:
    """The sentence an exception carries (a KeyError's str() would quote it)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def grid_record(grid: Grid) -> dict[str, Any]:
    """The grid as grid.json holds it (plain JSON values): what says two grids are the same."""
    return json.loads(json.dumps(grid.__dict__, default=str))


def claim_out(out: Path, record: dict[str, Any], overwrite: bool = False) -> list[str]:
    """Let grid `record` write into `out`: the same grid resumes there; results of another grid
    (or of one without a readable grid.json) are refused, or with `overwrite` returned: the
    reports to remove (`remove_reports`) once the new grid is known to start. Nothing is removed here."""
    held = [name for name in REPORTS if (out / name).exists()]
    if not held:
        return []
    try:
        previous = json.loads((out / "grid.json").read_text())
    except (OSError, ValueError):
        previous = None
    if previous == record:
        return []
    if not overwrite:
        if not isinstance(previous, dict):
            why = "no grid.json" if not (out / "grid.json").exists() else "its grid.json is unreadable"
            raise ValueError(f"{out} holds {', '.join(held)} of an unknown grid ({why}); pass --overwrite to "
                             "replace them, or choose another --out")
        differ = sorted(k for k in set(record) | set(previous) if previous.get(k) != record.get(k))
        raise ValueError(f"{out} holds the results of another grid (it differs in {', '.join(differ)}); pass "
                         "--overwrite to replace them, or choose another --out")
    return held


def remove_reports(out: Path, held: list[str]) -> None:
    """Remove the previous grid's reports `held` (grid.json last: until the new one is written,
    nothing claims to be this grid)."""
    if not held:
        return
    for name in REPORTS:
        (out / name).unlink(missing_ok=True)
    fsync_dir(out)
    log.info("--overwrite: removed %s of the previous grid in %s", ", ".join(held), out)


def _inside(runs: Path, configs: dict[str, dict[str, Any]]) -> None:
    """Every run folder is a child of `runs` (run_id makes plain names; this is the guard)."""
    root = runs.resolve()
    for rid in configs:
        if (root / rid).resolve().parent != root:
            raise ValueError(f"run name {rid!r} is not a plain folder name inside {runs}")


def results_table(grid: Grid, configs: dict[str, dict[str, Any]], outcomes: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run: its axes values, full config, status and test metrics."""
    rows = []
    for rid, config in configs.items():
        outcome = outcomes.get(rid, {"status": "missing"})
        row: dict[str, Any] = {"run": rid, **{axis: _cell(config.get(axis)) for axis in grid.axes}}
        row["status"] = outcome["status"]
        row["error"] = outcome.get("error", "")
        test = (outcome.get("metrics") or {}).get("test", {})
        for metric in get_task(grid.task).metrics:
            row[metric] = test.get(metric)
        row["config"] = json.dumps(config, sort_keys=True, default=str)
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def grouped(grid: Grid, table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds for every other combination of the axes."""
    keys = [a for a in grid.axes if a != "seed"]
    ok = table[table["status"] == "ok"].copy()
    metrics = list(get_task(grid.task).metrics)
    for m in metrics:
        ok[m] = pd.to_numeric(ok[m], errors="coerce")
    if ok.empty:
        return pd.DataFrame(columns=keys + metrics)
    groups = ok.groupby(keys, dropna=False, sort=False) if keys else [((), ok)]
    rows = []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        row["runs"] = len(part)
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = part[m].mean(), part[m].std(ddof=0)
        rows.append(row)
    return pd.DataFrame(rows)


def write_reports(grid: Grid, table: pd.DataFrame, out: Path) -> None:
    """results.csv (every run), results.md (mean ± std over seeds, best marked), results.png."""
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    summary = grouped(grid, table)
    metrics = list(get_task(grid.task).metrics)
    shown = summary[[c for c in summary.columns if not c.endswith(("_mean", "_std")) and c not in metrics]].copy()
    for m in metrics:
        if summary.empty:  # no run finished: the table keeps its columns, the failures are listed below
            shown[m] = []
            continue
        best = summary[f"{m}_mean"].max()
        shown[m] = [("**" if mean == best else "") + f"{mean:.3f} ± {std:.3f}" + ("**" if mean == best else "")
                    for mean, std in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    failed = table[table["status"] != "ok"]
    text = [f"# Ablation: {grid.task}", "", f"{len(table)} runs, {len(failed)} failed. Test split, mean ± std "
            "over seeds; best mean per column in bold.", "", shown.to_markdown(index=False)]
    if len(failed):
        text += ["", "## Failed runs", ""] + [f"- {r.run}: {r.error}" for r in failed.itertuples()]
    atomic_write_text(out / "results.md", "\n".join(text) + "\n")
    _plot(summary, grid, metrics[0], out / "results.png")


def _plot(summary: pd.DataFrame, grid: Grid, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [a for a in grid.axes if a != "seed"]
    labels = [", ".join(f"{k}={row[k]}" for k in keys) or "base" for _, row in summary.iterrows()]
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(labels) + 2), 4))
    if labels:
        ax.bar(range(len(labels)), summary[f"{metric}_mean"], yerr=summary[f"{metric}_std"], capsize=3,
               color="tab:blue")
    else:
        ax.text(0.5, 0.5, "no run finished", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{grid.task} ablation (mean ± std over seeds)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
