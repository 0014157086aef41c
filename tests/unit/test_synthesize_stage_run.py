"""The synthesize stage's own run (stages/synthesize.py), called as the runner calls it, with a renderer whose every
sample is known by hand: what the WAV file holds (format, rate, length, clipped values), the facts the stage returns,
the progress it reports, the warnings and refusals word for word, and the renderer cache's keys."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

import stages.synthesize as synth
from stages.synthesize import (
    BAND_NOTE,
    STAGE,
    FluidSynthSettings,
    SourceFilterSettings,
    WaveNetSettings,
    audio_chunks,
    render,
)
from w2m2w.render.fluidsynth import RenderError
from w2m2w.run.stage import StageError, StageJob
from w2m2w.settings import SettingsError

# three chunks of 8000 samples (0.5 s each) at +0.5, +1.5 and -1.5, and 8 samples more at +0.25: 24,008 samples,
# 1.5005 s, which rounds to 1.5 at three decimals where one sample more (1.5005625 s) gives 1.501
CHUNKS = [np.full(8000, 0.5), np.full(8000, 1.5), np.full(8000, -1.5), np.full(8, 0.25)]
N = 24008


class FakeRenderer:
    """A renderer that plays CHUNKS, reports 0.6 s of progress per chunk (more than it makes: the bar must not
    overshoot) and takes 50 ms per chunk, so that the stage's timing has something to measure."""

    name, sample_rate, backend = "fake", 16000, "fake"

    def __init__(self, n: int = N, fail: bool = False, chunks: list[np.ndarray] = CHUNKS) -> None:
        self.n, self.fail, self.streamed, self.chunks = n, fail, 0, chunks

    def n_samples(self, notes: np.ndarray) -> int:
        return self.n

    def stream(self, notes, n_samples=None, progress=None):
        self.streamed += 1
        for y in self.chunks:
            if self.fail:
                raise RenderError("the soundfont went away")
            time.sleep(0.05)
            if progress is not None:
                progress(0.6)
            yield y.astype(np.float32)

    def describe(self) -> dict:
        return {"backend": "fake", "renderer_fact": 7}


class FakeBar:
    made: list[FakeBar] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.total, self.n, self.updates, self.closed = kwargs, kwargs["total"], 0.0, [], False
        FakeBar.made.append(self)

    def update(self, x: float) -> None:
        self.updates.append(x)
        self.n += x

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def fake_bar(monkeypatch):
    import w2m2w.run.progress

    FakeBar.made = []
    monkeypatch.setattr(w2m2w.run.progress, "progress_bar", lambda **kw: FakeBar(**kw))


def _midi(path: Path, pitches: list[int]) -> Path:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(80, p, 0.1 + 0.3 * k, 0.4 + 0.3 * k) for k, p in enumerate(pitches)]
    pm.instruments.append(piano)
    pm.write(str(path))
    return path


def _job(src: Path, out_dir: Path) -> StageJob:
    return StageJob("take", src, src, out_dir / "take.wav.tmp")


def test_the_wav_holds_every_chunk_clipped_and_the_facts_say_so(tmp_path):
    src = _midi(tmp_path / "take.mid", [60, 64, 67])
    facts = render(SourceFilterSettings(), _job(src, tmp_path), FakeRenderer())
    info = sf.info(str(tmp_path / "take.wav.tmp"))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
    y, _ = sf.read(str(tmp_path / "take.wav.tmp"), dtype="int16")
    # PCM_16 by hand: 0.5 -> 16384, the clipped +1 -> 32767, -1 -> -32768, 0.25 -> 8192
    expected = np.concatenate([np.full(8000, 16384), np.full(8000, 32767), np.full(8000, -32768), np.full(8, 8192)])
    np.testing.assert_array_equal(y, expected)
    assert facts["notes"] == 3 and facts["synthesizer"] == "source_filter" and facts["sample_rate"] == 16000
    assert facts["audio_seconds"] == 1.5  # 24,008 samples; one more would read 1.501
    assert "warnings" not in facts and "resampled" not in facts
    assert facts["backend"] == "fake" and facts["renderer_fact"] == 7  # the renderer's own facts
    # four chunks of 50 ms each: the wall time is at least that, in milliseconds, and the speed is samples over it
    assert 0.2 <= facts["render_seconds"] < 30 and facts["render_seconds"] == round(facts["render_seconds"], 3)
    assert facts["samples_per_second"] == pytest.approx(N / facts["render_seconds"], rel=0.01)


