"""End-to-end: the real run.py, synthesize stage, with a tiny WaveNet made by the test (and FluidSynth)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from tests.conftest import REPO, run_pipeline
from w2m2w.midi import write_midi

NOTES = np.array([[0.2, 0.8, 60, 90], [0.4, 1.4, 64, 70], [1.0, 1.9, 67, 100]], dtype=np.float64)


def _midi_batch(root: Path) -> Path:
    """Good and bad MIDI inputs, nested."""
    (root / "set a").mkdir(parents=True)
    write_midi(root / "set a" / "good one.mid", NOTES)
    write_midi(root / "outside.mid", np.array([[0.1, 0.5, 15, 80], [0.2, 0.9, 62, 80], [0.3, 0.6, 115, 80]]))
    write_midi(root / "nonotes.mid", np.zeros((0, 4)))
    (root / "empty.mid").write_bytes(b"")
    (root / "garbage.mid").write_text("this is not a MIDI file\n")
    return root


def _wav(path: Path) -> np.ndarray:
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    return sf.read(str(path), dtype="float32")[0]


def test_wavenet_renders_midi_and_rerun_is_current(tmp_path, tiny_wavenet):
    mid = tmp_path / "piece.mid"
    write_midi(mid, NOTES)
    run_dir = tmp_path / "run"
    args = [
        f"input={mid}",
        "stages=[synthesize]",
        "synthesize=wavenet",
        f"synthesize.weights={tiny_wavenet}",
        f"run_dir={run_dir}",
    ]
    res = run_pipeline(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    wav = run_dir / "3-synthesize" / "piece.wav"
    y = _wav(wav)
    assert len(y) == int(round((1.9 + 1.0) * 16000))  # last note off + 1 s tail
    # the audio the library renders for the file's notes with the stage's settings (same seed, same numba kernel)
    from w2m2w.midi import load_midi_notes
    from w2m2w.render.wavenet import SynthesisConfig, Synthesizer, load_wavenet

    ref = Synthesizer(load_wavenet(tiny_wavenet), SynthesisConfig()).render(load_midi_notes(mid)).astype(np.float64)
    gain = 10 ** (
        (-20.0 - pyloudnorm.Meter(16000).integrated_loudness(ref)) / 20
    )  # its hiss never decays: it ends at the cap
    side = json.loads(wav.with_suffix(".json").read_text())
    if side["stats"]["loudness_limited"]:  # an untrained model's peaks: the gain stops at -1 dBFS
        gain = 10 ** (-1 / 20) / np.abs(ref).max()
    np.testing.assert_allclose(y, np.clip(ref * gain, -1, 1), atol=1.0 / 32768 + 1e-5)
    assert side["stage"] == "synthesize" and side["weights"] == str(tiny_wavenet) and len(side["weights_sha256"]) == 64
    assert (
        side["stats"]["backend"] == "numba" and side["stats"]["notes"] == 3 and side["stats"]["samples_per_second"] > 0
    )
    # in a pipe: plain lines, no progress bars (test_progress_bars_on_a_terminal has those)
    assert "\r" not in res.stderr and "\x1b[" not in res.stderr and "1/1 pieces: piece done" in res.stdout
    mtime = wav.stat().st_mtime_ns
    res = run_pipeline(*args)
    assert res.returncode == 0 and "current" in res.stdout
    assert wav.stat().st_mtime_ns == mtime
    res = run_pipeline(*args, "synthesize.seed=1")  # a setting that changes the audio: recomputed
    assert res.returncode == 0 and wav.stat().st_mtime_ns != mtime
    assert not np.array_equal(_wav(wav), y)


@pytest.mark.parametrize("synth", ["wavenet", "source_filter"])
def test_bad_midi_is_named_and_batch_goes_on(tmp_path, synth, request):
    weights = request.getfixturevalue(f"tiny_{synth}")
    root = _midi_batch(tmp_path / "in")
    run_dir = tmp_path / "run"
    res = run_pipeline(
        f"input={root}",
        "stages=[synthesize]",
        f"synthesize={synth}",
        f"synthesize.weights={weights}",
        f"run_dir={run_dir}",
    )
    assert res.returncode == 1, "a failed piece makes the run exit non-zero"
    log = res.stdout + res.stderr
    for name, reason in [("empty.mid", "empty"), ("garbage.mid", "not a readable MIDI")]:
        lines = [ln for ln in log.splitlines() if "ERROR" in ln and name in ln]
        assert lines and reason in lines[0], f"no clear error line for {name}:\n{log[-3000:]}"
    warn = [ln for ln in log.splitlines() if "WARNING" in ln]
    assert any("outside.mid" in ln and "2 note(s) outside" in ln for ln in warn), log[-3000:]
    assert any("nonotes.mid" in ln and "silence" in ln for ln in warn), log[-3000:]
    out = run_dir / "3-synthesize"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "nonotes.wav",
        "outside.wav",
        "set a/good one.wav",
    ]
    silent = _wav(out / "nonotes.wav")
    assert len(silent) == 8000 and not silent.any()
    # its tail: the autoregressive model's hiss rings to its 1 s cap; the source-filter output ends where its gate closes
    want = 0.9 + (1.0 if synth == "wavenet" else 0.36 + 16 / 16000)  # the gate: no lead, a 16-sample ramp
    assert len(_wav(out / "outside.wav")) / 16000 == pytest.approx(want, abs=0.003)
    assert not [p for p in out.rglob(".*") if p.is_file()], "no temporary files stay behind"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"] == {"done": 3, "failed": 2}


def _fresh_render(mid: Path, soundfont: str, out: Path) -> np.ndarray:
    """render_notes of a MIDI file in a fresh process, as the run renders it. FluidSynth draws its +-1 LSB dither table
    from C's rand() once per process, so a render in this process matches the run's to the sample only if nothing here
    called rand() first (an xdist worker has run other tests before)."""
    code = (
        "import sys, numpy as np; from w2m2w.midi import load_midi_notes; from w2m2w.render.fluidsynth import render_notes; "
        "np.save(sys.argv[3], render_notes(load_midi_notes(sys.argv[1]), sys.argv[2]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(mid), soundfont, str(out)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def test_fluidsynth_implementation(tmp_path):
    pytest.importorskip("fluidsynth")
    from w2m2w.render.fluidsynth import RenderError, soundfont_path

    try:
        sf_path = soundfont_path("timgm6mb")
    except RenderError as exc:
        pytest.skip(str(exc))
    mid = tmp_path / "piece.mid"
    write_midi(mid, NOTES)
    run_dir = tmp_path / "run"
    res = run_pipeline(
        f"input={mid}",
        "stages=[synthesize]",
        "synthesize=fluidsynth",
        "synthesize.soundfont=timgm6mb",
        f"run_dir={run_dir}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    wav = run_dir / "3-synthesize" / "piece.wav"
    side = json.loads(wav.with_suffix(".json").read_text())
    assert side["settings"] == {
        "name": "fluidsynth",
        "soundfont": "timgm6mb",
        "program": 0,
        "tail_seconds": 5.0,
        "loudness_lufs": -20.0,
        "sample_rate": 16000,
    }
    assert (
        side["weights"] == sf_path and len(side["weights_sha256"]) == 64
    )  # the soundfont's hash: a new soundfont re-renders
    ref = _fresh_render(
        mid, "timgm6mb", tmp_path / "ref.npy"
    )  # pretty_midi's render: 1 s after the last note-off, peak 0.9
    y = _wav(wav)
    assert len(y) <= round((1.9 + 5.0) * 16000)  # rings at most 5 s, ends where it has died away
    k = min(len(y), len(ref))
    gain = 10 ** (side["stats"]["loudness_gain_db"] / 20)
    lsb = np.abs(
        ref[ref != 0]
    ).min()  # FluidSynth's 16-bit step, scaled: its +-1 step dither is removed (silence is exact)
    loud = np.abs(ref[:k]) > 1.5 * lsb
    np.testing.assert_allclose(
        y[:k][loud], ref[:k][loud] * gain, atol=2.0 / 32768
    )  # the same render, brought to the level, through 16-bit PCM
    assert not y[:k][~loud].any()
    assert pyloudnorm.Meter(16000).integrated_loudness(y.astype(np.float64)) == pytest.approx(-20.0, abs=0.05)
    assert side["stats"]["loudness_lufs"] == pytest.approx(-20.0) and not side["stats"]["loudness_limited"]


def test_missing_weights_and_soundfont_are_named(tmp_path):
    mid = tmp_path / "piece.mid"
    write_midi(mid, NOTES)
    missing = tmp_path / "nope.safetensors"
    res = run_pipeline(
        f"input={mid}", "stages=[synthesize]", f"synthesize.weights={missing}", f"run_dir={tmp_path / 'run'}"
    )
    assert res.returncode != 0
    assert str(missing) in res.stdout + res.stderr and "not found" in res.stdout + res.stderr
    res = run_pipeline(
        f"input={mid}",
        "stages=[synthesize]",
        "synthesize=fluidsynth",
        f"synthesize.soundfont={tmp_path / 'no.sf2'}",
        f"run_dir={tmp_path / 'run'}",
    )
    assert res.returncode != 0 and "no.sf2" in res.stdout + res.stderr


def test_source_filter_renders_midi_through_run_py(tmp_path, tiny_source_filter):
    from w2m2w.midi import load_midi_notes
    from w2m2w.render.source_filter import SourceFilterRenderConfig, SourceFilterRenderer, load_source_filter

    mid = tmp_path / "piece.mid"
    write_midi(mid, NOTES)
    run_dir = tmp_path / "run"
    args = [f"input={mid}", "stages=[synthesize]", f"synthesize.weights={tiny_source_filter}", f"run_dir={run_dir}"]
    res = run_pipeline(*args)  # the default synthesizer
    assert res.returncode == 0, res.stderr[-3000:]
    wav = run_dir / "3-synthesize" / "piece.wav"
    y = _wav(wav)
    # the gate closes 6 release taus (0.36 s) plus its margin and ramp (0 + 16 samples) after the last offset: the file ends there
    assert len(y) / 16000 == pytest.approx(1.9 + 0.36 + 16 / 16000, abs=0.003)
    side = json.loads(wav.with_suffix(".json").read_text())
    assert side["settings"] == {
        "name": "source_filter",
        "tail_seconds": 5.0,
        "source_only": False,
        "eq_db": None,
        "gate_margin": 0,
        "gate_ramp": 16,
        "release": "model",
        "dc_block_hz": 5.0,
        "loudness_lufs": -20.0,
        "sample_rate": 16000,
    }
    assert side["weights"] == str(tiny_source_filter) and side["stats"]["synthesizer"] == "source_filter"
    # the library's renderer's audio for the file's notes, brought to -20 LUFS as pyloudnorm measures it (through 16-bit PCM)
    raw = SourceFilterRenderer(
        load_source_filter(tiny_source_filter), SourceFilterRenderConfig(gate_margin=0, gate_ramp=16)
    ).render(load_midi_notes(mid))
    raw = raw.astype(np.float64)
    assert not raw[len(y) :].any() and raw[len(y) - 1] != 0  # what was cut is exact silence
    ref = raw[: len(y)]
    gain = 10 ** ((-20.0 - pyloudnorm.Meter(16000).integrated_loudness(ref)) / 20)
    np.testing.assert_allclose(y, np.clip(ref * gain, -1, 1), atol=1.0 / 32768 + 1e-5)
    assert np.abs(y).max() > 1e-3
    res = run_pipeline(*args)
    assert res.returncode == 0 and "current" in res.stdout
    res = run_pipeline(*args, "synthesize.source_only=true")  # a setting that changes the audio: recomputed
    y2 = _wav(wav)
    assert res.returncode == 0 and (len(y2) != len(y) or not np.allclose(y2, y))


def test_music_too_long_is_refused_in_one_line(tmp_path, tiny_source_filter):
    mid = tmp_path / "stray.mid"
    write_midi(mid, np.array([[0.1, 0.5, 60, 80], [5000.0, 5000.5, 62, 80]]))
    write_midi(tmp_path / "fine.mid", NOTES)
    run_dir = tmp_path / "run"
    res = run_pipeline(
        f"input={tmp_path}",
        "stages=[synthesize]",
        f"synthesize.weights={tiny_source_filter}",
        f"run_dir={run_dir}",
        "synthesize.max_seconds=600",
        "workers=1",
    )
    assert res.returncode == 1
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if "stray.mid" in ln and "max_seconds=600" in ln]
    assert lines, (res.stdout + res.stderr)[-3000:]
    assert (run_dir / "3-synthesize" / "fine.wav").is_file() and not (run_dir / "3-synthesize" / "stray.wav").exists()


def test_progress_bars_on_a_terminal(tmp_path, tiny_source_filter):
    """On a terminal the run draws its bars, the stage's own bar counting seconds rendered among them."""
    from tests.conftest import run_on_terminal

    mid = tmp_path / "piece.mid"
    write_midi(mid, NOTES)
    args = [
        f"input={mid}",
        "stages=[synthesize]",
        f"synthesize.weights={tiny_source_filter}",
        f"run_dir={tmp_path / 'run'}",
        "synthesize.block_seconds=0.5",
    ]
    res = run_on_terminal(*args)
    assert res.returncode == 0 and "all stages" in res.stdout and "s audio" in res.stdout and "\r" in res.stdout
    assert "1/1 pieces" not in res.stdout  # the plain line is for pipes only
