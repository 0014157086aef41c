"""Typed settings with their allowed ranges, checked before any work starts.

Every stage's and every training run's settings are a dataclass whose fields
are declared with `setting(...)`. The declaration is the one place that says a
field's default, the range a value must lie in, and whether the field changes
the output (the settings hash in a sidecar covers exactly those that do).
Hydra's structured configs reject wrong types; `check` rejects values out of
range with one line naming the key and the allowed range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_RANGE = "w2m2w_range"
_OUTPUT = "w2m2w_affects_output"
_CHOICES = "w2m2w_choices"
_DEVICE = "w2m2w_device"
# what torch.device takes for the stages; `auto` only for the top-level switch, which resolves it (w2m2w.run.settings)
DEVICES = "'cpu', 'cuda' or 'cuda:N' (N: a GPU's index)"
AUTO = "auto"
AUTO_DEVICES = "'auto' (a GPU when torch has one), " + DEVICES
_DEVICE_RE = re.compile(r"cpu|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; open or closed at each end, unbounded where an end is None."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return True

    def __str__(self) -> str:
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi_open or self.hi is None else "]"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{left}{lo}, {hi}{right}"


# the ranges most settings need, named for what they say
POSITIVE = Range(0, None, lo_open=True)
NON_NEGATIVE = Range(0, None)
AT_LEAST_ONE = Range(1, None)
PROBABILITY_OPEN = Range(0, 1, lo_open=True, hi_open=True)  # a threshold: 0 and 1 make every or no frame a note
PROBABILITY_UPPER = Range(0, 1, lo_open=True)  # (0, 1]: top_p and other shares where all is allowed
THREADS = Range(
    0, 1024
)  # 0: the library's default; asking for more threads than any machine has is a typo that would fork thousands


class SettingsError(ValueError):
    """A setting out of its range; str() is one line naming the key and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}={value!r} is not allowed: it must be {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed


def setting(
    default: Any = dataclasses.MISSING,
    *,
    range: Range | None = None,
    choices: tuple | None = None,
    affects_output: bool = True,
    device: bool | str = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its allowed range or choices; affects_output=False keeps it out of the settings hash
    (device, threads, progress: they change how fast, not what comes out). None is always allowed where it is the
    default or the field's type admits it (it means "automatic" in this project's settings). device=True: a torch
    device, one of DEVICES (whether this machine has it is check_run's to say: a Ray cluster's may differ);
    device=AUTO: one of those or 'auto'."""
    meta = {_RANGE: range, _OUTPUT: affects_output, _CHOICES: choices, _DEVICE: device}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def declared(cls: type, name: str) -> Any:
    """A field declared as dataclass `cls`'s field `name` (its default, range, choices, affects_output): where settings
    expose a library dataclass's fields flat, they take each declaration from there rather than a copy of it."""
    (f,) = (f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
    return dataclasses.field(default=f.default, metadata=f.metadata)


def carried(cls: type[T], source: Any, **given: Any) -> T:
    """Dataclass `cls` built from the same-named fields of `source` (a dataclass or a mapping), `given` overriding;
    a field `source` lacks keeps cls's default. Settings reach a library config this way, not copied one by one, so a
    field added to both cannot be left behind."""
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in given]
    if isinstance(source, Mapping):
        values = {k: source[k] for k in names if k in source}
    else:
        values = {k: getattr(source, k) for k in names if hasattr(source, k)}
    return cls(**values, **given)


def _describe(rng: Range | None, choices: tuple | None) -> str:
    if choices is not None:
        return "one of " + _listed(choices)
    return f"in {rng}"


def _listed(choices: tuple) -> str:
    return ", ".join(repr(c) for c in choices)


def check(obj: Any, prefix: str = "") -> None:
    """Raise SettingsError for the first field of the dataclass `obj` (nested dataclasses included) out of range.

    prefix names the config group in the message, e.g. "generate" gives "generate.top_p=1.5 ..."."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check(value, key)
            continue
        rng, choices = f.metadata.get(_RANGE), f.metadata.get(_CHOICES)
        kind = f.metadata.get(_DEVICE)
        if kind and value is not None and not is_device(value, allow_auto=kind == AUTO):
            raise SettingsError(key, value, AUTO_DEVICES if kind == AUTO else DEVICES)
        if value is None or (rng is None and choices is None):
            continue
        if choices is not None:
            if isinstance(value, (list, tuple)):  # a list setting: every item is one of the choices
                if any(v not in choices for v in value):
                    raise SettingsError(key, value, "a list of " + _listed(choices))
            elif value not in choices:
                raise SettingsError(key, value, _describe(None, choices))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(key, value, f"a number {_describe(rng, None)}")
        if value not in rng:
            raise SettingsError(key, value, _describe(rng, None))
    more = getattr(obj, "check_more", None)
    if callable(more):  # what no single field's range can say (a [low, high] pair in order, say)
        more(prefix)


def is_device(value: Any, allow_auto: bool = False) -> bool:
    """Whether `value` names a device: one of DEVICES, or also `auto` where allow_auto."""
    return isinstance(value, str) and (bool(_DEVICE_RE.fullmatch(value)) or (allow_auto and value == AUTO))


def output_settings(obj: Any) -> dict[str, Any]:
    """The fields of dataclass `obj` that change the output, as plain values (nested dataclasses as dicts)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.metadata.get(_OUTPUT, True):
            continue
        value = getattr(obj, f.name)
        out[f.name] = (
            output_settings(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
        )
    return out


def settings_hash(obj: Any) -> str:
    """sha256 of the output-changing settings of dataclass `obj`, independent of field order."""
    return hashlib.sha256(json.dumps(output_settings(obj), sort_keys=True, default=str).encode()).hexdigest()
