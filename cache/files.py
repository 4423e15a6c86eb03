"""Input files as content: regular files only, fingerprinted by their bytes (BLAKE3).

A fingerprint is `b3:<32 hex>` (128 bits of BLAKE3) of exactly the bytes hashed. Hashing a
large dataset on every run would cost what reading it does, so file fingerprints are memoised
in a small SQLite table under the cache root, keyed by the file's (st_dev, st_ino, st_size,
st_mtime_ns, st_ctime_ns): a file rewritten in place gets a new mtime and ctime (ctime cannot
be set back from user space, so even an edit that restores the mtime is seen).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Iterable
from pathlib import Path

import blake3

log = logging.getLogger("migue.cache")

MEMO_FILE = "fingerprints.sqlite"
BLOCK = 1 << 22


class NotARegularFileError(OSError):
    """A FIFO, device, socket or folder where a file was expected: never opened, never hashed."""


def require_regular_file(path: str | os.PathLike) -> os.stat_result:
    """The file's stat, or NotARegularFileError naming it (symlinks to regular files are fine)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a plain file")
        raise NotARegularFileError(f"{path}: not a regular file ({kind}); refusing to read it")
    return st


def fingerprint_bytes(*parts: bytes | str) -> str:
    """Fingerprint of a sequence of byte strings (each length-prefixed, so parts cannot shift)."""
    h = blake3.blake3()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return "b3:" + h.hexdigest(16)


def part_of(fingerprint: str, part: str) -> str:
    """One part of a unit fingerprint `<part>=<hash>;...` ('' when absent)."""
    for item in str(fingerprint).split(";"):
        name, _, value = item.partition("=")
        if name == part:
            return value
    return ""


def _hash_file(path: str | os.PathLike) -> str:
    h = blake3.blake3()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return "b3:" + h.hexdigest(16)


class FingerprintMemo:
    """File fingerprints by (device, inode, size, mtime_ns, ctime_ns), kept in SQLite under the
    cache root. A memo that cannot be opened (read-only disk, corrupt file) is skipped with a
    warning: fingerprints are then computed, never guessed."""

    def __init__(self, root: str | os.PathLike | None) -> None:
        self.path = Path(root) / MEMO_FILE if root is not None else None
        self.hits = self.misses = 0
        self.hashed_bytes = 0
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[int, int, int, int, int, str]] = []
        self._opened_pid = -1

    def _conn(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is not None and self._opened_pid == os.getpid():
            return self._db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60)
            db.execute("CREATE TABLE IF NOT EXISTS memo (dev INTEGER, ino INTEGER, size INTEGER, "
                       "mtime INTEGER, ctime INTEGER, fp TEXT, PRIMARY KEY (dev, ino))")
        except sqlite3.Error as exc:
            log.warning("fingerprint memo %s unusable (%s): hashing every input", self.path, exc)
            self.path = None
            return None
        self._db, self._opened_pid = db, os.getpid()
        return db

    def file(self, path: str | os.PathLike) -> str:
        """The fingerprint of a regular file's bytes (NotARegularFileError for anything else)."""
        st = require_regular_file(path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        db = self._conn()
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                row = db.execute("SELECT fp FROM memo WHERE dev=? AND ino=? AND size=? AND mtime=? AND ctime=?",
                                 key).fetchone()
                if row:
                    self.hits += 1
                    return str(row[0])
        digest = _hash_file(path)
        if os.stat(path).st_mtime_ns != st.st_mtime_ns:  # changed while hashing: do not remember it
            return digest
        self.misses += 1
        self.hashed_bytes += st.st_size
        self._pending.append((*key, digest))
        if len(self._pending) >= 512:
            self.flush()
        return digest

    def files(self, paths: Iterable[str | os.PathLike]) -> str:
        """One fingerprint over several files, by name (a folder of per-frame JSON files)."""
        return fingerprint_bytes(*(f"{Path(p).name}={self.file(p)}" for p in paths))

    def flush(self) -> None:
        """Write the fingerprints computed since the last flush."""
        db = self._conn()
        if db is None or not self._pending:
            self._pending = []
            return
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)", self._pending)
        except sqlite3.Error as exc:
            log.warning("could not update the fingerprint memo %s: %s", self.path, exc)
        self._pending = []

    def close(self) -> None:
        self.flush()
        if self._db is not None and self._opened_pid == os.getpid():
            self._db.close()
        self._db = None

    def __getstate__(self) -> dict[str, object]:
        self.flush()
        return {**self.__dict__, "_db": None, "_pending": [], "_opened_pid": -1}


def fingerprint_file(path: str | os.PathLike, memo: FingerprintMemo | None = None) -> str:
    """Fingerprint of one file's bytes (through `memo` when given)."""
    return (memo or FingerprintMemo(None)).file(path)


_MEMOS: dict[str, FingerprintMemo] = {}


def memo_for(root: str | os.PathLike | None) -> FingerprintMemo:
    """The process's memo for one cache root (None: no memo, every file is hashed)."""
    key = str(root)
    if key not in _MEMOS:
        _MEMOS[key] = FingerprintMemo(root)
    return _MEMOS[key]
