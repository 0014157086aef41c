"""w2m2w.settings: ranges, choices, what enters the settings hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pytest

from w2m2w.settings import (
    AT_LEAST_ONE,
    POSITIVE,
    PROBABILITY_OPEN,
    PROBABILITY_UPPER,
    Range,
    SettingsError,
    check,
    output_settings,
    setting,
    settings_hash,
)


@dataclass
class Inner:
    top_p: float = setting(0.95, range=PROBABILITY_UPPER)


@dataclass
class Outer:
    threshold: float = setting(0.5, range=PROBABILITY_OPEN)
    seconds: float = setting(10.0, range=POSITIVE)
    workers: int | None = setting(None, range=AT_LEAST_ONE, affects_output=False)
    mode: str = setting("fast", choices=("fast", "exact"))
    skip: list = setting(default_factory=list, choices=("room", "eq"))
    device: str = setting("cpu", affects_output=False)
    inner: Inner = setting(default_factory=Inner)


@pytest.mark.parametrize(
    "rng, inside, outside",
    [
        (PROBABILITY_OPEN, [0.001, 0.5, 0.999], [0.0, 1.0, -1.0, 7.0, float("nan")]),
        (PROBABILITY_UPPER, [1.0, 0.5], [0.0, 1.5]),
        (POSITIVE, [1e-9, 5.0], [0.0, -5.0]),
        (AT_LEAST_ONE, [1, 64], [0, -1]),
    ],
)
def test_range_membership(rng: Range, inside: list, outside: list) -> None:
    assert all(v in rng for v in inside)
    assert not any(v in rng for v in outside)


def test_range_reads_as_interval() -> None:
    assert str(PROBABILITY_OPEN) == "(0, 1)"
    assert str(PROBABILITY_UPPER) == "(0, 1]"
    assert str(AT_LEAST_ONE) == "[1, inf)"


@pytest.mark.parametrize(
    "field, value, key",
    [
        ("threshold", 7.0, "stage.threshold"),
        ("seconds", -5.0, "stage.seconds"),
        ("workers", 0, "stage.workers"),
        ("mode", "slow", "stage.mode"),
        ("skip", ["room", "hall"], "stage.skip"),
        ("threshold", "abc", "stage.threshold"),
        ("seconds", True, "stage.seconds"),
    ],
)
def test_check_names_the_key(field: str, value, key: str) -> None:
    obj = Outer()
    setattr(obj, field, value)
    with pytest.raises(SettingsError) as err:
        check(obj, "stage")
    assert err.value.key == key
    assert "\n" not in str(err.value) and key in str(err.value)


def test_check_descends_into_nested_settings() -> None:
    obj = Outer(inner=Inner(top_p=0.0))
    with pytest.raises(SettingsError, match=r"stage\.inner\.top_p=0\.0 .*\(0, 1\]"):
        check(obj, "stage")


def test_defaults_and_none_pass() -> None:
    check(Outer(), "stage")
    check(Outer(skip=["eq", "room"]), "stage")
    check(Outer(workers=None, threshold=0.3), "stage")


def test_hash_covers_only_output_settings() -> None:
    base = Outer()
    expected = {"threshold": 0.5, "seconds": 10.0, "mode": "fast", "skip": [], "inner": {"top_p": 0.95}}
    assert output_settings(base) == expected
    assert settings_hash(base) == hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()
    assert settings_hash(Outer(device="cuda", workers=4)) == settings_hash(base)
    assert settings_hash(Outer(inner=Inner(top_p=0.9))) != settings_hash(base)


# ---- messages and hashing by hand (issue 29: what check says, what the hash takes) ----


def test_refusal_messages_by_hand():
    import dataclasses as dc

    from w2m2w.settings import Range, SettingsError, check, setting

    @dc.dataclass
    class S:
        device: str = setting("cpu", device=True)
        kinds: list = setting(default_factory=lambda: ["a"], choices=("a", "b"))
        mode: str = setting("x", choices=("x", "y"))
        n: float = setting(1.0, range=Range(None, 5.0))

    cases = [
        (
            S(device="gpu"),
            "g.device='gpu' is not allowed: it must be 'cpu', 'cuda' or 'cuda:N' (N: a GPU's index)",
            "gpu",
        ),
        (S(kinds=["a", "c"]), "g.kinds=['a', 'c'] is not allowed: it must be a list of 'a', 'b'", ["a", "c"]),
        (S(mode="z"), "g.mode='z' is not allowed: it must be one of 'x', 'y'", "z"),
        (S(n="big"), "g.n='big' is not allowed: it must be a number in (-inf, 5]", "big"),
        (S(n=6.0), "g.n=6.0 is not allowed: it must be in (-inf, 5]", 6.0),
    ]
    for obj, message, value in cases:
        with pytest.raises(SettingsError) as err:
            check(obj, "g")
        assert (
            str(err.value) == message
            and err.value.value == value
            and err.value.allowed == message.split("it must be ")[1]
        )


def test_output_settings_take_plain_fields_and_hash_any_value_as_text():
    import dataclasses as dc
    import hashlib
    import json
    from pathlib import Path

    from w2m2w.settings import output_settings, setting, settings_hash

    @dc.dataclass
    class S:
        plain: int = 3  # no setting(): it changes the output, as setting()'s default says
        where: Path = Path("/x/y")
        fast: int = setting(1, affects_output=False)

    assert output_settings(S()) == {"plain": 3, "where": Path("/x/y")}
    expected = hashlib.sha256(json.dumps({"plain": 3, "where": "/x/y"}, sort_keys=True).encode()).hexdigest()
    assert settings_hash(S()) == expected
