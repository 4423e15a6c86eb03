"""The weights store: released checkpoints under their published names, and a manifest.

The store is `$MIGUE_WEIGHTS`, else `<cache root>/weights`. Files reach it only whole and
checked (fetched or added to a temp name, fsynced, renamed, the folder fsynced); `manifest.json`
beside them records each file's full SHA-256 as measured, where it came from and what was checked,
and is itself replaced atomically under a lock, so a kill at any point leaves either the old or
the new manifest and never a published half file. What the store serves is hashed when served
(a same-size edit with its mtime put back is still seen), and no file may take a name the store
uses itself (`manifest.json`, dot files).
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
OWN_NAMES = (MANIFEST,)  # the store's own files (compared case-folded: some file systems fold case)
CHANGED = "CHANGED since recorded"


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
    status: str              # verified / prefix matches / MISMATCH / CHANGED... / unknown / not catalogued
    record: Record | None

    @property
    def changed(self) -> bool:
        """The file's bytes are not those recorded when it entered the store."""
        return self.record is not None and self.record.sha256 != self.sha256


class WeightsStore:
    """A folder of checkpoints and its manifest."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        """Where file `name` lives; names the store uses itself are refused (they would clobber it)."""
        if not name or name.startswith(".") or "/" in name or "\\" in name or "\x00" in name:
            raise WeightsError(f"refusing file name {name!r}: it must be a plain name inside {self.root}")
        if name.casefold() in (own.casefold() for own in OWN_NAMES):
            raise WeightsError(f"refusing file name {name!r}: {MANIFEST} is the weights store's own index "
                               f"in {self.root}; download that file elsewhere")
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

    def digest(self, name: str) -> tuple[str, Record | None]:
        """(full SHA-256 of the file as it is now, its manifest record): always hashed, since a
        size and mtime can be put back after an edit."""
        return file_sha256(str(self.path(name))), self.records().get(name)

    def files(self) -> list[StoredFile]:
        """Every checkpoint-like file in the store, hashed and matched against the catalogue."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(p for p in self.root.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix in CHECKPOINT_SUFFIXES):
            digest, rec = self.digest(path.name)
            known = ((rec and rec.key and catalogue.by_key(rec.key)) or catalogue.by_digest(digest)
                     or catalogue.by_file_name(path.name))
            status = known.hash_status(digest) if known else "not catalogued"
            if rec is not None and rec.sha256 != digest and status not in ("verified", "MISMATCH"):
                status = CHANGED
            found.append(StoredFile(path, digest, known, status, rec))
        return found

    def served(self, name: str, entry: KnownWeights | None = None) -> Path:
        """The path of stored file `name`, hashed now: refused when it contradicts the published
        digest of `entry` or the digest recorded when it entered the store."""
        digest, rec = self.digest(name)
        path = self.path(name)
        if entry is not None and entry.hash_status(digest) == "MISMATCH":
            raise WeightsError(f"{path} has SHA-256 {digest}, not the published {published_or_prefix(entry)}"
                               f"{_recorded(rec)}: run `migue weights fetch {entry.key}` to fetch it again")
        if rec is not None and rec.sha256 != digest and not (entry and entry.hash_status(digest) == "verified"):
            raise WeightsError(f"{path} has SHA-256 {digest}, but {rec.sha256} was recorded when it entered "
                               "the store (it changed since): fetch or add it again")
        return path


def published_or_prefix(entry: KnownWeights) -> str:
    return entry.sha256 or f"prefix {entry.sha256_prefix}"


def _recorded(rec: Record | None) -> str:
    return f" ({rec.sha256} was recorded when it entered the store)" if rec else ""


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
        if (store.root / entry.file_name).is_file():
            return str(store.served(entry.file_name, entry))
        raise WeightsError(f"--checkpoint {value}: {entry.file_name} is not in the weights store {store.root}; "
                           f"run {install_hint(entry)} (or set MIGUE_WEIGHTS to the folder that holds it)")
    if "/" not in value and not value.startswith(".") and (store.root / value).is_file():
        return str(store.served(value, catalogue.by_file_name(value)))
    if "/" in value or value.endswith(CHECKPOINT_SUFFIXES):
        return value  # a path: the loader says it does not exist
    keys = ", ".join(w.key for w in catalogue.CATALOGUE)
    raise WeightsError(f"--checkpoint {value}: no such file, and not a weights catalogue key ({keys})")