def test_progress_counts_seconds_of_audio_and_never_passes_the_total(tmp_path):
    src = _midi(tmp_path / "take.mid", [60])
    render(FluidSynthSettings(), _job(src, tmp_path), FakeRenderer(n=24176))
    (bar,) = FakeBar.made
    assert bar.kwargs["total"] == 1.51  # 24,176 samples are 1.511 s: to the hundredth
    assert bar.kwargs["desc"] == "synthesize take" and bar.kwargs["unit"] == "s"
    assert bar.kwargs["bar_format"] == (
        "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]"
    )
    # 0.6 s reported per chunk: 0.6, 0.6, then only the 0.31 s left, then nothing
    assert bar.updates == pytest.approx([0.6, 0.6, 0.31, 0.0]) and bar.n == pytest.approx(1.51) and bar.closed


def test_a_renderer_error_names_the_midi_file_and_the_bar_is_closed(tmp_path):
    src = _midi(tmp_path / "take.mid", [60])
    with pytest.raises(StageError) as err:
        render(SourceFilterSettings(), _job(src, tmp_path), FakeRenderer(fail=True))
    assert str(err.value) == f"{src}: the soundfont went away"
    assert FakeBar.made[0].closed
    with pytest.raises(StageError) as err:  # called without a name (w2m2w.synthesize's use), the file is "MIDI"
        list(audio_chunks(SourceFilterSettings(), np.array([[0, 1, 60, 80]], float), FakeRenderer(fail=True)))
    assert str(err.value) == "MIDI: the soundfont went away"


@pytest.mark.parametrize("rate", [16000, 44100])
def test_no_notes_is_half_a_second_of_silence_with_a_warning(tmp_path, rate, caplog):
    src = _midi(tmp_path / "take.mid", [])
    fake = FakeRenderer()
    with caplog.at_level(logging.WARNING, logger="w2m2w"):
        facts = render(SourceFilterSettings(sample_rate=rate), _job(src, tmp_path), fake)
    said = f"{src}: no notes to play; writing 0.5 s of silence"
    assert facts["warnings"] == [said] and [r.getMessage() for r in caplog.records] == [said]
    assert facts["notes"] == 0 and facts["audio_seconds"] == 0.5 and fake.streamed == 0 and not FakeBar.made
    y, sr = sf.read(str(tmp_path / "take.wav.tmp"))
    assert sr == rate and len(y) == rate // 2 and not y.any()  # 8000 samples at 16 kHz, 22050 at 44.1 kHz
    assert sf.info(str(tmp_path / "take.wav.tmp")).subtype == "PCM_16"
    (silent,) = audio_chunks(SourceFilterSettings(sample_rate=rate), np.zeros((0, 4)), None)
    assert silent[0].dtype == np.float32 and silent[1] == 8000  # as the rendered chunks are, counted at 16 kHz


def test_max_seconds_counts_the_silence_written_for_no_notes(tmp_path):
    src = _midi(tmp_path / "take.mid", [])
    with pytest.raises(StageError, match=r"the music lasts 0 s, over synthesize.max_seconds=0.25"):
        render(SourceFilterSettings(max_seconds=0.25), _job(src, tmp_path), FakeRenderer())  # 0.5 s of silence
    render(SourceFilterSettings(max_seconds=0.5), _job(src, tmp_path), FakeRenderer())  # the edge: taken


