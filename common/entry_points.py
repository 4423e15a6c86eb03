"""Loading one entry-point group once (heads, tasks and modalities of other packages)."""
from __future__ import annotations

import logging
from collections.abc import Collection
from importlib import metadata

log = logging.getLogger("migue")


def load_group(group: str, loaded: set[str], fatal: Collection[str] = ()) -> list[str]:
    """Import the entry points of `group` not yet in `loaded` (keys `entry-point:<value>`, added to
    it); returns the keys imported now. One that fails is logged and skipped, so that a broken
    package hides nothing else, unless its name is in `fatal` (then its error propagates)."""
    done = []
    for point in metadata.entry_points(group=group):
        key = f"entry-point:{point.value}"
        if key in loaded:
            continue
        loaded.add(key)
        try:
            point.load()
        except Exception as exc:
            if point.name in fatal:
                raise
            log.warning("plugin %s (%s, %s) failed to load: %s", point.name, group, point.value, exc)
            continue
        done.append(key)
    return done
