"""The `w2m2w` command line made plain (w2m2w.command_line) and its help page (w2m2w.usage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from w2m2w.command_line import hydra_quoted, plain_arguments
from w2m2w.paths import CONF
from w2m2w.usage import usage

NAMES = [
    "waltz (take 2).ogg",
    "a,b.wav",
    "it's.wav",
    'say "hi".wav',
    "end\\",
    "x\\'y",
    "${oc.env:HOME}.wav",
    "練習曲 op.10.flac",
    "a=b",
    "[x]",
    "~t#",
    "a\\b",
]


@pytest.mark.parametrize("name", NAMES)
def test_quoted_value_reads_back_as_itself(name):
    """Through Hydra's grammar and OmegaConf's interpolation, as a composed config reads it."""
    value = OverridesParser.create().parse_overrides([f"input={hydra_quoted(name)}"])[0].value()
    assert OmegaConf.create({"input": value}).input == name


def _value(args: list[str], key: str = "input") -> str:
    """What Hydra's grammar reads for `key` on a command line."""
    overrides = OverridesParser.create().parse_overrides(args)
    return OmegaConf.create({key: next(o.value() for o in overrides if o.key_or_group == key)})[key]


def test_a_bare_path_is_the_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_takes").mkdir()
    (tmp_path / "my_takes" / "waltz (take 2).ogg").write_bytes(b"")
    args, problem = plain_arguments(["my_takes/waltz (take 2).ogg", "generate.seconds=5"])
    assert problem is None and _value(args) == "my_takes/waltz (take 2).ogg" and "generate.seconds=5" in args


def test_path_values_hydra_cannot_read_are_quoted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a,b.wav").write_bytes(b"")
    for given, path in [
        ("input=waltz (take 2).ogg", "waltz (take 2).ogg"),
        ("input=a,b.wav", "a,b.wav"),
        ("run_dir=runs/x (2)", "runs/x (2)"),
    ]:
        args, problem = plain_arguments([given])
        assert problem is None and _value(args, given.split("=")[0]) == path
    # what Hydra reads as meant stays as it is: a quoted path, a sweep over paths that do not exist as one name, other keys
    for kept in ["'input=\"x y.wav\"'", "input=c.wav,d.wav", "generate.seconds=5", "stages=[generate]"]:
        assert plain_arguments(["-m", kept])[0] == ["-m", kept]


def test_flags_and_their_values_are_not_inputs():
    assert plain_arguments(["--cfg", "job", "-p", "generate"]) == (["--cfg", "job", "-p", "generate"], None)
    assert plain_arguments(["--info", "defaults"]) == (["--info", "defaults"], None)


def test_the_command_line_parses_as_hydra_reads_it(tmp_path, monkeypatch):
    """Flags before the overrides, whatever the order given: argparse reads Hydra's overrides as one run of positionals."""
    from hydra._internal.utils import get_args_parser

    monkeypatch.chdir(tmp_path)
    args, problem = plain_arguments(
        ["-m", "take (1).wav", "stages=[transcribe]", "--cfg", "job", "transcribe.onset_threshold=0.4,0.5"]
    )
    parsed = get_args_parser().parse_args(args)
    assert problem is None and parsed.multirun and parsed.cfg == "job"
    assert parsed.overrides == ["input='take (1).wav'", "stages=[transcribe]", "transcribe.onset_threshold=0.4,0.5"]


def test_demo_is_the_bundled_demo_and_two_inputs_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert plain_arguments(["demo"]) == ([], None)
    args, problem = plain_arguments(["my", "take.ogg"])  # a name with a space the shell split
    assert "one input" in problem and "'my take.ogg'" in problem and "\n" not in problem
    assert "two inputs" in plain_arguments(["a.wav", "input=b.wav"])[1]


def test_help_names_the_stages_examples_and_hides_internal_groups():
    page = usage(CONF)
    for stage in ("transcribe", "generate", "synthesize"):
        assert f"{stage} " in page
    assert page.count("\n  w2m2w ") >= 6 and "device=cuda" in page and "runs/<input name>" in page and "README" in page
    assert "synthesize=source_filter (default) | fluidsynth | wavenet" in page
    assert "schema" not in page and "train=" not in page
    assert "--hydra-help" in page and "--cfg job" in page
