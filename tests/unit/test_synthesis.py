"""Folded, batched, streamed synthesis with a tiny WaveNet; evaluation figures; the streaming FluidSynth render."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import TINY_WAVENET
from w2m2w.models.wavenet import WaveNet, WaveNetConfig
from w2m2w.synthesis import SynthesisConfig, Synthesizer, clean_notes, load_wavenet, piece_samples
from w2m2w.synthesis_eval import log_mel_distance

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
    np.testing.assert_array_equal(_synth(model, chunk_samples=333, threads=1).render(NOTES), y)  # chunking and threads never change it
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
    notes = np.array([[0, 1, 20, 80], [0, 1, 21, 80], [0, 1, 108, 80], [0, 1, 109, 80], [1, 1, 60, 80]], dtype=np.float64)
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
    from w2m2w.data.render import RenderError, render_notes, stream_notes

    try:
        ref = render_notes(NOTES, "timgm6mb")
    except RenderError as exc:
        pytest.skip(str(exc))
    got = np.concatenate(list(stream_notes(NOTES, "timgm6mb", chunk_seconds=0.3)))
    np.testing.assert_array_equal(got, ref)


def test_synthesis_evaluation(tmp_path, tiny_wavenet, tiny_transcriber):
    from w2m2w.midi import write_midi
    from w2m2w.synthesis_eval import run_synthesis_evaluation

    soundfont = None
    try:
        import fluidsynth  # noqa: F401

        from w2m2w.data.render import soundfont_path

        soundfont_path("timgm6mb")
        soundfont = "timgm6mb"
    except Exception:
        pass
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_midi(tmp_path / "in" / "sub" / "a.mid", NOTES[:2])
    (tmp_path / "in" / "bad.mid").write_text("not midi")
    rows, warnings = [], []
    summary = run_synthesis_evaluation(tmp_path / "in", tiny_wavenet, tiny_transcriber, soundfont, max_seconds=1.0,
                                       threads=1, audio_out=tmp_path / "audio", emit=rows.append, warn=warnings.append, temperature=0.8)
    assert [r["file"] for r in rows] == ["sub/a.mid"] and summary["files"] == 1 and summary["temperature"] == 0.8
    assert len(warnings) == 1 and "bad.mid" in warnings[0]
    assert summary["samples_per_second"] > 0 and 0 <= summary["wavenet_note_f1"] <= 1
    assert rows[0]["audio_s"] == pytest.approx(1.0 + 1.0)  # cropped at 1 s, then the 1 s tail
    assert (tmp_path / "audio" / "sub__a.wavenet.wav").is_file()
    if soundfont:
        assert summary["log_mel_distance"] > 0 and "fluidsynth_note_f1" in summary


def test_midi_inputs_from_a_list(tmp_path):
    """A .txt list (a training run's validation_midi.txt): entries next to the list, or as written."""
    from w2m2w.midi import write_midi
    from w2m2w.synthesis_eval import midi_inputs

    notes = np.array([[0.0, 0.5, 60, 80]])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_midi(tmp_path / "a" / "x.mid", notes)
    write_midi(tmp_path / "b" / "y.mid", notes)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# held out\na/x.mid\n{tmp_path / 'b' / 'y.mid'}\n")
    assert [(n, p.resolve()) for n, p in midi_inputs(listing)] == [("a/x.mid", (tmp_path / "a" / "x.mid").resolve()), ("b/y.mid", (tmp_path / "b" / "y.mid").resolve())]
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
    m = WaveNet(WaveNetConfig(**TINY_WAVENET, excitation_harmonics=2, scalar_input=True, output="logistic_mixture", mixtures=3)).eval()
    y = _synth(m).render(NOTES)
    assert y.shape == (piece_samples(NOTES, 1.0, 160),) and np.isfinite(y).all() and np.abs(y).max() > 0
    np.testing.assert_array_equal(_synth(m, chunk_samples=333, threads=1).render(NOTES), y)
    t = _synth(m, backend="torch", min_segment_seconds=0.2).render(NOTES[:1], 4800)
    assert t.shape == (4800,) and np.isfinite(t).all()
