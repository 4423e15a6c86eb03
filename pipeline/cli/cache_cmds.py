"""`migue cache`: list, verify, digest and clean the feature store."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migue.cache import FeatureStore

if TYPE_CHECKING:
    from migue.cache.listing import EntryListing

from .options import CACHE_HELP, DEFAULT_WINDOW, data_layouts, modality_plugin_option

DATA_LAYOUTS = data_layouts()


@click.group()
def cache() -> None:
    """Inspect, check and clean the feature store."""


WIDTH = 120  # columns of `cache ls`
NAME_WIDTH = 31  # `context-mvit-small-<12 hex>`; longer names are shortened (full in --long, --json)


@cache.command("ls")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--long", "long_", is_flag=True, help="One block per entry: full name, folder, every field.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of the entries (every field).")
def cache_ls(root: Path | None, long_: bool, as_json: bool) -> None:
    """List the entries: modality, backbone/arch, frames, input size, units published of those its
    last extract asked for, complete or not (an entry being written, interrupted before its first
    shard, or missing units is incomplete, and says why), size on disk, and the dataset it came from."""
    import json

    from migue.cache.listing import entry_listing

    store = FeatureStore(root)
    rows = []
    for entry_dir in store.entry_dirs():
        try:
            rows.append(entry_listing(entry_dir))
        except (OSError, ValueError) as exc:
            click.echo(f"skipping cache entry {entry_dir.name}: {exc} (run `migue cache verify`)", err=True)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=1))
        return
    if not rows:
        click.echo(f"no entries in {store.root}")
        return
    if long_:
        for r in rows:
            _echo_long(r)
    else:
        _echo_table(rows)
    total = sum(r.disk_bytes for r in rows)
    incomplete = sum(not r.complete for r in rows)
    click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'} in {store.root}, {total / 1e6:.2f} MB on disk"
               + (f"; {incomplete} incomplete" if incomplete else ""))


def _fit(text: str, width: int, keep: str = "start") -> str:
    """`text` cut to `width` columns with an ellipsis (keeping its start, or its end for paths)."""
    if len(text) <= width:
        return text
    return text[:width - 1] + "~" if keep == "start" else "~" + text[-(width - 1):]


def _units(r: EntryListing) -> str:
    return f"{r.units}/{r.wanted}" if r.wanted is not None else str(r.units)


def _echo_table(rows: list[EntryListing]) -> None:
    kind = max([len("modality"), *(len(r.modality) for r in rows)])  # 'pose@dense' is wider than the heading
    head = (f"{'entry':<{NAME_WIDTH}} {'modality':<{kind}} {'backbone/arch':<16} {'frames':>6} {'size':>4} "
            f"{'units':>9} {'status':<10} {'MB':>8} ")
    click.echo(head + "dataset")
    room = WIDTH - len(head)
    for r in rows:
        backbone = f"{r.backbone}/{r.arch}" if r.arch else r.backbone
        line = (f"{_fit(r.name, NAME_WIDTH):<{NAME_WIDTH}} {r.modality:<{kind}} {_fit(backbone, 16):<16} "
                f"{r.frames if r.frames is not None else '-':>6} {r.size if r.size is not None else '-':>4} "
                f"{_units(r):>9} {'complete' if r.complete else 'incomplete':<10} {r.disk_bytes / 1e6:>8.2f} ")
        click.echo(line + _fit(",".join(r.dataset) or "-", room, keep="end"))
        if not r.complete:
            click.echo(textwrap.fill(r.why, WIDTH, initial_indent="  incomplete: ", subsequent_indent="    "))
    if any(len(r.name) > NAME_WIDTH for r in rows):
        click.echo("(names shortened: `--long` shows them whole)")


def _echo_long(r: EntryListing) -> None:
    click.echo(r.name)
    fields = [("folder", r.path), ("modality", r.modality), ("backbone", r.backbone), ("arch", r.arch or "-"),
              ("frames", r.frames if r.frames is not None else "-"), ("size", r.size if r.size is not None else "-"),
              ("units", f"{_units(r)} published" + (" (of those its last extract asked for)" if r.wanted is not None
                                                     else "")),
              ("failed", r.failed), ("shards", r.shards),
              ("status", "complete" if r.complete else f"incomplete: {r.why}"),
              ("on disk", f"{r.disk_bytes} bytes ({r.disk_bytes / 1e6:.2f} MB)"),
              ("dataset", ", ".join(r.dataset) or "- (not recorded)"), ("layout", r.layout or "-")]
    if r.plugin:
        fields.insert(2, ("plugin", r.plugin))  # the modality's row: `cache verify --data` needs it
    for key, value in fields:
        click.echo(textwrap.fill(f"{value}", WIDTH, initial_indent=f"  {key + ':':<10}", subsequent_indent=" " * 12,
                                 break_long_words=False, break_on_hyphens=False))


@cache.command("rm", short_help="Remove entries (refused while an extract writes them).")
@click.argument("names", nargs=-1, required=True, metavar="ENTRY...")
@click.option("--cache", "root", type=click.Path(path_type=Path), default=None, help=CACHE_HELP)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def cache_rm(names: tuple[str, ...], root: Path | None, dry_run: bool) -> None:
    """Remove the named entries (names as `migue cache ls --long` shows them, or their folders). Each is
    renamed to a trash name, then deleted: an interruption leaves the entry whole or gone, never a
    part that looks whole. Nothing is removed if any name is unknown or any entry is being written."""
    from migue.cache.listing import remove_entry, remove_trash

    store = FeatureStore(root)
    dirs = list(dict.fromkeys(store.resolve(n) for n in names))  # every name known before anything goes
    for entry_dir in dirs:
        remove_entry(entry_dir, dry_run=True)  # refuses an entry being written, before any is removed
    for path in ([] if dry_run else remove_trash(store.root)):
        click.echo(f"removed {path.name} (left by an interrupted `cache rm`)")
    verb = "would remove" if dry_run else "removed"
    total = 0
    for entry_dir in dirs:
        gone = remove_entry(entry_dir, dry_run=dry_run)
        total += gone.bytes
        click.echo(f"{verb} {gone.name}: {gone.files} files, {gone.bytes} bytes ({gone.bytes / 1e6:.2f} MB)")
    click.echo(f"{verb} {len(dirs)} entr{'y' if len(dirs) == 1 else 'ies'}, {total} bytes ({total / 1e6:.2f} MB)")


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
@modality_plugin_option
def cache_verify(entries: tuple[str, ...], root: Path | None, data_root: Path | None, data_layout: str,
                 window: int) -> None:
    """Check every shard of the entries (default: all) against its SHA-256 and size in the index,
    its HDF5 structure, finiteness and token counts; name each bad shard and unit. With --data,
    also list units whose inputs changed (an entry of a plugin's modality needs that --plugin, as
    extracted). Exit 1 if any is bad."""
    from migue.cache import verify_entry

    from migue.pipeline.extraction.fingerprints import UnknownModalityError, changed_inputs

    bad = 0
    store = FeatureStore(root)
    for entry_dir in _entry_dirs(store, entries):
        report = verify_entry(entry_dir)
        if data_root is not None and report.ok:
            try:
                stale = changed_inputs(entry_dir, data_root, data_layout, window, store.root)
            except UnknownModalityError as exc:  # one entry's missing plugin never stops the others' checks
                report.problems.append(f"inputs not checked: {exc}")
            else:
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

