"""Checking an entry against its index (`migue cache verify`) and content digests (`migue cache digest`)."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from migue.common.files import file_sha256

from .atomic import TMP_PREFIX
from .checksums import shard_digest
from .claims import CLAIMS_DIR
from .index import read_index
from .paths import safe_child
from .shard import ShardError, check_streams, open_shard, read_units
from .writer import SHARD_GLOB


@dataclass
class VerifyReport:
    """What `verify_entry` found: problems make an entry unusable; warnings are leftovers gc cleans."""

    entry: str
    shards: int = 0
    units: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_entry(entry_dir: str | Path) -> VerifyReport:
    """Check every shard the index lists: present, its size and SHA-256 as recorded, its HDF5
    structure sound, holding the units the index says; no unit published twice."""
    entry_dir = Path(entry_dir)
    report = VerifyReport(entry_dir.name)
    try:
        index = read_index(entry_dir)
    except (OSError, ValueError) as exc:
        report.problems.append(f"index: {exc}")
        return report
    dims = {name: spec.get("dim") for name, spec in index["config"].get("streams", {}).items()
            if isinstance(spec, dict)}
    seen: Counter[str] = Counter()
    for shard in index["shards"]:
        name = shard["file"]
        path = safe_child(entry_dir, name)
        report.shards += 1
        seen.update(shard["unit_ids"])
        if not path.is_file():
            report.problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != shard["bytes"]:
            how = "truncated" if size < shard["bytes"] else "grown"
            report.problems.append(f"{name}: {how}: {size} bytes, the index says {shard['bytes']}")
            continue
        if file_sha256(str(path)) != shard["sha256"]:
            report.problems.append(f"{name}: SHA-256 differs from the index (bytes changed on disk)")
            continue
        if "blake3" in shard and shard_digest(path, "blake3") != shard["blake3"]:
            report.problems.append(f"{name}: BLAKE3 differs from the index (readers refuse it)")
            continue
        try:
            ids = list(read_units(path)["unit_id"])
            if ids != shard["unit_ids"]:
                raise ShardError(f"holds {len(ids)} units that differ from the {shard['units']} the index lists")
            with open_shard(path) as f:
                check_streams(f, path, len(ids), {k: int(v) for k, v in dims.items() if v is not None})
                missing = sorted(set(dims) - set(f["streams"].keys()))
                if missing:  # a reader asking for the entry's streams would fail on this shard
                    raise ShardError(f"lacks stream(s) {', '.join(missing)} of the entry's spec")
                bad = unit_token_problems(f, ids, index["config"].get("streams", {}))
        except ShardError as exc:
            report.problems.append(f"{name}: {exc}")
            continue
        if bad:
            report.problems.extend(f"{name}: unit {uid}: {why}" for uid, why in bad.items())
            continue
        report.units += len(ids)
    twice = [u for u, n in seen.items() if n > 1]
    if twice:
        report.problems.append(f"{len(twice)} units are in more than one shard, e.g. {twice[0]}")
    listed = {s["file"] for s in index["shards"]}
    for path in sorted(entry_dir.glob(SHARD_GLOB)):
        if path.name not in listed:
            report.warnings.append(f"{path.name}: not in the index (a killed writer's; `migue cache gc` "
                                   "adopts or removes it)")
    for path in sorted(entry_dir.glob(f"{TMP_PREFIX}*")):
        report.warnings.append(f"{path.name}: temp file (a live or killed writer's; `migue cache gc` removes "
                               "dead writers' ones)")
    claims = entry_dir / CLAIMS_DIR
    if claims.is_dir() and any(claims.iterdir()):
        report.warnings.append(f"{CLAIMS_DIR}/: {sum(1 for _ in claims.iterdir())} claim file(s) of live or "
                               "killed runs")
    return report


CHECK_ROWS = 1 << 16  # tokens checked per read: bounded memory whatever the shard's size


def unit_token_problems(f: Any, ids: list[str], specs: dict[str, Any]) -> dict[str, str]:
    """Unit id -> what is wrong with its tokens: a token count other than the entry's spec
    says, or values that are not finite. Reads each stream in bounded runs of rows."""
    out: dict[str, str] = {}
    for stream, group in f["streams"].items():
        offsets = group["offsets"][()].astype(np.int64)
        want = (specs.get(stream) or {}).get("tokens") if isinstance(specs, dict) else None
        for i, uid in enumerate(ids):
            got = int(offsets[i + 1] - offsets[i])
            if want and got != int(want) and uid not in out:
                out[uid] = f"stream {stream!r} has {got} tokens, the entry's spec says {want}"
        tokens = group["tokens"]
        for lo in range(0, tokens.shape[0], CHECK_ROWS):
            block = tokens[lo:lo + CHECK_ROWS]
            finite = np.isfinite(block).all(axis=1)
            if finite.all():
                continue
            for row in (lo + np.flatnonzero(~finite)).tolist():
                i = int(np.searchsorted(offsets, row, side="right") - 1)
                what = "NaN" if np.isnan(block[row - lo]).any() else "inf"
                out.setdefault(ids[i], f"stream {stream!r} holds {what} (token {row - offsets[i]})")
    return out


@dataclass
class EntryDigest:
    """Content hashes of an entry, independent of shard layout and unit order."""

    entry: str   # hash of all below
    units: int
    unit_ids: str  # hash of the sorted unit ids
    streams: dict[str, str]  # stream -> hash of its units' (id, dtype, shape, token bytes)


def digest_entry(entry_dir: str | Path) -> EntryDigest:
    """Hash an entry's unit ids and, per stream, every unit's token bytes: two entries (on two
    machines, or one resumed after kills and one not) hash equal iff they hold the same units
    with bit-identical tokens."""
    entry_dir = Path(entry_dir)
    index = read_index(entry_dir)
    ids: list[str] = []
    per_stream: dict[str, list[bytes]] = {}
    for shard in index["shards"]:
        path = safe_child(entry_dir, shard["file"])
        units = list(read_units(path)["unit_id"])
        ids.extend(units)
        with open_shard(path) as f:
            check_streams(f, path, len(units))
            for stream, group in f["streams"].items():
                offsets = group["offsets"][()]
                tokens = group["tokens"][()]
                digests = per_stream.setdefault(stream, [])
                for i, uid in enumerate(units):
                    x = np.ascontiguousarray(tokens[offsets[i]:offsets[i + 1]])
                    h = hashlib.sha256(f"{uid}\0{x.dtype.str}\0{x.shape}\0".encode())
                    h.update(x.tobytes())
                    digests.append(h.digest())
    unit_hash = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    streams = {s: hashlib.sha256(b"".join(sorted(d))).hexdigest() for s, d in sorted(per_stream.items())}
    total = hashlib.sha256(f"units {len(ids)} {unit_hash}\n".encode())
    for stream, h in streams.items():
        total.update(f"{stream} {h}\n".encode())
    return EntryDigest(total.hexdigest(), len(ids), unit_hash, streams)
