"""synthesize.sample_rate: the WAV written at another rate, resampled with soxr as if all at once."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from stages.synthesize import SourceFilterSettings, render
from w2m2w.midi import write_midi
from w2m2w.run.stage import StageJob
from w2m2w.settings import SettingsError, check

SR = 16000


class _Sine:
    """A renderer of 1.3 s of 1 kHz in uneven chunks, as a stream of the real ones comes."""

    y = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(1.3 * SR)) / SR)).astype(np.float32)

    def n_samples(self, notes) -> int:
        return len(self.y)

    def stream(self, notes, progress=None):
        for a, b in [(0, 5000), (5000, 5001), (5001, 17000), (17000, len(self.y))]:
            yield self.y[a:b]

    def describe(self) -> dict:
        return {}


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_written_audio_is_resampled_whole(tmp_path, rate):
    midi = tmp_path / "in.mid"
    write_midi(midi, np.array([[0.0, 1.0, 60, 80]]))
    out = tmp_path / "out.wav"
    stats = render(SourceFilterSettings(sample_rate=rate), StageJob("p", midi, midi, out), _Sine())
    y, sr = sf.read(str(out), dtype="float32")
    expected = _Sine.y if rate == SR else soxr.resample(_Sine.y, SR, rate, quality="HQ")
    assert sr == rate and len(y) == len(expected) and np.abs(y - expected).max() < 2 / 32768  # PCM_16 rounding
    assert stats["sample_rate"] == rate and stats["audio_seconds"] == 1.3
    assert ("8 kHz" in stats.get("resampled", "")) == (rate != SR)


def test_sample_rate_is_bounded():
    with pytest.raises(SettingsError):
        check(SourceFilterSettings(sample_rate=1000), "synthesize")
