"""`migue weights`: list the catalogue and the store; `fetch` and `add` fill the store."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from migue.extractors import weights as catalogue
from migue.extractors.weights import FORMATS, published_digest

from .fetch import Fetched, fetch, for_entry, for_url
from .store import CHANGED, MANIFEST, StoredFile, WeightsError, WeightsStore, install_hint, store_dir


def _store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--dir / --cache on the group and on each subcommand (either place works)."""
    @click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False), default=None,
                  help="The weights store (default: $MIGUE_WEIGHTS, else <cache root>/weights).")
    @click.option("--cache", type=click.Path(path_type=Path), default=None,
                  help="Cache root whose weights/ folder is the store (default: $MIGUE_CACHE or ~/.cache/migue).")
    @functools.wraps(command)
    def wrapper(*args: Any, folder: Path | None, cache: Path | None, **kwargs: Any) -> Any:
        outer = click.get_current_context().find_object(WeightsStore)
        store = WeightsStore(store_dir(folder, cache)) if folder or cache or outer is None else outer
        return command(*args, store=store, **kwargs)
    return wrapper


@click.group("weights", invoke_without_command=True)
@_store_options
@click.pass_context
def weights(ctx: click.Context, store: WeightsStore) -> None:
    """List the released checkpoints migue reads (where they are published, their SHA-256 or its
    prefix) and what the store holds, each file hashed now with its status. Exit 1 when a stored
    file contradicts the published hash or changed since it entered the store. `migue weights
    fetch` and `migue weights add` fill the store."""
    ctx.obj = store
    if ctx.invoked_subcommand is None:
        sys.exit(list_store(store))


@weights.command("fetch")
@click.argument("keys", nargs=-1, metavar="[KEY]... | all")
@click.option("--url", default=None, help="Fetch any file by URL (http, https, file) into the store.")
@click.option("--sha256", default=None, metavar="HEX",
              help="With --url: its SHA-256 (or a prefix of 8+ hex digits), checked before publishing.")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Resumes (HTTP Range) after a connection that breaks mid-file.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait for the server at each step.")
@_store_options
def fetch_command(keys: tuple[str, ...], url: str | None, sha256: str | None, retries: int, timeout: float,
                  store: WeightsStore) -> None:
    """Download catalogue files (by key, or `all`) into the store with a progress bar, resuming a
    partial download; each is checked against the published SHA-256 (its prefix where only that
    is published) before it is renamed into place, and its measured digest recorded in
    manifest.json. $MIGUE_WEIGHTS_MIRROR (a base URL or a folder holding the published file
    names) replaces the publishers' hosts."""
    if sha256 and not url:
        raise click.UsageError("--sha256 goes with --url (catalogue files carry their published digest)")
    if not keys and not url:
        raise click.UsageError("name catalogue keys, `all`, or --url URL (`migue weights` lists the keys)")
    wanted, failures = [], []
    for entry in _entries(keys):
        try:
            wanted.append((entry.key, for_entry(entry)))
        except WeightsError as exc:
            (click.echo(f"{entry.key}: skipped: {exc}") if keys == ("all",) else failures.append(str(exc)))
    if url:
        try:
            wanted.append(("url", for_url(url, sha256)))
        except WeightsError as exc:
            raise click.UsageError(str(exc)) from None
    for label, item in wanted:
        try:
            _say(label, fetch(item, store, retries=retries, timeout=timeout))
        except WeightsError as exc:
            failures.append(str(exc))
    for message in failures:
        click.echo(f"error: {message}", err=True)
    if failures:
        sys.exit(1)


@weights.command("add")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--as", "as_", required=True, metavar="KEY|FORMAT",
              help="The catalogue entry FILE is (a key, or a format one entry has: swinface-official).")
@click.option("--trust-checkpoint", is_flag=True, help="Allow full pickle loading of FILE (it can run code).")
@_store_options
def add_command(file: Path, as_: str, trust_checkpoint: bool, store: WeightsStore) -> None:
    """Check a checkpoint downloaded by hand (SwinFace is published in a shared folder with no
    direct URL) and copy it into the store atomically under its published name."""
    from .add import add_file

    try:
        done = add_file(file, as_, store, trust_checkpoint)
        _say(done.key or as_, done, verb="added")
    except WeightsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _entries(keys: tuple[str, ...]) -> list[catalogue.KnownWeights]:
    if keys == ("all",):
        return list(catalogue.CATALOGUE)
    unknown = [k for k in keys if catalogue.by_key(k) is None]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: not catalogue keys; they are: "
                                 f"{', '.join(w.key for w in catalogue.CATALOGUE)}, or all", param_hint="KEY")
    return [catalogue.by_key(k) for k in keys]


def _say(label: str, done: Fetched, verb: str = "fetched") -> None:
    how = "already in the store" if done.already else (
        f"resumed at {done.resumed_at / 1e6:.1f} MB" if done.resumed_at else verb)
    click.echo(f"{label}: {how}: {done.path}\n  sha256 {done.sha256}: {done.check}")


def list_store(store: WeightsStore) -> int:
    """Print the catalogue and the store's files; 1 when a file contradicts its published hash."""
    try:
        files = store.files()
    except WeightsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    held = f"{len(files)} file(s), {MANIFEST}" if store.root.is_dir() else "absent"
    click.echo(f"Known checkpoints (weights store: {store.root}, {held})")
    by_key: dict[str, list[StoredFile]] = {}
    for f in files:
        if f.known:
            by_key.setdefault(f.known.key, []).append(f)
    for w in catalogue.CATALOGUE:
        click.echo(f"\n{w.key}  [{w.extractor}: {w.use}]")
        click.echo(f"  file:    {w.file_name}")
        click.echo(f"  from:    {w.url}{'' if w.direct else ' (a shared folder: download by hand, then add)'}")
        click.echo(f"  format:  {w.format}: {FORMATS[w.format]}")
        click.echo(f"  sha256:  {published_digest(w)}")
        if w.note:
            click.echo(f"  note:    {w.note}")
        for f in by_key.get(w.key, []):
            click.echo(f"  store:   {f.path.name}: {_status(f)}")
        if w.key not in by_key:
            click.echo(f"  store:   not there; {install_hint(w)}")
    others = [f for f in files if not f.known]
    if others:
        click.echo("\nOther files in the store (not in the catalogue):")
        for f in others:
            click.echo(f"  {f.path.name}: {_status(f)}")
    for part in store.partials():
        click.echo(f"\npartial download {part.name} ({part.stat().st_size / 1e6:.1f} MB): rerun its "
                   "`migue weights fetch` to resume it")
    if any(f.status == "MISMATCH" for f in files):
        click.secho("\nA file named like a published checkpoint has a different SHA-256: fetch it again.",
                    fg="red", err=True)
    if any(f.status == CHANGED for f in files):
        click.secho("\nA stored file's bytes changed since it entered the store: fetch or add it again.",
                    fg="red", err=True)
    return 1 if any(f.status in ("MISMATCH", CHANGED) for f in files) else 0


def _status(f: StoredFile) -> str:
    if f.record is None:
        when = "hashed now; not in the manifest"
    elif f.changed:
        when = f"hashed now; {f.record.sha256} was recorded {f.record.recorded}"
    else:
        when = f"hashed now, as recorded {f.record.recorded}"
    checked = f"; at entry: {f.record.check}" if f.record else ""
    source = f"; from {f.record.source}" if f.record else ""
    status = "no published hash to check" if f.status == "unknown" else f.status
    return f"{status} (sha256 {f.sha256}, {when}{checked}{source})"
