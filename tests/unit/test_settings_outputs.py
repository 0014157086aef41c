"""Which settings change a stage's output, pinned from outside the settings' own flags: a table written by hand, held
against the settings hash, and for the generate, transcribe and source-filter synthesize stages held against the files
themselves (each setting changed on its own, the stage run with the shipped weights, the outputs compared)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

import stages
from stages.generate import GenerateSettings
from stages.synthesize import FluidSynthSettings, SourceFilterSettings, WaveNetSettings
from stages.transcribe import TranscribeSettings
from w2m2w.midi import notes_to_pretty_midi, write_midi
from w2m2w.paths import DEFAULT_WEIGHTS
from w2m2w.run.stage import Configured, StageError, StageJob

sys.path.insert(0, str(Path(__file__).parent))
from _synth import tones  # noqa: E402

# By hand: what each setting does to the file a stage writes. Device, threads and block or chunk sizes change how fast
# or in what pieces it is computed; max_seconds only refuses; weights are hashed as a file of their own.
CHANGES_OUTPUT = {
    TranscribeSettings: {
        "onset_threshold", "frame_threshold", "min_duration", "offset_threshold", "pedal", "pedal_onset_threshold", "pedal_offset_threshold",
        "pedal_frame_threshold", "pedal_min_duration", "pedal_change_gap", "chunk_seconds", "overlap_seconds", "silence_db", "tempo_map",
    },
    GenerateSettings: {
        "primer_seconds", "primer_events", "seconds", "context", "include_primer", "max_events", "temperature", "top_k", "top_p", "seed", "tempo_map",
    },
    SourceFilterSettings: {"tail_seconds", "source_only", "eq_db", "gate_margin", "gate_ramp", "release", "dc_block_hz", "loudness_lufs", "sample_rate"},
    WaveNetSettings: {
        "backend", "folds", "min_segment_seconds", "max_segment_seconds", "warmup_seconds", "fade_seconds", "crossfade", "tail_seconds", "temperature", "seed",
        "loudness_lufs", "sample_rate",
    },
    FluidSynthSettings: {"soundfont", "program", "tail_seconds", "loudness_lufs", "sample_rate"},
}  # fmt: skip
KEEPS_OUTPUT = {
    TranscribeSettings: {"weights", "device", "max_seconds", "score"},  # score: a side output of its own
    GenerateSettings: {"weights", "device", "threads", "score"},
    SourceFilterSettings: {"weights", "device", "threads", "block_seconds", "max_seconds"},
    WaveNetSettings: {"weights", "device", "threads", "chunk_samples", "max_seconds"},
    FluidSynthSettings: {"chunk_seconds", "max_seconds"},
}


def _stage_of(cls):
    return next(s for s in stages.STAGES if cls in s.options.values())


def test_the_table_names_every_setting_once():
    for cls in CHANGES_OUTPUT:
        names = {f.name for f in dataclasses.fields(cls)} - {"name"}
        assert CHANGES_OUTPUT[cls] | KEEPS_OUTPUT[cls] == names and not CHANGES_OUTPUT[cls] & KEEPS_OUTPUT[cls], (
            cls.__name__
        )


# a different value of each setting, inside its range, chosen by hand
OTHER = {
    "weights": "/elsewhere.safetensors", "device": "cuda", "threads": 3, "max_seconds": 99.0, "block_seconds": 0.5, "chunk_samples": 17,
    "chunk_seconds": 7.0, "tail_seconds": 0.25, "source_only": True, "backend": "torch", "folds": 3, "min_segment_seconds": 0.5,
    "max_segment_seconds": 2.0, "warmup_seconds": 0.3, "fade_seconds": 0.1, "crossfade": "linear", "temperature": 0.5, "seed": 7,
    "soundfont": "other.sf2", "program": 5, "onset_threshold": 0.6, "frame_threshold": 0.2, "min_duration": 0.1, "offset_threshold": 0.5,
    "pedal": False, "pedal_onset_threshold": 0.5, "pedal_offset_threshold": 0.2, "pedal_frame_threshold": 0.5, "pedal_min_duration": 0.2,
    "pedal_change_gap": 0.0, "overlap_seconds": 1.0, "silence_db": -30.0, "primer_seconds": 1.0, "primer_events": 5, "seconds": 3.0,
    "context": 64, "include_primer": False, "max_events": 10, "top_k": 5, "top_p": 0.5,
    "eq_db": [3.0, 3.0, 2.0, 1.0, -1.0, -2.0, -1.0, -1.0], "gate_margin": 256, "gate_ramp": 160, "release": "measured", "loudness_lufs": -16.0,
    "sample_rate": 44100, "dc_block_hz": 20.0, "tempo_map": False, "score": True,
}  # fmt: skip
OTHER_FOR = {(GenerateSettings, "tempo_map"): "off"}  # where one name takes another type in another stage
CASES = [(cls, k) for cls in CHANGES_OUTPUT for k in sorted(CHANGES_OUTPUT[cls] | KEEPS_OUTPUT[cls])]


@pytest.mark.parametrize("cls, key", CASES, ids=[f"{c.__name__}.{k}" for c, k in CASES])
def test_settings_hash_changes_exactly_for_the_settings_that_change_the_output(cls, key):
    stage = _stage_of(cls)
    base = (
        cls(backend="numba") if cls is WaveNetSettings else cls()
    )  # backend auto is recorded as what it picks for the device
    other = OTHER_FOR.get((cls, key), OTHER[key])
    assert other != getattr(base, key)
    changed = dataclasses.replace(base, **{key: other})
    same = Configured(stage, base).settings_hash == Configured(stage, changed).settings_hash
    assert same is (key in KEEPS_OUTPUT[cls]), (
        f"{cls.__name__}.{key}: the hash {'did not change' if same else 'changed'}"
    )


# --- the outputs themselves -------------------------------------------------------------------------------------------

NOTES = np.array([[0.1, 0.6, 60, 80], [0.5, 1.2, 64, 70], [0.9, 1.5, 67, 90], [1.3, 1.9, 72, 60]])
BEATEN = np.array(
    [[0.2 + 0.4 * k, 0.5 + 0.4 * k, (60, 64, 67, 72)[k % 4], 100 if k % 4 == 0 else 70] for k in range(14)]
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    sf.write(d / "a.wav", tones(NOTES, 2.0), 16000)
    write_midi(d / "a.mid", NOTES)
    # enough notes for a beat track (beats.MIN_NOTES): the tempo map shows only where beats are found
    sf.write(d / "b.wav", tones(BEATEN, 6.0), 16000)
    # a MIDI file with its own tempo map (100 bpm in 3/4), which a continuation carries on
    pm = notes_to_pretty_midi(NOTES)
    pm._tick_scales = [(0, 0.6 / pm.resolution)]
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    pm.write(str(d / "w.mid"))
    return d


def _run(cls, settings, src: Path, out: Path) -> bytes:
    stage = _stage_of(cls)
    try:
        stage.run(settings, StageJob("a", src, src, out))
    except StageError as exc:  # a refusal is an output too (silence_db: a recording below it is refused); a crash fails
        return f"refused: {type(exc).__name__}".encode()
    return out.read_bytes()


_BASE: dict[tuple, tuple[bytes, np.ndarray | None]] = {}  # the unchanged run of each base, made once per session


def _output(cls, settings, src: Path, out: Path) -> tuple[bytes, np.ndarray | None]:
    data = _run(cls, settings, src, out)
    return data, (sf.read(out)[0] if out.suffix == ".wav" and not data.startswith(b"refused") else None)


def _outputs_differ(cls, base: dict, key: str, value, src: Path, tmp_path: Path) -> bool:
    """MIDI files byte for byte; audio to within 1e-3 (blocks and threads sum in another order: 16-bit samples may
    differ in their last bit, far under anything heard; a changed setting moves them by far more or changes the length)."""
    ext = ".wav" if cls is SourceFilterSettings else ".mid"
    k = (cls.__name__, src.name, tuple(sorted(base.items())))
    if k not in _BASE:
        _BASE[k] = _output(cls, cls(**base), src, tmp_path / f"base{ext}")
    a, ya = _BASE[k]
    b, yb = _output(cls, cls(**{**base, key: value}), src, tmp_path / f"changed{ext}")
    if ya is None or yb is None:
        return a != b
    return len(ya) != len(yb) or float(np.abs(ya - yb).max()) > 1e-3


# Inputs on which each setting can show: a 2 s recording of four tones (its pedal head stays low on them, so the pedal
# settings are tried where a pedal is read: pedal_frame_threshold 0.02); a MIDI file of the same notes for the others.
PEDAL_SEEN = {"pedal_frame_threshold": 0.02, "pedal_onset_threshold": 0.02}
TRANSCRIBE = {
    "onset_threshold": ({}, 0.95),
    "frame_threshold": ({}, 0.6),
    "min_duration": ({}, 1.0),
    "offset_threshold": ({}, 0.02),
    "pedal": (PEDAL_SEEN, False),
    "pedal_onset_threshold": ({"pedal_frame_threshold": 0.9}, 0.02),
    "pedal_offset_threshold": (PEDAL_SEEN, 0.01),
    "pedal_frame_threshold": ({}, 0.02),
    "pedal_min_duration": (PEDAL_SEEN, 1.9),
    "chunk_seconds": ({"overlap_seconds": 0.0}, 0.5),
    "overlap_seconds": ({"chunk_seconds": 0.5}, 0.25),
    "silence_db": ({}, -1.0),
    "tempo_map": ({}, False, "b.wav"),
    "score": ({}, True),
    "weights": ({}, str(DEFAULT_WEIGHTS["onsets_frames"])),
    "max_seconds": ({}, 10.0),
}
GENERATE = {
    "primer_seconds": ({}, 0.7),
    "primer_events": ({}, 6),
    "seconds": ({}, 0.5),
    "context": ({}, 8),
    "include_primer": ({}, False),
    "max_events": ({}, 5),
    "temperature": ({}, 0.3),
    "top_k": ({}, 1),
    "top_p": ({}, 0.05),
    "seed": ({}, 1),
    "tempo_map": ({}, "off", "w.mid"),
    "score": ({}, True),
    "weights": ({}, str(DEFAULT_WEIGHTS["music_transformer"])),
    "threads": ({}, 2),
}
SYNTHESIZE = {
    "tail_seconds": ({}, 0.1),
    "source_only": ({}, True),
    "weights": ({}, str(DEFAULT_WEIGHTS["source_filter_wavenet_real"])),  # the default, named: the same audio
    "threads": ({}, 1),
    "block_seconds": ({}, 0.3),
    "max_seconds": ({}, 10.0),
    "eq_db": ({}, [3.0, 3.0, 2.0, 1.0, -1.0, -2.0, -1.0, -1.0]),
    "gate_margin": ({}, 256),
    "gate_ramp": ({}, 160),
    "release": ({"weights": "sptkbgcl"}, "measured"),  # the real-piano model's own law is the measured one
    "dc_block_hz": ({}, 0.0),  # off: the shipped model's offset stays in
    "loudness_lufs": ({}, -16.0),
    "sample_rate": ({}, 44100),
}
RUNS = (
    [(TranscribeSettings, k, *(v + ("a.wav",))[:3]) for k, v in TRANSCRIBE.items()]
    + [(GenerateSettings, k, {"seconds": 1.0, **v[0]}, *(v[1:] + ("a.mid",))[:2]) for k, v in GENERATE.items()]
    + [(SourceFilterSettings, k, *v, "a.mid") for k, v in SYNTHESIZE.items()]
)


def test_every_setting_but_the_device_is_tried_on_the_outputs():
    # pedal_change_gap needs a pedal change the frame head hides, which four tones never make: decode_pedal's tests
    # hold it (test_pedal.py); the device needs a GPU
    for cls, tried in (
        (TranscribeSettings, TRANSCRIBE),
        (GenerateSettings, GENERATE),
        (SourceFilterSettings, SYNTHESIZE),
    ):
        names = {f.name for f in dataclasses.fields(cls)} - {"name", "device"}
        assert names - set(tried) <= {"pedal_change_gap"}, cls.__name__


@pytest.mark.parametrize("cls, key, base, value, src", RUNS, ids=[f"{c.__name__}.{k}" for c, k, *_ in RUNS])
def test_a_setting_changes_the_file_exactly_when_the_table_says(cls, key, base, value, src, inputs, tmp_path):
    assert value != base.get(key, getattr(cls(), key))
    differs = _outputs_differ(cls, base, key, value, inputs / src, tmp_path)
    assert differs is (key in CHANGES_OUTPUT[cls]), (
        f"{cls.__name__}.{key}={value!r}: the output {'changed' if differs else 'did not change'}"
    )
