"""Fetching checkpoints into the weights store: resumable, checked, published whole.

A download grows in `.<name>.part` (kept between runs, so an interrupted one resumes with an
HTTP Range request whose If-Range names the version it holds: see resume.py), is hashed, checked
against the published SHA-256 (or its prefix), and only then renamed onto its published name.
A mismatch or a full disk removes the partial file: the store never holds a file that was not
checked whole.
"""
from __future__ import annotations

import errno
import fcntl
import http.client
import logging
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.error import HTTPError, URLError
from urllib.parse import quote, unquote, urlparse
from urllib.request import Request, url2pathname, urlopen

from tqdm import tqdm

from migue.cache.atomic import publish, write_all
from migue.common.files import file_sha256
from migue.extractors.weights import KnownWeights, by_file_name

from . import resume
from .resume import Version
from .store import MANIFEST, WeightsError, WeightsStore, install_hint

log = logging.getLogger("migue.weights")
CHUNK = 1 << 20
MIRROR_ENV = "MIGUE_WEIGHTS_MIRROR"
HEX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class Wanted:
    """A file to bring into the store, and what its SHA-256 must be."""

    name: str               # file name in the store (the published one)
    source: str             # URL, or a local file (a mirror folder)
    key: str | None         # catalogue key; None for `--url`
    sha256: str | None      # full expected digest
    prefix: str | None      # expected digest prefix (publishers' file names carry 8 hex digits)
    unchecked_why: str = "no digest is published for it"
    origin: str = "published"  # who states the digest: the publisher, or `--sha256`

    def check(self, digest: str) -> tuple[bool, str]:
        """(does `digest` pass, what was checked in words)."""
        if self.sha256:
            ok = digest == self.sha256
            return ok, f"{'matches' if ok else 'differs from'} the {self.origin} full SHA-256"
        if self.prefix:
            ok = digest.startswith(self.prefix)
            return ok, (f"{'matches' if ok else 'differs from'} the {self.origin} SHA-256 prefix {self.prefix} "
                        "(no full digest to check)")
        return True, f"NOT CHECKED: {self.unchecked_why}; the measured digest is recorded"

    def checks_digest(self) -> bool:
        """Whether a digest (full or prefix) will check the whole file before it is published."""
        return bool(self.sha256 or self.prefix)

    def expected(self) -> str:
        return self.sha256 or f"{self.prefix}... ({self.origin} prefix)"


@dataclass
class Fetched:
    """A file now in the store."""

    path: Path
    sha256: str
    check: str
    already: bool = False  # it was in the store, whole and matching, before this run
    resumed_at: int = 0    # bytes kept from an earlier interrupted download
    key: str | None = None


