"""Finite or failed: tokens holding NaN or inf, or values float16 cannot hold, are never stored."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class NonFiniteTokensError(ValueError):
    """Tokens that are not finite in the entry's dtype; the message names the units and streams."""


def token_problem(x: np.ndarray, dtype: str | np.dtype) -> str | None:
    """Why `x` cannot be stored as `dtype` (NaN, inf, or past the dtype's range), else None."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return None
    if np.isnan(x).any():
        return "tokens hold NaN"
    if np.isinf(x).any():
        return "tokens hold inf"
    target = np.dtype(dtype)
    if target.kind == "f" and x.size and target.itemsize < x.dtype.itemsize:
        peak = float(np.abs(x).max())
        limit = float(np.finfo(target).max)
        if peak > limit:
            return f"tokens overflow {target.name} (max |x| {peak:.4g} > {limit:.0f})"
    return None


def nonfinite_units(unit_ids: Sequence[str], streams: Mapping[str, Sequence[np.ndarray]],
                    dtype: str | np.dtype) -> dict[str, str]:
    """Unit id -> reason (naming the stream) for every unit with a token that cannot be stored."""
    out: dict[str, str] = {}
    for name, arrays in streams.items():
        for uid, x in zip(unit_ids, arrays):
            why = token_problem(x, dtype)
            if why and uid not in out:
                out[uid] = f"stream {name!r}: {why}"
    return out