def test_one_note_has_no_warning_and_notes_off_the_keyboard_are_dropped_with_one(tmp_path, caplog):
    src = _midi(tmp_path / "take.mid", [60])
    assert "warnings" not in render(SourceFilterSettings(), _job(src, tmp_path), FakeRenderer())
    src = _midi(tmp_path / "wide.mid", [10, 60, 115])
    with caplog.at_level(logging.WARNING, logger="w2m2w"):
        facts = render(SourceFilterSettings(), _job(src, tmp_path), FakeRenderer())
    said = f"{src}: 2 note(s) outside the piano's range (MIDI 21..108) dropped"
    assert facts["warnings"] == [said] and facts["notes"] == 1
    assert [r.getMessage() for r in caplog.records] == [said]


def test_an_unreadable_midi_is_refused_with_its_reason(tmp_path):
    src = tmp_path / "take.mid"
    src.write_bytes(b"not a midi file")
    with pytest.raises(StageError) as err:
        render(SourceFilterSettings(), _job(src, tmp_path), FakeRenderer())
    assert str(err.value).startswith(f"{src}: not a readable MIDI file (")


@pytest.mark.parametrize(("n", "refused"), [(24000, False), (24001, True)])
def test_max_seconds_refuses_only_music_longer_than_it(tmp_path, n, refused):
    src = _midi(tmp_path / "take.mid", [60])
    s = SourceFilterSettings(max_seconds=1.5)  # 24,000 samples exactly
    if not refused:
        render(s, _job(src, tmp_path), FakeRenderer(n))
        return
    with pytest.raises(StageError) as err:
        render(s, _job(src, tmp_path), FakeRenderer(n))
    assert str(err.value) == (
        f"{src}: the music lasts 2 s, over synthesize.max_seconds=1.5; raise it to render this file"
    )
    assert not (tmp_path / "take.wav.tmp").exists()  # refused before a byte is written


def test_resampled_audio_keeps_its_length_and_stays_clipped(tmp_path):
    src = _midi(tmp_path / "take.mid", [60])
    facts = render(SourceFilterSettings(sample_rate=44100), _job(src, tmp_path), FakeRenderer())
    y, sr = sf.read(str(tmp_path / "take.wav.tmp"))
    # 24,008 samples at 16 kHz are 66,172.05 at 44.1 kHz: the resampler's held-back tail is written too
    assert sr == 44100 and abs(len(y) - N * 44100 / 16000) <= 1
    assert facts["sample_rate"] == 44100 and facts["audio_seconds"] == 1.5  # counted at 16 kHz
    assert facts["resampled"] == f"from 16000 Hz with soxr (HQ); {BAND_NOTE}"
    # every chunk as the stage makes it, before PCM: nothing outside [-1, 1], and the +-1.5 chunks reach both ends
    chunks = list(
        audio_chunks(SourceFilterSettings(sample_rate=44100), np.array([[0, 1, 60, 80]], float), FakeRenderer())
    )
    audio = np.concatenate([c for c, _ in chunks])
    assert audio.max() == 1.0 and audio.min() == -1.0
    assert [made for _, made in chunks] == [8000, 8000, 8000, 8, 0]  # the tail chunk was made from no new samples
    assert np.abs(chunks[-1][0]).max() <= 1.0 and len(chunks[-1][0]) > 0


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_resamplers_held_back_tail_is_clipped_too(sign):
    """Ending on a chunk at +-1.5, the tail the resampler flushes last holds that level: clipped to exactly +-1."""
    fake = FakeRenderer(chunks=[np.full(8000, 0.1), np.full(8000, 1.5 * sign)])
    chunks = list(audio_chunks(SourceFilterSettings(sample_rate=44100), np.array([[0, 1, 60, 80]], float), fake))
    tail = chunks[-1][0]
    assert chunks[-1][1] == 0 and len(tail) > 0 and tail.dtype == np.float32
    assert np.abs(tail).max() == 1.0 and tail.max() <= 1.0 and tail.min() >= -1.0