def for_entry(entry: KnownWeights) -> Wanted:
    """A catalogue file, from $MIGUE_WEIGHTS_MIRROR when set, else from its publisher."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        source = mirror_source(mirror, entry.file_name)
    elif entry.direct:
        source = entry.url
    else:
        raise WeightsError(f"{entry.key} is published in a shared folder with no direct download: "
                           f"{install_hint(entry)}")
    return Wanted(entry.file_name, source, entry.key, entry.sha256, entry.sha256_prefix)


def for_url(url: str, sha256: str | None) -> Wanted:
    """Any file by URL (or local path); `sha256` = a full digest or a prefix of one."""
    name = unquote(Path(urlparse(url).path if "://" in url else url).name)
    if not name:
        raise WeightsError(f"--url {url}: names no file (its path ends with '/')")
    expected = sha256.strip().lower() if sha256 else None
    if expected is not None and not HEX.fullmatch(expected):
        raise WeightsError(f"--sha256 {sha256}: expected 8 to 64 hex digits (a SHA-256 or a prefix of one)")
    published = by_file_name(name)
    if published and not expected:  # a catalogue file by another URL: the publisher's digest holds
        return Wanted(name, url, published.key, published.sha256, published.sha256_prefix)
    full = expected if expected and len(expected) == 64 else None
    prefix = expected if expected and len(expected) < 64 else None
    return Wanted(name, url, None, full, prefix, "no --sha256 given", origin="--sha256")


def mirror_source(mirror: str, file_name: str) -> str:
    """Where a mirror (a base URL or a local folder) holds a published file name."""
    if "://" in mirror:
        if urlparse(mirror).scheme == "file":
            return str(Path(url2pathname(urlparse(mirror).path)) / file_name)
        return mirror.rstrip("/") + "/" + quote(file_name)
    folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise WeightsError(f"{MIRROR_ENV}={mirror} is neither a URL nor an existing folder")
    return str(folder / file_name)


def fetch(wanted: Wanted, store: WeightsStore, retries: int = 3, timeout: float = 30.0,
          progress: bool = True, backoff: float = 1.0) -> Fetched:
    """Bring `wanted` into the store: skip it when the store holds it matching, else download
    (resuming a partial one, retrying an interrupted one), check and publish it."""
    store.root.mkdir(parents=True, exist_ok=True)
    final = store.path(wanted.name)
    if final.is_file():
        already = _already(wanted, store)
        if already is not None:
            return already
    part = store.partial(wanted.name)
    resumed_at: int | None = None
    for attempt in range(retries + 1):
        try:
            opened = _open(wanted, part, timeout)
            resumed_at = opened.start if resumed_at is None else resumed_at
            _receive(opened, part, wanted, store.root, progress)
            break
        except _Interrupted as exc:
            if attempt == retries:
                raise WeightsError(f"{wanted.name}: download interrupted at {_mb(exc.at)} of {_mb(exc.total)} "
                                   f"({exc.why}); the partial download is kept as {part}: rerun the same "
                                   "command to resume it") from None
            log.warning("%s: interrupted at %s (%s); resuming (retry %d of %d)", wanted.name, _mb(exc.at),
                        exc.why, attempt + 1, retries)
            time.sleep(backoff * (attempt + 1))
    return publish_checked(wanted, store, part, resumed_at or 0)


def _already(wanted: Wanted, store: WeightsStore) -> Fetched | None:
    """The stored file, hashed now, when it passes `wanted`'s digest (or, with none to check, is
    byte for byte what was recorded); None when it must be fetched again."""
    final = store.path(wanted.name)
    digest, rec = store.digest(wanted.name)
    ok, check = wanted.check(digest)
    if not wanted.checks_digest():
        ok = rec is None or rec.sha256 == digest
    if not ok:
        was = wanted.expected() if wanted.checks_digest() else f"{rec.sha256} (recorded when it entered the store)"
        log.warning("%s in %s has SHA-256 %s, expected %s: fetching it again", wanted.name, store.root, digest, was)
        return None
    if rec is None or rec.sha256 != digest:
        _record(store, wanted, digest, check, source=rec.source if rec else str(final))
    resume.discard(store.partial(wanted.name))  # a stale earlier attempt
    return Fetched(final, digest, check, already=True, key=wanted.key)


def receive_local(wanted: Wanted, store: WeightsStore) -> Path:
    """Copy a local file whole into the store's partial name (for `migue weights add`); on any
    failure the partial copy is removed."""
    store.root.mkdir(parents=True, exist_ok=True)
    part = store.partial(wanted.name)
    try:
        _receive(_open_file(wanted, 0, None), part, wanted, store.root, progress=True)
    except BaseException:
        resume.discard(part)
        raise
    return part


def publish_checked(wanted: Wanted, store: WeightsStore, part: Path, resumed_at: int = 0,
                     extra_check: str = "") -> Fetched:
    """Hash the partial file; a mismatch deletes it, a match is renamed onto its name and recorded."""
    digest = file_sha256(str(part))
    ok, check = wanted.check(digest)
    if not ok:
        resume.discard(part)
        raise WeightsError(f"{wanted.name}: SHA-256 mismatch, the download was deleted: expected "
                           f"{wanted.expected()}, measured {digest} (from {wanted.source})")
    check = f"{extra_check}; {check}" if extra_check else check
    final = store.path(wanted.name)
    publish(part, final)
    resume.discard(part)  # its version record
    _record(store, wanted, digest, check, wanted.source)
    return Fetched(final, digest, check, resumed_at=resumed_at, key=wanted.key)


def _record(store: WeightsStore, wanted: Wanted, digest: str, check: str, source: str) -> None:
    try:
        store.record(wanted.name, digest, wanted.key, source, check)
    except OSError as exc:
        raise WeightsError(f"{wanted.name} is checked and in {store.root}, but {MANIFEST} could not be updated "
                           f"({exc.strerror or exc}); it is unchanged: rerun the command to record the file") from None


# ---------------------------------------------------------------- transfer
@dataclass
class _Opened:
    stream: IO[bytes]
    start: int               # byte offset the stream starts at (0: from the beginning)
    total: int | None        # the whole file's size, when the source says it
    version: Version | None = None  # what the source named its bytes (recorded for a later resume)


class _Interrupted(Exception):
    def __init__(self, at: int, total: int | None, why: str) -> None:
        super().__init__(why)
        self.at, self.total, self.why = at, total, why


def _open(wanted: Wanted, part: Path, timeout: float) -> _Opened:
    """The source from where `part` ends, when that is safe: the version it holds is known (and
    is checked against the source's), or a digest will check the whole file; else from byte 0."""
    offset = part.stat().st_size if part.exists() else 0
    held = resume.load(part, wanted.source) if offset else None
    if offset and held is None and not wanted.checks_digest():
        log.warning("%s: the partial download's version is unknown and no digest will check it: "
                    "starting again from the first byte", wanted.name)
        offset = 0
    if "://" not in wanted.source:
        return _open_file(wanted, offset, held)
    if urlparse(wanted.source).scheme == "file":
        return _open_file(wanted, offset, held, Path(url2pathname(urlparse(wanted.source).path)))
    return _open_http(wanted, part, offset, timeout, held)


def _open_file(wanted: Wanted, offset: int, held: Version | None, path: Path | None = None) -> _Opened:
    path = path or Path(wanted.source)
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        where = f" (the {MIRROR_ENV} folder)" if os.environ.get(MIRROR_ENV) and wanted.key else ""
        raise WeightsError(f"{wanted.name}: no such file {path}{where}") from None
    st = os.fstat(stream.fileno())
    version = resume.from_file(wanted.source, st)
    if offset > st.st_size or (held is not None and held.contradicts(version)):
        offset = 0  # another file than the partial download came from
    stream.seek(offset)
    return _Opened(stream, offset, st.st_size, version)


def _open_http(wanted: Wanted, part: Path, offset: int, timeout: float, held: Version | None) -> _Opened:
    headers = {"User-Agent": "migue-weights/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if held is not None and held.if_range():
            headers["If-Range"] = held.if_range()  # a changed file comes back whole (200)
    try:
        response = urlopen(Request(wanted.source, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: complete, or another file now
            whole = _range_total(exc.headers.get("Content-Range", ""))
            exc.close()
            if whole == offset:
                return _Opened(_Empty(), offset, offset)
            return _again(wanted, part, timeout)
        raise WeightsError(f"{wanted.name}: {wanted.source} answered HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        host = urlparse(wanted.source).netloc
        raise WeightsError(f"cannot reach {host} to fetch {wanted.name} ({_why(exc, timeout)}); without network, "
                           f"set {MIRROR_ENV} to a folder or URL holding the published files, or copy the file "
                           "here and use `migue weights add`") from None
    if response.status != 206:
        total = _int(response.headers.get("Content-Length"))
        return _Opened(response, 0, total, resume.from_headers(wanted.source, response.headers, total))
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if not match or int(match[1]) != offset:  # not the part asked for: start again
        response.close()
        return _again(wanted, part, timeout)
    total = int(match[3]) if match[3] != "*" else None
    answer = resume.from_headers(wanted.source, response.headers, total)
    if held is not None and held.contradicts(answer):  # a server that ignored If-Range
        log.warning("%s: the server's file changed since the partial download (%s): starting again",
                    wanted.name, answer.etag or answer.modified or f"{total} bytes")
        response.close()
        return _again(wanted, part, timeout)
    return _Opened(response, offset, total)


def _again(wanted: Wanted, part: Path, timeout: float) -> _Opened:
    """Drop the partial download and ask for the whole file."""
    resume.discard(part)
    return _open_http(wanted, part, 0, timeout, None)


def _receive(opened: _Opened, part: Path, wanted: Wanted, root: Path, progress: bool) -> None:
    """Write the stream into `part` from `opened.start` on; a full disk removes `part`."""
    try:
        _check_space(opened, wanted, root)
    except WeightsError:
        opened.stream.close()
        raise
    fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WeightsError(f"{wanted.name}: another process is downloading it into {root} "
                               f"(it holds {part.name}); wait for it to finish") from None
        if opened.start == 0:  # a fresh download: record which version it is, before its bytes
            resume.save(part, opened.version or Version(wanted.source))
        os.ftruncate(fd, opened.start)
        os.lseek(fd, opened.start, os.SEEK_SET)
        at = _copy(opened, fd, wanted.name, progress)
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        resume.discard(part)
        raise WeightsError(f"no space left in {root} while writing {wanted.name}: the partial download was "
                           f"removed and the store is unchanged; free space (or set MIGUE_WEIGHTS to another "
                           "folder) and rerun") from None
    finally:
        os.close(fd)
        opened.stream.close()
    if opened.total is not None and at < opened.total:
        raise _Interrupted(at, opened.total, "the connection closed early")


def _copy(opened: _Opened, fd: int, name: str, progress: bool) -> int:
    """Stream into `fd` with a progress bar (shown on a terminal); returns the end offset."""
    at = opened.start
    with tqdm(total=opened.total, initial=at, unit="B", unit_scale=True, unit_divisor=1024, desc=name[:40],
              disable=None if progress else True, mininterval=0.5, leave=True) as bar:
        while True:
            try:
                block = opened.stream.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _Interrupted(at, opened.total, _why(exc, None)) from None
            if not block:
                return at
            write_all(fd, block)
            at += len(block)
            bar.update(len(block))


def _check_space(opened: _Opened, wanted: Wanted, root: Path) -> None:
    if opened.total is None:
        return
    need, free = opened.total - opened.start, shutil.disk_usage(root).free
    if need > free:
        raise WeightsError(f"{wanted.name} needs {_mb(need)} more, and {root} has {_mb(free)} free: free space "
                           "(or set MIGUE_WEIGHTS to another folder) and rerun")


class _Empty:
    def read(self, n: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


def _why(exc: BaseException, timeout: float | None) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved: {reason.strerror}"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    return str(reason) or type(reason).__name__


def _range_total(content_range: str) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", content_range.strip())
    return int(match[1]) if match else None


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _mb(n: int | None) -> str:
    return "? MB" if n is None else f"{n / 1e6:.1f} MB"
