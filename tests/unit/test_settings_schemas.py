"""The settings dataclasses behind conf/: one source for defaults, a range for every number, and a settings hash
that follows exactly the settings that change an output."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import stages
from stages.generate import GenerateSettings
from stages.synthesize import FluidSynthSettings, SourceFilterSettings, WaveNetSettings
from stages.transcribe import TranscribeSettings
from w2m2w.decoding import DecodeConfig
from w2m2w.evaluate.settings import ContinuationSettings, EvaluateSettings
from w2m2w.generation import GenerationConfig, SamplingConfig
from w2m2w.render import registry
from w2m2w.render.registry import FluidSynthConfig, render_config
from w2m2w.render.source_filter import SourceFilterRenderConfig
from w2m2w.render.wavenet import SynthesisConfig
from w2m2w.run.settings import LocalExecutor, RayExecutor, RunSettings
from w2m2w.run.stage import Configured
from w2m2w.settings import check

CONF = Path(__file__).resolve().parents[2] / "conf"
SCHEMAS = [(f"{s.name}/{opt}.yaml", cls) for s in stages.STAGES for opt, cls in s.options.items()] + [
    ("executor/local.yaml", LocalExecutor),
    ("executor/ray.yaml", RayExecutor),
    ("config.yaml", RunSettings),
    ("evaluate.yaml", EvaluateSettings),
]
# nested settings: their own group's file, or (evaluate's decode and continuation) their dataclass alone
GROUPS = {"transcribe", "generate", "synthesize", "executor", "decode", "continuation"}


def yaml_values(path: Path) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    return {k: v for k, v in cfg.items() if k not in ("defaults", "hydra")}


def defaults(cls) -> dict:
    return {k: v for k, v in dataclasses.asdict(cls()).items() if k not in GROUPS}


@pytest.mark.parametrize("path, cls", SCHEMAS, ids=[p for p, _ in SCHEMAS])
def test_yaml_defaults_equal_the_dataclass_defaults(path, cls):
    assert yaml_values(CONF / path) == defaults(cls)


@pytest.mark.parametrize("path, cls", SCHEMAS, ids=[p for p, _ in SCHEMAS])
def test_every_number_has_a_range_and_the_defaults_are_inside(path, cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        numeric = set(typing.get_args(hints[f.name]) or (hints[f.name],)) & {int, float}
        if numeric:
            assert f.metadata.get("w2m2w_range") is not None, f"{path}: {f.name} has no range"
    check(cls())


@pytest.mark.parametrize("cls", [DecodeConfig, ContinuationSettings])
def test_nested_settings_have_a_range_for_every_number(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if {int, float} & set(typing.get_args(hints[f.name]) or (hints[f.name],)):
            assert f.metadata.get("w2m2w_range") is not None, f"{cls.__name__}.{f.name} has no range"
    check(cls())


def test_evaluate_decodes_with_the_transcribe_stages_declarations():
    # one declaration: the stage's decode settings are DecodeConfig's fields, default and range alike
    stage = {f.name: f for f in dataclasses.fields(TranscribeSettings)}
    for f in dataclasses.fields(DecodeConfig):
        assert (stage[f.name].default, dict(stage[f.name].metadata)) == (f.default, dict(f.metadata)), f.name
    assert EvaluateSettings().decode == DecodeConfig()


@pytest.mark.parametrize(
    "settings, library",
    [
        (TranscribeSettings, DecodeConfig),
        (GenerateSettings, GenerationConfig),
        (GenerateSettings, SamplingConfig),
        (WaveNetSettings, SynthesisConfig),
        (SourceFilterSettings, SourceFilterRenderConfig),
        (FluidSynthSettings, FluidSynthConfig),
    ],
)
def test_library_dataclasses_have_the_same_defaults(settings, library):
    mine, theirs = dataclasses.asdict(settings()), dataclasses.asdict(library())
    # a stage's device is null, left to the run's top-level `device` switch (run.settings.resolve_devices)
    assert mine.get("device", None) is None
    shared = set(mine) & set(theirs) - {"device"}
    assert shared and {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}


# Which settings enter the settings hash is pinned from outside the settings' own flags in test_settings_outputs.py
# (a table by hand, and each setting changed on the stage's real output).


def test_what_does_not_change_the_output_stays_out_of_the_hash():
    # the examples by name: device, threads (and progress, workers: run settings, never in a stage's hash)
    for stage, cls, keys in [
        (stages.get("generate"), GenerateSettings, ("device", "threads")),
        (stages.get("transcribe"), TranscribeSettings, ("device",)),
        (stages.get("synthesize"), SourceFilterSettings, ("device", "threads", "block_seconds")),
    ]:
        for key in keys:
            assert key not in Configured(stage, cls()).output_settings
    top_p = Configured(stages.get("generate"), GenerateSettings(top_p=0.5)).settings_hash
    assert top_p != Configured(stages.get("generate"), GenerateSettings()).settings_hash
    assert not {"progress", "workers", "force"} & set(
        Configured(stages.get("generate"), GenerateSettings()).output_settings
    )


def test_automatic_backend_is_recorded_as_the_one_it_picks():
    synth = stages.get("synthesize")
    assert Configured(synth, WaveNetSettings()).output_settings["backend"] == "numba"
    assert Configured(synth, WaveNetSettings(device="cuda")).output_settings["backend"] == "torch"
    assert (
        Configured(synth, WaveNetSettings()).settings_hash
        == Configured(synth, WaveNetSettings(backend="numba")).settings_hash
    )


# --- every setting reaches what it sets ---------------------------------------------------------------------------
# By hand, per stage: the settings carried into the library's config (each set to a value other than its default
# below), and those the stage or the renderer's finish reads itself. A field added to a settings class or to a
# config fails here until it is listed, and a listed one that is not carried fails on its value.
# generate: the model's file and where and how fast it runs; the output file's tempo map and its score, which the
# stage writes itself (test_tempo_map_stages.py, test_settings_outputs.py)
STAGE_OWN = {"weights", "device", "threads", "tempo_map", "score"}
GENERATE_CARRIED = {
    "primer_seconds": 3.5,
    "primer_events": 40,
    "seconds": 7.5,
    "context": 128,
    "include_primer": False,
    "max_events": 999,
    "temperature": 0.7,
    "top_k": 5,
    "top_p": 0.9,
    "seed": 1234,
}


def test_every_generate_setting_reaches_the_generation_config():
    from stages.generate import generation_config

    assert {f.name for f in dataclasses.fields(GenerateSettings)} == set(GENERATE_CARRIED) | STAGE_OWN
    gen = generation_config(GenerateSettings(**GENERATE_CARRIED))
    flat = {**dataclasses.asdict(gen), **dataclasses.asdict(gen.sampling)}
    del flat["sampling"]
    assert flat == GENERATE_CARRIED  # every field of the config, each with the setting's value


# renderer -> (settings class, settings carried into its config with a value other than the default, the rest)
RENDERER_SETTINGS = {
    "source_filter": (
        SourceFilterSettings,
        {
            "device": "cuda:1",
            "threads": 3,
            "block_seconds": 2.5,
            "tail_seconds": 4.0,
            "source_only": True,
            "gate_margin": 7,
            "gate_ramp": 9,
            "release": "measured",
            "dc_block_hz": 12.5,
        },
        {"name", "weights", "eq_db", "loudness_lufs", "max_seconds", "sample_rate"},
    ),
    "wavenet": (
        WaveNetSettings,
        {
            "device": "cuda:1",
            "backend": "torch",
            "threads": 3,
            "folds": 8,
            "min_segment_seconds": 0.5,
            "max_segment_seconds": 2.0,
            "warmup_seconds": 0.1,
            "fade_seconds": 0.02,
            "crossfade": "linear",
            "tail_seconds": 0.5,
            "temperature": 0.9,
            "seed": 7,
            "chunk_samples": 2000,
        },
        {"name", "weights", "loudness_lufs", "max_seconds", "sample_rate"},
    ),
    "fluidsynth": (
        FluidSynthSettings,
        {"soundfont": "musescore", "program": 1, "chunk_seconds": 5.0, "tail_seconds": 2.0},
        {"name", "loudness_lufs", "max_seconds", "sample_rate"},
    ),
}


@pytest.mark.parametrize("renderer", list(RENDERER_SETTINGS))
def test_every_synthesize_setting_reaches_the_renderer(renderer):
    cls, carried, elsewhere = RENDERER_SETTINGS[renderer]
    assert {f.name for f in dataclasses.fields(cls)} == set(carried) | elsewhere
    s = cls(**carried)
    config = render_config(renderer, s)  # the stage's typed settings, by field name
    assert dataclasses.asdict(config) == carried  # every field of the config, each with the setting's value
    # the rest: the weights file (registry.weights_file) and the finish (its level, its EQ) read the same settings
    # by name (test_a_list_setting_loads_the_renderer); the stage reads name, max_seconds and sample_rate itself
    if "weights" in elsewhere:
        assert registry.weights_file(renderer, cls(weights="w.safetensors")) == Path("w.safetensors")
        assert registry.weights_file(renderer, cls()) == registry.DEFAULT_WEIGHTS[renderer]


def test_a_device_left_automatic_renders_on_the_cpu():
    # device null is the top-level device, which a run fills in; before that the renderer's config keeps its own default
    assert render_config("wavenet", WaveNetSettings(device=None)).device == "cpu"
    assert render_config("source_filter", {"device": None}).device == "cpu"


def test_a_list_setting_loads_the_renderer():
    # the stage caches loaded renderers by their settings: eq_db, a list, once made that key unhashable (TypeError)
    from stages.synthesize import STAGE

    eq = [3.0, 3.0, 2.0, 1.0, -1.0, -2.0, -1.0, -1.0]
    loaded = STAGE.load(SourceFilterSettings(eq_db=eq, device="cpu", loudness_lufs=-20.0))
    assert loaded.eq_db == eq and loaded.loudness_lufs == -20.0  # the finish reads both off the settings
    # equal settings (a new but equal list) find the renderer loaded; another EQ is another renderer
    assert STAGE.load(SourceFilterSettings(eq_db=list(eq), device="cpu", loudness_lufs=-20.0)) is loaded
    other = STAGE.load(SourceFilterSettings(eq_db=eq[::-1], device="cpu", loudness_lufs=-20.0))
    assert other is not loaded and other.eq_db == eq[::-1]


def test_a_gate_set_to_null_is_the_weights_own_and_left_out_is_the_default():
    own = render_config("source_filter", SourceFilterSettings(gate_margin=None, gate_ramp=None))
    assert (own.gate_margin, own.gate_ramp) == (None, None)  # the renderer then keeps the weights' 256 and 160
    for given in (SourceFilterSettings(), {}, {"device": None}):
        config = render_config("source_filter", given)
        assert (config.gate_margin, config.gate_ramp) == (0, 16)


def test_a_soundfont_not_installed_is_still_named_by_its_file(monkeypatch, tmp_path):
    """weights_file names the soundfont's file for the sidecar even where it is missing (the renderer's load then
    refuses it in one line): a short name by the path it stands for, anything else as given."""
    from w2m2w.render import fluidsynth

    gone = tmp_path / "gone.sf2"
    monkeypatch.setitem(fluidsynth.SOUNDFONTS, "gone", str(gone))
    assert registry.weights_file("fluidsynth", {"soundfont": "gone"}) == gone
    assert registry.weights_file("fluidsynth", {"soundfont": str(tmp_path / "mine.sf2")}) == tmp_path / "mine.sf2"
    with pytest.raises(ValueError) as err:
        registry.weights_file("organ", {})
    assert str(err.value) == "unknown synthesizer 'organ': choose one of source_filter, wavenet, fluidsynth"
