"""The weights store: released checkpoints under their published names, and a manifest.

The store is `$MIGUE_WEIGHTS`, else `<cache root>/weights`. Files reach it only whole and
checked (fetched or added to a temp name, fsynced, renamed, the folder fsynced); `manifest.json`
beside them records each file's full SHA-256 as measured, where it came from and what was checked,
and is itself replaced atomically under a lock, so a kill at any point leaves either the old or
the new manifest and never a published half file.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from migue.cache import resolve_cache_root
from migue.cache.atomic import atomic_write_bytes
from migue.common.files import file_sha256
from migue.extractors import weights as catalogue
from migue.extractors.weights import KnownWeights

MANIFEST = "manifest.json"
PARTIAL = ".part"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class WeightsError(RuntimeError):
    """A fetch, add or lookup that cannot be done; the message is one line naming the file."""


def store_dir(folder: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Path:
    """`folder` if given, else $MIGUE_WEIGHTS, else `<cache root>/weights`."""
    if folder:
        return Path(folder).expanduser()
    env = os.environ.get("MIGUE_WEIGHTS")
    return Path(env).expanduser() if env else resolve_cache_root(cache) / "weights"


@dataclass
class Record:
    """What the manifest says of one stored file."""

    sha256: str       # full digest, measured when the file entered the store
    size: int
    mtime_ns: int
    key: str | None   # catalogue key, None for a `--url` file
    source: str       # URL or path it came from
    check: str        # what was checked before publishing, in words
    recorded: str     # UTC time


@dataclass
class StoredFile:
    """One checkpoint file of the store, with its hash status against the catalogue."""

    path: Path
    sha256: str
    known: KnownWeights | None
    status: str              # verified / prefix matches / MISMATCH / unknown / not catalogued
    record: Record | None
    hashed_now: bool         # False: digest from the manifest (size and mtime unchanged)


class WeightsStore:
    """A folder of checkpoints and its manifest."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        if not name or name.startswith(".") or "/" in name or "\\" in name or "\x00" in name:
            raise WeightsError(f"refusing file name {name!r}: it must be a plain name inside {self.root}")
        return self.root / name

    def partial(self, name: str) -> Path:
        """Where a download of `name` grows until it is checked (kept between runs to resume)."""
        return self.root / f".{name}{PARTIAL}"

    def partials(self) -> list[Path]:
        return sorted(self.root.glob(f".*{PARTIAL}")) if self.root.is_dir() else []

    def records(self) -> dict[str, Record]:
        path = self.root / MANIFEST
        try:
            data = json.loads(path.read_text())
            return {name: Record(**fields) for name, fields in data["files"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WeightsError(f"{path} is not a weights manifest ({exc}); remove it and rerun "
                               "`migue weights fetch` to re-record the files (they are hashed again)") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock on the store folder itself for manifest updates (two fetches may finish
        at once); no lock file is left in the store."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def record(self, name: str, sha256: str, key: str | None, source: str, check: str) -> Record:
        """Record a published file in the manifest (atomic replace, under the lock)."""
        st = self.path(name).stat()
        entry = Record(sha256, st.st_size, st.st_mtime_ns, key, source, check,
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        with self.locked():
            files = {n: asdict(r) for n, r in self.records().items()}
            files[name] = asdict(entry)
            text = json.dumps({"version": 1, "files": dict(sorted(files.items()))}, indent=1) + "\n"
            atomic_write_bytes(self.root / MANIFEST, text.encode())
        return entry

    def digest(self, name: str) -> tuple[str, Record | None, bool]:
        """(full SHA-256, its manifest record, hashed now?): the recorded digest while the file's
        size and mtime are those recorded, else the file hashed again."""
        rec = self.records().get(name)
        st = self.path(name).stat()
        if rec and (rec.size, rec.mtime_ns) == (st.st_size, st.st_mtime_ns):
            return rec.sha256, rec, False
        return file_sha256(str(self.path(name))), rec, True

    def files(self) -> list[StoredFile]:
        """Every checkpoint-like file in the store, matched against the catalogue."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(p for p in self.root.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix in CHECKPOINT_SUFFIXES):
            digest, rec, hashed_now = self.digest(path.name)
            known = ((rec and rec.key and catalogue.by_key(rec.key)) or catalogue.by_digest(digest)
                     or catalogue.by_file_name(path.name))
            status = known.hash_status(digest) if known else "not catalogued"
            found.append(StoredFile(path, digest, known, status, rec, hashed_now))
        return found


def install_hint(entry: KnownWeights) -> str:
    """The command that puts `entry` in the store."""
    if entry.direct or os.environ.get("MIGUE_WEIGHTS_MIRROR"):
        return f"`migue weights fetch {entry.key}`"
    return (f"download {entry.file_name} from {entry.url}, then "
            f"`migue weights add FILE --as {entry.format if _unique_format(entry) else entry.key}`")


def _unique_format(entry: KnownWeights) -> bool:
    return sum(w.format == entry.format for w in catalogue.CATALOGUE) == 1


def resolve_checkpoint(value: str, store: WeightsStore) -> str:
    """A `--checkpoint` value as a path: an existing file as given, a catalogue key (or a stored
    file's name) as its file in the store; a key not in the store says how to get it."""
    if Path(value).expanduser().is_file():
        return value
    entry = catalogue.by_key(value)
    if entry is not None:
        path = store.root / entry.file_name
        if path.is_file():
            return str(path)
        raise WeightsError(f"--checkpoint {value}: {entry.file_name} is not in the weights store {store.root}; "
                           f"run {install_hint(entry)} (or set MIGUE_WEIGHTS to the folder that holds it)")
    if "/" not in value and (store.root / value).is_file():
        return str(store.root / value)
    if "/" in value or value.endswith(CHECKPOINT_SUFFIXES):
        return value  # a path: the loader says it does not exist
    keys = ", ".join(w.key for w in catalogue.CATALOGUE)
    raise WeightsError(f"--checkpoint {value}: no such file, and not a weights catalogue key ({keys})")
