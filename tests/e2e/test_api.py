"""The Python API (w2m2w.transcribe, continue_midi, synthesize, run) against the command's output for the same input.

The command runs once on a generated recording with the tiny test models; each function then gets the input
its stage read in that run (and the same settings) and must give what the stage wrote, byte for byte for
MIDI and to the last bit of 16-bit audio for the WAV.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import soxr

import w2m2w
from tests.conftest import run_pipeline


@pytest.fixture(scope="module")
def command_run(tmp_path_factory, example_audio, weights) -> Path:
    """A run folder the command made from example_audio (notes.wav): every stage, tiny models, seed 0."""
    run_dir = tmp_path_factory.mktemp("command") / "run"
    proc = run_pipeline(f"input={example_audio}", f"run_dir={run_dir}", "device=cpu", *weights)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for stage in ("1-transcribe", "2-generate"):  # so the API's tempo maps are compared too
        assert json.loads((run_dir / stage / "notes.json").read_text())["stats"]["beats"] > 0, stage
    return run_dir


@pytest.fixture(scope="module")
def tiny(tiny_transcriber, tiny_music_transformer, tiny_source_filter) -> dict[str, str]:
    return {"t": str(tiny_transcriber), "g": str(tiny_music_transformer), "s": str(tiny_source_filter)}


def _midi_bytes(pm: pretty_midi.PrettyMIDI, path: Path) -> bytes:
    pm.write(str(path))
    return path.read_bytes()


def _command_bytes(path: Path, tmp_path: Path) -> bytes:
    """The command's MIDI file as pretty_midi writes it again: the API returns a PrettyMIDI, whose write rounds
    a tempo map's tempos its own way, so the two are compared after the same writer (equal iff the files are)."""
    return _midi_bytes(pretty_midi.PrettyMIDI(str(path)), tmp_path / f"command-{path.parent.name}.mid")


def test_transcribe_is_the_command_on_a_path_and_on_samples(command_run, example_audio, tiny, tmp_path):
    expected = _command_bytes(command_run / "1-transcribe" / "notes.mid", tmp_path)
    assert _midi_bytes(w2m2w.transcribe(example_audio, weights=tiny["t"]), tmp_path / "a.mid") == expected
    y, sr = sf.read(str(example_audio), dtype="float32")
    assert (
        sr == 16000
        and _midi_bytes(w2m2w.transcribe(y, sr, weights=tiny["t"], device="cpu"), tmp_path / "b.mid") == expected
    )
    stereo = np.stack([y, y], axis=1)  # channels mixed as a file's would be
    assert _midi_bytes(w2m2w.transcribe(stereo, 16000, weights=tiny["t"]), tmp_path / "c.mid") == expected


def test_transcribe_resamples_an_array_at_another_rate(tiny, example_audio):
    y, _ = sf.read(str(example_audio), dtype="float32")
    at_44k = soxr.resample(y, 16000, 44100, quality="HQ")
    a = w2m2w.transcribe(at_44k, 44100, weights=tiny["t"]).instruments[0].notes
    b = w2m2w.transcribe(y, weights=tiny["t"]).instruments[0].notes
    assert [n.pitch for n in a] == [n.pitch for n in b] and np.allclose(
        [n.start for n in a], [n.start for n in b], atol=0.033
    )  # a frame


def test_continue_midi_is_the_command(command_run, tiny, tmp_path):
    primer = command_run / "1-transcribe" / "notes.mid"
    expected = _command_bytes(command_run / "2-generate" / "notes.mid", tmp_path)
    kw = dict(seconds=1, context=128, seed=0, weights=tiny["g"])
    assert _midi_bytes(w2m2w.continue_midi(primer, **kw), tmp_path / "a.mid") == expected
    assert _midi_bytes(w2m2w.continue_midi(pretty_midi.PrettyMIDI(str(primer)), **kw), tmp_path / "b.mid") == expected


def test_synthesize_is_the_command(command_run, tiny):
    midi = command_run / "2-generate" / "notes.mid"
    expected, sr = sf.read(str(command_run / "3-synthesize" / "notes.wav"), dtype="float32")
    y, rate = w2m2w.synthesize(midi, weights=tiny["s"])
    assert rate == sr == 16000 and y.dtype == np.float32 and len(y) == len(expected)
    assert np.abs(y - expected).max() <= 1 / 32768  # the WAV holds 16-bit samples
    y44, rate44 = w2m2w.synthesize(pretty_midi.PrettyMIDI(str(midi)), weights=tiny["s"], sample_rate=44100)
    assert rate44 == 44100 and len(y44) == round(len(y) * 44100 / 16000)


def test_each_model_loads_once(tiny, example_audio):
    from w2m2w.run.stage import _loaded  # the model stages' one cache of loaded weights

    w2m2w.transcribe(example_audio, weights=tiny["t"], device="cpu")
    before = _loaded.cache_info()
    w2m2w.transcribe(example_audio, weights=tiny["t"], device="cpu", onset_threshold=0.45)  # other settings, same model
    after = _loaded.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1
    notes = np.array([[0.0, 0.5, 60, 80], [0.5, 1.0, 64, 80]])
    w2m2w.continue_midi(notes, seconds=0.5, context=64, seed=1, weights=tiny["g"])
    misses = _loaded.cache_info().misses
    w2m2w.continue_midi(notes, seconds=0.5, context=64, seed=2, weights=tiny["g"])
    assert _loaded.cache_info().misses == misses


def test_run_is_the_command(command_run, example_audio, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    take = tmp_path / "notes.wav"
    shutil.copy(example_audio, take)
    result = w2m2w.run(
        take,
        device="cpu",
        progress=False,
        transcribe={"weights": tiny["t"]},
        generate={"weights": tiny["g"], "seconds": 1, "context": 128},
        synthesize={"weights": tiny["s"]},
    )
    assert (
        result.code == 0
        and result.run_dir == Path("runs/notes")
        and result.summary["pieces"]["notes"]["status"] == "done"
    )
    for stage, name in [
        ("transcribe", "1-transcribe/notes.mid"),
        ("generate", "2-generate/notes.mid"),
        ("synthesize", "3-synthesize/notes.wav"),
    ]:
        assert [p.read_bytes() for p in result.outputs(stage)] == [(command_run / name).read_bytes()]


def test_bad_settings_name_the_key(tiny, example_audio):
    from w2m2w.settings import SettingsError

    with pytest.raises(SettingsError, match="transcribe.onset_threshold"):
        w2m2w.transcribe(example_audio, weights=tiny["t"], onset_threshold=2.0)
    with pytest.raises(SettingsError, match="generate.temprature"):
        w2m2w.continue_midi(np.array([[0.0, 1.0, 60, 80]]), temprature=0.9)
    with pytest.raises(SettingsError, match="^device="):
        w2m2w.synthesize(np.array([[0.0, 1.0, 60, 80]]), device="gpu")
