"""What a setting may hold: its type, its range, whether null is allowed; checked before a run starts.

Training keys declare theirs in `config.py`; a head's settings take the type of their default
(`register_head(settings=...)`) and may declare a range (`ranges=`). A bad value is one sentence:
`setting batch_size=0: expected an integer >= 1`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("int", "number", "bool", "str", "list", "any")


@dataclass(frozen=True)
class Setting:
    """A setting's type (one of KINDS), closed bounds (`high_open` excludes `high`), and whether null
    is allowed; a number is finite (NaN and infinity pass no range)."""

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    optional: bool = False

    def allows(self, value: Any) -> bool:
        """Whether `value` has this type and lies in the range."""
        if value is None:
            return self.optional or self.kind == "any"
        if not _is_kind(value, self.kind):
            return False
        if self.kind in ("int", "number"):
            if isinstance(value, float) and not math.isfinite(value):
                return False
            if self.low is not None and value < self.low:
                return False
            if self.high is not None and (value >= self.high if self.high_open else value > self.high):
                return False
        return True

    def describe(self) -> str:
        """What is allowed, as words: 'an integer >= 1', 'a number >= 0 and < 1 or null'."""
        text = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string",
                "list": "a list", "any": "any value"}[self.kind]
        bounds = ([f">= {_num(self.low)}"] if self.low is not None else []) + \
                 ([f"{'<' if self.high_open else '<='} {_num(self.high)}"] if self.high is not None else [])
        if bounds and self.kind in ("int", "number"):
            text += " " + " and ".join(bounds)
        return text + (" or null" if self.optional else "")

    def check(self, key: str, value: Any) -> None:
        """Raise ValueError naming the setting, the value and what is allowed."""
        if not self.allows(value):
            infinite = isinstance(value, float) and not math.isfinite(value)
            raise ValueError(f"setting {key}={value!r}: expected {self.describe()}"
                             + (", not NaN or infinite" if infinite else ""))


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is not the integer 1 here
        return kind == "any"
    return {"int": isinstance(value, int), "number": isinstance(value, (int, float)),
            "str": isinstance(value, str), "list": isinstance(value, (list, tuple)), "any": True}[kind]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def setting_for(default: Any, bounds: "Setting | tuple[float | None, float | None] | None" = None) -> Setting:
    """The rule of a head setting: the kind of its default (an int default takes integers, a float
    default any number, None anything), with `bounds` (low, high) closed, or a full Setting."""
    if isinstance(bounds, Setting):
        return bounds
    kind = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int)
            else "number" if isinstance(default, float) else "str" if isinstance(default, str)
            else "list" if isinstance(default, (list, tuple)) else "any")
    low, high = bounds if bounds is not None else (None, None)
    if (low is not None or high is not None) and kind not in ("int", "number"):
        raise ValueError(f"a range needs a numeric default, not {default!r}")
    return Setting(kind, low, high)


def multiple_of(whole: str, part: str, why: str) -> Callable[[dict[str, Any]], None]:
    """A `register_head(check=...)` rule: setting `whole` is a multiple of setting `part` (`why`
    says what needs it), as one sentence naming both values."""

    def check(cfg: dict[str, Any]) -> None:
        if cfg[whole] % cfg[part]:
            raise ValueError(f"settings {whole}={cfg[whole]!r}, {part}={cfg[part]!r}: {whole} must be a multiple "
                             f"of {part} ({why})")

    return check


ATTENTION_HEADS = multiple_of("width", "num_heads", "each attention head takes width / num_heads")
