"""Which version of a source a partial download holds, so a resume never splices two versions.

Beside `.<name>.part` the store keeps `.<name>.part.json`: the source, its version as the server
named it (its strong ETag and its Last-Modified, each compared; for a local file its size and
mtime) and its size.
A resume sends `If-Range` with that version: a server whose file changed answers 200 with the
whole new file. A partial download whose version is not known is resumed only when a published
or given digest will check the whole file; otherwise it starts again from the first byte.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from email.message import Message
from pathlib import Path

from migue.cache.atomic import atomic_write_bytes

SIDECAR = ".json"


@dataclass(frozen=True)
class Version:
    """What identifies the bytes a source served: compared before any byte is appended."""

    source: str
    etag: str | None = None      # a strong ETag (a weak one cannot validate a range)
    modified: str | None = None  # Last-Modified (If-Range sends it only without a strong ETag)
    local: str | None = None     # a local file: "<size>:<mtime_ns>"
    total: int | None = None     # the whole file's size, when known

    def known(self) -> bool:
        return bool(self.etag or self.modified or self.local)

    def if_range(self) -> str | None:
        """The If-Range value naming this version (None: nothing safe to send)."""
        return self.etag or self.modified

    def contradicts(self, other: Version) -> bool:
        """True when `other` (what a resumed answer says) is visibly another version than self."""
        pairs = ((self.source, other.source), (self.etag, other.etag), (self.modified, other.modified),
                 (self.local, other.local), (self.total, other.total))
        return any(a is not None and b is not None and a != b for a, b in pairs)


def from_headers(source: str, headers: Message, total: int | None) -> Version:
    """The version an HTTP answer names: its strong ETag and its Last-Modified, both kept (an
    answer that names either differently from the held version is another version)."""
    etag = headers.get("ETag")
    strong = etag if etag and not etag.startswith("W/") else None
    return Version(source, etag=strong, modified=headers.get("Last-Modified"), total=total)


def from_file(source: str, st: os.stat_result) -> Version:
    """The version of a local source file: its size and mtime."""
    return Version(source, local=f"{st.st_size}:{st.st_mtime_ns}", total=st.st_size)


def sidecar(part: Path) -> Path:
    return part.with_name(part.name + SIDECAR)


def load(part: Path, source: str) -> Version | None:
    """The version `part` was downloaded from; None when unknown, unreadable or of another source."""
    try:
        version = Version(**json.loads(sidecar(part).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return version if version.source == source and version.known() else None


def save(part: Path, version: Version) -> None:
    """Record `version` beside `part` (atomically; an unknown version removes the record)."""
    if not version.known():
        sidecar(part).unlink(missing_ok=True)
        return
    atomic_write_bytes(sidecar(part), json.dumps(asdict(version)).encode())


def discard(part: Path) -> None:
    """Remove a partial download and its version record."""
    part.unlink(missing_ok=True)
    sidecar(part).unlink(missing_ok=True)
