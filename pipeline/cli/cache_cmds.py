"""`migue cache`: list, verify, digest and clean the feature store."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from migue.cache import FeatureStore

from .options import CACHE_HELP, DEFAULT_WINDOW, data_layouts

DATA_LAYOUTS = data_layouts()


@click.group()
def cache() -> None:
    """Inspect, check and clean the feature store."""


@cache.command("ls")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
def cache_ls(root: Path | None) -> None:
    """List entries with their unit counts and sizes."""
    store = FeatureStore(root)
    entries = store.entries()
    if not entries:
        click.echo(f"no entries in {store.root}")
        return
    click.echo(f"{'entry':<48} {'modality':<8} {'units':>7} {'shards':>6} {'failed':>6} {'MB':>9}")
    for e in entries:
        click.echo(f"{e.name:<48} {e.modality:<8} {e.units:>7} {e.shards:>6} {e.failures:>6} "
                   f"{e.bytes / 1e6:>9.2f}")


def _entry_dirs(store: FeatureStore, names: tuple[str, ...]) -> list[Path]:
    dirs = [store.resolve(n) for n in names] if names else store.entry_dirs()
    if not dirs:
        raise click.ClickException(f"no entries in {store.root}")
    return dirs


@cache.command("verify", short_help="Check shards against the index; name the bad ones.")
@click.argument("entries", nargs=-1, metavar="[ENTRY]...")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Also list the units whose inputs under this dataset folder changed since they were "
                   "extracted (content fingerprints of their video, skeleton and label row).")
@click.option("--layout", "data_layout", type=click.Choice(DATA_LAYOUTS), default="auto", show_default=True,
              help="Layout of --data.")
@click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True,
              help="Frames per emotion window (as extracted).")
def cache_verify(entries: tuple[str, ...], root: Path | None, data_root: Path | None, data_layout: str,
                 window: int) -> None:
    """Check every shard of the entries (default: all) against its SHA-256 and size in the index,
    its HDF5 structure, finiteness and token counts; name each bad shard and unit. With --data,
    also list units whose inputs changed. Exit 1 if any is bad."""
    from migue.cache import verify_entry

    from migue.pipeline.extraction.fingerprints import changed_inputs

    bad = 0
    store = FeatureStore(root)
    for entry_dir in _entry_dirs(store, entries):
        report = verify_entry(entry_dir)
        if data_root is not None and report.ok:
            stale = changed_inputs(entry_dir, data_root, data_layout, window, store.root)
            report.problems.extend(f"input changed: unit {uid}: {why}" for uid, why in sorted(stale.items()))
        status = "ok" if report.ok else "FAILED"
        click.echo(f"{status:<6} {report.entry}: {report.shards} shards, {report.units} units verified")
        for problem in report.problems:
            click.echo(f"  bad shard {problem}" if problem.startswith("shard-") else f"  {problem}")
        for warning in report.warnings:
            click.echo(f"  note: {warning}")
        bad += not report.ok
    if bad:
        click.echo(f"{bad} entr{'y' if bad == 1 else 'ies'} failed verification", err=True)
        sys.exit(1)


@cache.command("digest", short_help="Content hash of an entry's unit ids and tokens.")
@click.argument("entry")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
def cache_digest(entry: str, root: Path | None) -> None:
    """Print a content hash of ENTRY's unit ids and token bytes (first line), then one per stream.
    It ignores shard layout and unit order: equal digests mean the same units with bit-identical
    tokens, on two machines or after an interrupted and resumed run."""
    from migue.cache import digest_entry

    digest = digest_entry(FeatureStore(root).resolve(entry))
    click.echo(f"{digest.entry}  {Path(entry).name}")
    click.echo(f"  unit_ids  {digest.units:>7} units  {digest.unit_ids}")
    for stream, value in digest.streams.items():
        click.echo(f"  {stream:<9} {digest.units:>7} units  {value}")


@cache.command("gc", short_help="Remove what killed runs left behind.")
@click.argument("entries", nargs=-1, metavar="[ENTRY]...")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
def cache_gc(entries: tuple[str, ...], root: Path | None, dry_run: bool) -> None:
    """Remove what killed runs left in the entries (default: all): temp files of dead writers,
    shards never recorded in the index whose units are published already or that cannot be read
    (others are adopted into the index), stale claim files; without ENTRY also torn parsed
    skeletons and dead writers' temp files under parsed/. Published shards are never touched."""
    from migue.cache import collect_garbage, collect_parsed

    verb = "would remove" if dry_run else "removed"
    store = FeatureStore(root)
    if not entries:
        swept = collect_parsed(store.root, dry_run=dry_run)
        click.echo(f"parsed/: {verb} {len(swept)} files")
        for name, why in swept:
            click.echo(f"  {verb} parsed/{name}: {why}")
    for entry_dir in _entry_dirs(store, entries):
        report = collect_garbage(entry_dir, dry_run=dry_run)
        removed = len(report.temp_files) + len(report.orphans) + len(report.claims)
        click.echo(f"{report.entry}: {verb} {len(report.temp_files)} temp files, {len(report.orphans)} "
                   f"orphan shards, {len(report.claims)} claim files ({report.bytes_freed / 1e6:.2f} MB); "
                   f"{'would adopt' if dry_run else 'adopted'} {len(report.adopted)} shards")
        for name in report.temp_files:
            click.echo(f"  {verb} temp file {name}")
        for name, why in report.orphans:
            click.echo(f"  {verb} orphan shard {name}: {why}")
        for name in report.adopted:
            click.echo(f"  {'would adopt' if dry_run else 'adopted'} shard {name}")
        if not removed and not report.adopted:
            click.echo("  nothing to do")

