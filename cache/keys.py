"""Cache entry keys: a hash of everything that shaped the numbers."""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

FORMAT_VERSION = 2  # 2: units carry input fingerprints; the key no longer hashes a unit-set digest


def project_version() -> str:
    """The installed migue version (part of every key)."""
    try:
        return metadata.version("migue")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def canonical_json(obj: Any) -> str:
    """Stable JSON: sorted keys, no whitespace variation."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def entry_key(config: dict[str, Any]) -> str:
    """SHA-256 of the canonical config; two configs share an entry iff equal."""
    keyed = {**config, "cache_format": FORMAT_VERSION, "migue_version": project_version()}
    return hashlib.sha256(canonical_json(keyed).encode()).hexdigest()


def entry_name(config: dict[str, Any]) -> str:
    """Human-readable folder name: `<modality>-<backbone>-<arch>-<key[:12]>`; an entry of dense
    windows over whole sequences is `<modality>@dense-...`, apart from the modality's own units."""
    from .units import DENSE_KIND  # late: the unit schema imports pandas, --help must not

    parts = [str(config.get(k)) for k in ("modality", "backbone", "arch") if config.get(k)]
    if parts and config.get("modality") and config.get("unit_kind") == DENSE_KIND:
        parts[0] += f"@{DENSE_KIND}"
    return "-".join(parts + [entry_key(config)[:12]])
