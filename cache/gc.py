"""`migue cache gc`: remove what killed writers left behind, keep everything published."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .claims import WorkClaims
from .index import TMP_PREFIX, locked, read_index, write_index
from .atomic import remove_dead_temps
from .writer import adopt_orphans


@dataclass
class GcReport:
    """What `collect_garbage` removed (or, dry run, would remove) from one entry."""

    entry: str
    temp_files: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)              # unindexed shards now in the index
    orphans: list[tuple[str, str]] = field(default_factory=list)  # unindexed shards removed, and why
    claims: list[str] = field(default_factory=list)               # claim files of dead runs
    bytes_freed: int = 0


def collect_garbage(entry_dir: str | Path, dry_run: bool = False) -> GcReport:
    """Under the entry lock: delete temp files of dead writers, adopt unindexed shards whose
    units are not published yet, delete unindexed shards that cannot be adopted (unreadable,
    or their units already published), and delete claim files no live run holds."""
    entry_dir = Path(entry_dir)
    report = GcReport(entry_dir.name)
    with locked(entry_dir):
        index = read_index(entry_dir)
        sizes = {}
        for path in entry_dir.glob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                sizes[path] = path.stat().st_size
        for path in remove_dead_temps(entry_dir, dry_run=dry_run):
            report.temp_files.append(path.name)
            report.bytes_freed += sizes.get(path, 0)
        adopted, rejected = adopt_orphans(entry_dir, index)
        report.adopted = [p.name for p in adopted]
        report.orphans = [(p.name, why) for p, why in rejected]
        report.bytes_freed += sum(p.stat().st_size for p, _ in rejected)
        if not dry_run:
            if adopted:
                write_index(entry_dir, index)
            for path, _ in rejected:
                path.unlink()
    if not dry_run:
        report.claims = [p.name for p in WorkClaims(entry_dir).remove_stale()]
    return report


PARSED_DIR = "parsed"
PARSED_TMP_MIN_AGE_S = 10.0  # a parsed-skeleton writer creates, then locks, its temp file: spare new ones


def collect_parsed(root: str | Path, dry_run: bool = False) -> list[tuple[str, str]]:
    """Sweep `<root>/parsed/` (parsed skeletons kept by content hash): temp files no live writer
    holds, and kept arrays that do not load whole (torn). Returns (file name, why) removed."""
    folder = Path(root) / PARSED_DIR
    removed = [(p.name, "temp file of a dead writer")
               for p in remove_dead_temps(folder, dry_run=dry_run, min_age_s=PARSED_TMP_MIN_AGE_S)]
    for path in sorted(folder.glob("*.npy")) if folder.is_dir() else []:
        try:
            np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            removed.append((path.name, f"torn or not an array ({exc})"))
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return removed