def test_chunks_at_16k_are_the_renderers_clipped(tmp_path):
    chunks = list(audio_chunks(SourceFilterSettings(), np.array([[0, 1, 60, 80]], float), FakeRenderer()))
    for (c, made), y in zip(chunks, CHUNKS, strict=False):
        np.testing.assert_array_equal(c, np.clip(y, -1, 1).astype(np.float32))
        assert made == len(y)
    assert len(chunks) == 5 and len(chunks[-1][0]) == 0  # an equal-rate resampler holds nothing back
    silent = list(audio_chunks(SourceFilterSettings(), np.zeros((0, 4)), FakeRenderer()))
    assert [(len(c), made) for c, made in silent] == [(8000, 8000)]  # no notes: silence even with a renderer


def test_load_says_when_it_resamples_and_caches_by_settings(monkeypatch, caplog):
    loads = []
    monkeypatch.setattr(synth, "load_renderer", lambda name, s: loads.append(s) or object())
    synth._cached.cache_clear()
    with caplog.at_level(logging.INFO, logger="w2m2w"):
        a = STAGE.load(SourceFilterSettings())
    assert not [r for r in caplog.records if "resampled" in r.getMessage()]
    with caplog.at_level(logging.INFO, logger="w2m2w"):
        b = STAGE.load(SourceFilterSettings(sample_rate=48000))
    assert [r.getMessage() for r in caplog.records if "resampled" in r.getMessage()] == [
        f"synthesize.sample_rate=48000: audio made at 16000 Hz is resampled with soxr; {BAND_NOTE}"
    ]
    # equal settings load once; different ones (a list setting included) are different renderers
    assert STAGE.load(SourceFilterSettings()) is a and a is not b
    c = STAGE.load(SourceFilterSettings(eq_db=[0.0] * 8))
    assert c is not a and len(loads) == 3
    synth._cached.cache_clear()


def test_keyed_settings_compare_by_value():
    k = synth._Keyed
    assert k(SourceFilterSettings()) == k(SourceFilterSettings())
    assert hash(k(SourceFilterSettings())) == hash(k(SourceFilterSettings()))
    assert k(SourceFilterSettings()) != k(SourceFilterSettings(tail_seconds=1.0))
    assert k(SourceFilterSettings()) != SourceFilterSettings()


def test_weights_file_is_the_settings_own(tmp_path):
    sf2 = tmp_path / "piano.sf2"
    sf2.write_bytes(b"x")
    assert STAGE.weights_file(FluidSynthSettings(soundfont=str(sf2))) == sf2
    w = tmp_path / "mine.safetensors"
    assert STAGE.weights_file(SourceFilterSettings(weights=str(w))) == w


def test_wavenet_window_check_names_the_bare_key():
    with pytest.raises(SettingsError) as err:
        WaveNetSettings(folds=1024).check_more()
    assert err.value.key == "folds"
    with pytest.raises(SettingsError) as err:
        WaveNetSettings(folds=1024).check_more("synthesize")
    assert err.value.key == "synthesize.folds"


def test_the_shipped_pianos_by_short_name_and_the_default():
    weights = Path(__file__).resolve().parents[2] / "weights"  # the package's weights folder links here

    def file(s) -> Path:
        return STAGE.weights_file(s).resolve()

    assert file(SourceFilterSettings()) == weights / "source_filter_wavenet_real.safetensors"
    assert file(SourceFilterSettings(weights="real")) == weights / "source_filter_wavenet_real.safetensors"
    assert file(SourceFilterSettings(weights="sptkbgcl")) == weights / "source_filter_wavenet.safetensors"
    # a short name is the source-filter model's only: anything else is a path
    assert STAGE.weights_file(WaveNetSettings(weights="real")) == Path("real")
    assert STAGE.weights_file(SourceFilterSettings(weights="./real")) == Path("real")
