"""Folded, batched, streamed synthesis with a tiny WaveNet; evaluation figures; the streaming FluidSynth render."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import TINY_WAVENET
from w2m2w.evaluate.synthesis import log_mel_distance
from w2m2w.models.wavenet import WaveNet, WaveNetConfig
from w2m2w.render.wavenet import SynthesisConfig, Synthesizer, clean_notes, load_wavenet, piece_samples

NOTES = np.array([[0.1, 0.9, 60, 90], [0.5, 2.2, 64, 60], [1.9, 3.1, 67, 100]], dtype=np.float64)


@pytest.fixture(scope="module")
def model() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**TINY_WAVENET)).eval()


def _synth(model, **kw) -> Synthesizer:
    base = dict(folds=4, min_segment_seconds=0.5, max_segment_seconds=1.0, threads=2)
    return Synthesizer(model, SynthesisConfig(**{**base, **kw}))


def test_render_length_determinism_and_streaming(model):
    s = _synth(model)
    n = piece_samples(NOTES, 1.0, 160)
    assert n == 410 * 160  # 3.1 s + 1 s tail, whole 10 ms frames
    seen = []
    chunks = list(s.stream(NOTES, progress=seen.append))
    assert len(chunks) >= 2, "a piece longer than one window comes out in several chunks"
    y = np.concatenate(chunks)
    assert y.shape == (n,) and y.dtype == np.float32 and np.all(np.abs(y) <= 1)
    assert sum(seen) == pytest.approx(n / 16000)  # the progress bar ends at the piece's length
    np.testing.assert_array_equal(_synth(model).render(NOTES), y)  # same seed, same audio
    np.testing.assert_array_equal(
        _synth(model, chunk_samples=333, threads=1).render(NOTES), y
    )  # chunking and threads never change it
    assert not np.array_equal(_synth(model, seed=1).render(NOTES), y)


def test_torch_backend_draws_the_same_audio(model):
    a = _synth(model, backend="numba", min_segment_seconds=0.2).render(NOTES[:1], 4800)  # two segments
    b = _synth(model, backend="torch", min_segment_seconds=0.2).render(NOTES[:1], 4800)
    np.testing.assert_array_equal(a, b)


def test_several_pieces_share_batches(model):
    s = _synth(model, folds=8)
    pieces = [NOTES, NOTES[:1] + [0, 0, 5, 0], NOTES[1:]]
    lengths = [piece_samples(p, 1.0, 160) for p in pieces]
    got = {i: [] for i in range(3)}
    for i, chunk in s.stream_many(pieces):
        got[i].append(chunk)
    assert [sum(len(c) for c in got[i]) for i in range(3)] == lengths


def test_load_wavenet_checks_the_file(tiny_wavenet, tmp_path):
    m = load_wavenet(tiny_wavenet)
    assert m.cfg == WaveNetConfig(**TINY_WAVENET)
    from w2m2w.checkpoint import WeightsError

    with pytest.raises(WeightsError, match="not found"):
        load_wavenet(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match="onsets_frames"):
        from w2m2w.checkpoint import save_weights

        save_weights(tmp_path / "other.safetensors", "onsets_frames", {"w": torch.zeros(1)}, {})
        load_wavenet(tmp_path / "other.safetensors")


def test_clean_notes_drops_off_keyboard():
    notes = np.array(
        [[0, 1, 20, 80], [0, 1, 21, 80], [0, 1, 108, 80], [0, 1, 109, 80], [1, 1, 60, 80]], dtype=np.float64
    )
    kept, dropped = clean_notes(notes)
    assert dropped == 2
    np.testing.assert_array_equal(kept[:, 2], [21, 108])  # and the zero-length note is gone


def test_log_mel_distance():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    a = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert log_mel_distance(a, a) == 0.0
    assert log_mel_distance(a, 0.1 * a) == pytest.approx(0.0, abs=1e-4)  # level does not count
    noise = (0.1 * rng.standard_normal(32000)).astype(np.float32)
    other = (0.3 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    assert log_mel_distance(a, noise) > log_mel_distance(a, a + 0.01 * noise) > 0
    assert log_mel_distance(a, other) > 1.0
    assert log_mel_distance(a, np.concatenate([a, noise])) == 0.0  # cut to the shorter


def test_stream_notes_equals_render_notes():
    pytest.importorskip("fluidsynth")
    from w2m2w.render.fluidsynth import RenderError, render_notes, stream_notes

    try:
        ref = render_notes(NOTES, "timgm6mb")
    except RenderError as exc:
        pytest.skip(str(exc))
    got = np.concatenate(list(stream_notes(NOTES, "timgm6mb", chunk_seconds=0.3)))
    np.testing.assert_array_equal(got, ref)


class _Tone:
    """A stand-in renderer: one sine per note at its pitch while it sounds (and `hiss` everywhere)."""

    name, sample_rate, backend = "tone", 16000, "numpy"

    def __init__(self, hiss: float = 0.0):
        self.hiss = hiss

    def n_samples(self, notes):
        return int((notes[:, 1].max() + 1.0) * 16000)

    def render(self, notes, n_samples=None):
        n = n_samples or self.n_samples(notes)
        t = np.arange(n) / 16000
        y = np.full(n, self.hiss, np.float32) * np.sign(
            np.sin(2 * np.pi * 1000 * t)
        )  # a square wave of RMS exactly `hiss`
        for on, off, p, _ in notes:
            m = (t >= on) & (t < off)
            y[m] += 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t[m])
        return y


def test_silence_level_by_hand():
    from w2m2w.evaluate.synthesis import silence_dbfs, silence_mask

    notes = np.array([[1.0, 2.0, 60, 80]])
    quiet = silence_mask(notes, 5 * 16000)
    assert (
        quiet[:16000].all() and not quiet[16000 : 3 * 16000].any() and quiet[3 * 16000 :].all()
    )  # offset + 1 s still rings
    y = _Tone(hiss=0.001).render(notes, 5 * 16000)
    assert silence_dbfs(y, notes) == pytest.approx(-60.0, abs=0.05)
    assert silence_dbfs(np.zeros(5 * 16000, np.float32), notes) == -120.0
    assert silence_dbfs(y[: int(2.5 * 16000)], np.array([[0.0, 2.0, 60, 80]])) is None  # no silent samples to measure


def test_evaluation_figures_by_hand(tmp_path):
    from w2m2w.audio import save_wav
    from w2m2w.evaluate.synthesis import TAIL_SECONDS, evaluate_synthesis, reference_audio
    from w2m2w.midi import write_midi

    notes = NOTES[:3]
    write_midi(tmp_path / "a.mid", notes)
    (tmp_path / "bad.mid").write_text("not midi")
    n = int(np.ceil((notes[:, 1].max() + TAIL_SECONDS) * 16000))
    (tmp_path / "ref").mkdir()
    save_wav(tmp_path / "ref" / "a.wav", _Tone().render(notes, n))  # the target piano plays exactly what _Tone renders
    from w2m2w.midi import load_midi_notes

    exact = load_midi_notes(tmp_path / "a.mid")
    transcribers = {"oracle": lambda audio: exact, "deaf": lambda audio: np.zeros((0, 4))}
    rows, warnings = [], []
    summary = evaluate_synthesis(
        [("a.mid", tmp_path / "a.mid"), ("bad.mid", tmp_path / "bad.mid")],
        {"same": _Tone(), "hissy": _Tone(0.01)},
        transcribers,
        reference_audio(tmp_path / "ref"),
        max_seconds=None,
        emit=rows.append,
        warn=warnings.append,
    )
    assert summary["files"] == 1 and len(warnings) == 1 and "bad.mid" in warnings[0]
    r = rows[0]
    assert r["audio_s"] == pytest.approx(n / 16000, abs=1e-3)
    assert r["same_oracle_note_f1"] == 1.0 and r["same_deaf_note_f1"] == 0.0
    assert r["same_distance_to_target"] == pytest.approx(0.0, abs=0.02)  # itself, through 16-bit WAV
    assert r["hissy_distance_to_target"] > 0.2
    assert r["same_silence_dbfs"] == -120.0 and r["hissy_silence_dbfs"] == pytest.approx(-40.0, abs=0.05)
    assert summary["hissy_silence_dbfs"] == r["hissy_silence_dbfs"]


def test_synthesis_evaluation_end_to_end(tmp_path, tiny_source_filter, tiny_transcriber):
    from w2m2w.evaluate.synthesis import run_synthesis_evaluation
    from w2m2w.midi import write_midi
    from w2m2w.render.source_filter import SourceFilterRenderer, load_source_filter

    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_midi(tmp_path / "in" / "sub" / "a.mid", NOTES[:2])
    (tmp_path / "in" / "bad.mid").write_text("not midi")
    rows, warnings = [], []
    summary = run_synthesis_evaluation(
        tmp_path / "in",
        "source_filter",
        tiny_source_filter,
        tiny_transcriber,
        soundfont=None,
        basic_pitch="false",
        max_seconds=1.0,
        threads=1,
        audio_out=tmp_path / "audio",
        emit=rows.append,
        warn=warnings.append,
    )
    assert (
        [r["file"] for r in rows] == ["sub/a.mid"]
        and summary["files"] == 1
        and summary["systems"] == ["source_filter", "source"]
    )
    assert len(warnings) == 1 and "bad.mid" in warnings[0]
    assert {"source_filter_w2m2w_note_f1", "source_w2m2w_frame_f1", "source_filter_silence_dbfs"} <= set(rows[0])
    cropped = NOTES[:2].copy()
    cropped[:, 1] = np.minimum(cropped[:, 1], 1.0)
    assert rows[0]["audio_s"] == pytest.approx(
        cropped[:, 1].max() + 2.5, abs=1e-3
    )  # cropped at 1 s, then 2.5 s to hear silence
    saved = sf.read(str(tmp_path / "audio" / "sub__a.source_filter.wav"), dtype="float32")[0]
    want = SourceFilterRenderer(load_source_filter(tiny_source_filter)).render(cropped, len(saved))
    np.testing.assert_allclose(saved, np.clip(want, -1, 1), atol=1 / 32768 + 1e-6)
    assert summary["weights_sha256"] and summary["basic_pitch"] == "basic_pitch=false"


def test_systems_side_by_side_at_one_level(tmp_path, tiny_source_filter):
    """Other weights beside the model, every system brought to one loudness, its level and peak measured (pyloudnorm)."""
    import pyloudnorm

    from w2m2w.evaluate.synthesis import run_synthesis_evaluation, side_by_side
    from w2m2w.midi import write_midi

    write_midi(tmp_path / "a.mid", np.array([[0.1, 1.5, 60, 90], [0.6, 2.0, 67, 70]]))
    summary = run_synthesis_evaluation(
        tmp_path, "source_filter", tiny_source_filter, None, soundfont=None, basic_pitch="false", threads=1,
        audio_out=tmp_path / "audio", loudness_lufs=-23.0, also={"other": str(tiny_source_filter)},
    )  # fmt: skip
    assert summary["systems"] == ["source_filter", "other", "source"]
    for system in summary["systems"]:
        y = sf.read(str(tmp_path / "audio" / f"a.{system}.wav"), dtype="float64")[0]
        assert pyloudnorm.Meter(16000).integrated_loudness(y) == pytest.approx(-23.0, abs=0.05)
        assert summary[f"{system}_lufs"] == pytest.approx(-23.0, abs=0.01)
        assert summary[f"{system}_peak_dbfs"] == pytest.approx(20 * np.log10(np.abs(y).max()), abs=0.01)
    table = side_by_side(summary, summary["systems"], [])
    lines = table.splitlines()
    assert lines[0] == "| system | silence dBFS | level LUFS | peak dBFS | x real time |" and len(lines) == 5
    assert lines[3].startswith("| other | ") and "| -23 |" in lines[3]


def test_midi_inputs_from_a_list(tmp_path):
    """A .txt list (a training run's validation_midi.txt): entries next to the list, or as written."""
    from w2m2w.evaluate.synthesis import midi_inputs
    from w2m2w.midi import write_midi

    notes = np.array([[0.0, 0.5, 60, 80]])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_midi(tmp_path / "a" / "x.mid", notes)
    write_midi(tmp_path / "b" / "y.mid", notes)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# held out\na/x.mid\n{tmp_path / 'b' / 'y.mid'}\n")
    assert [(n, p.resolve()) for n, p in midi_inputs(listing)] == [
        ("a/x.mid", (tmp_path / "a" / "x.mid").resolve()),
        ("b/y.mid", (tmp_path / "b" / "y.mid").resolve()),
    ]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.txt"):
        midi_inputs(tmp_path / "empty.txt")


def test_excitation_model_renders_the_same_on_every_path():
    torch.manual_seed(3)
    m = WaveNet(WaveNetConfig(**TINY_WAVENET, excitation_harmonics=4, scalar_input=True)).eval()
    y = _synth(m).render(NOTES)
    assert y.shape == (piece_samples(NOTES, 1.0, 160),) and np.isfinite(y).all()
    np.testing.assert_array_equal(_synth(m, chunk_samples=333, threads=1).render(NOTES), y)
    a = _synth(m, backend="numba", min_segment_seconds=0.2).render(NOTES[:1], 4800)
    np.testing.assert_array_equal(_synth(m, backend="torch", min_segment_seconds=0.2).render(NOTES[:1], 4800), a)
    # the excitation reaches the output: other pitches, other audio from the same seed
    assert not np.array_equal(_synth(m).render(NOTES + [0, 0, 7, 0]), y)


def test_logistic_mixture_model_renders():
    torch.manual_seed(4)
    m = WaveNet(
        WaveNetConfig(**TINY_WAVENET, excitation_harmonics=2, scalar_input=True, output="logistic_mixture", mixtures=3)
    ).eval()
    y = _synth(m).render(NOTES)
    assert y.shape == (piece_samples(NOTES, 1.0, 160),) and np.isfinite(y).all() and np.abs(y).max() > 0
    np.testing.assert_array_equal(_synth(m, chunk_samples=333, threads=1).render(NOTES), y)
    t = _synth(m, backend="torch", min_segment_seconds=0.2).render(NOTES[:1], 4800)
    assert t.shape == (4800,) and np.isfinite(t).all()


def test_roll_only_wavenet_follows_the_notes(model):
    # the shipped configuration has no excitation: only the piano roll tells it the notes
    assert model.cfg.excitation_harmonics == 0
    y = _synth(model).render(NOTES)
    moved = _synth(model).render(NOTES + np.array([0, 0, 7, 0]))  # same length, same seed: only the roll differs
    assert np.abs(moved - y).max() > 0.01


def test_folded_segment_conditioning_is_the_whole_pieces_rows(model):
    from w2m2w.features import conditioning_roll

    s = _synth(model)
    m = model.cond_margin
    n = piece_samples(NOTES, 1.0, 160)
    whole = conditioning_roll(NOTES, n // 160 + 2 * m, 100.0, -m)
    with torch.no_grad():
        whole_cond = model.conditioning(torch.from_numpy(whole)[None])[0]
    for seg in s.plan(n)[1:3]:
        frames = seg.length // 160
        got = s._cond([(NOTES, seg)], frames)[0]
        f0 = seg.start // 160
        torch.testing.assert_close(got, whole_cond[f0 : f0 + frames], atol=1e-5, rtol=1e-5)
