"""The stage settings' own cross-field checks (check_more), called alone as the Python API does and under a
group's prefix as a run does: the key they name, the value, the words, and both sides of each boundary. The
expected words are written out here by hand from SettingsError's form "KEY=VALUE is not allowed: it must be ..."."""

from __future__ import annotations

import pytest

from stages.synthesize import WaveNetSettings
from stages.transcribe import TranscribeSettings
from w2m2w.settings import SettingsError


@pytest.mark.parametrize("prefix", ["", "transcribe"])
def test_an_overlap_as_long_as_the_chunk_is_refused_by_its_key(prefix):
    TranscribeSettings(chunk_seconds=10.0, overlap_seconds=9.99).check_more(prefix)  # just below: taken
    with pytest.raises(SettingsError) as err:
        TranscribeSettings(chunk_seconds=10.0, overlap_seconds=10.0).check_more(prefix)
    key = f"{prefix}.overlap_seconds" if prefix else "overlap_seconds"
    assert str(err.value) == f"{key}=10.0 is not allowed: it must be in [0, chunk_seconds) = [0, 10)"
    assert (err.value.key, err.value.value) == (key, 10.0)


def test_the_default_prefix_is_none():
    with pytest.raises(SettingsError) as err:
        TranscribeSettings(chunk_seconds=5.0, overlap_seconds=6.0).check_more()
    assert err.value.key == "overlap_seconds"


@pytest.mark.parametrize("prefix", ["", "synthesize"])
def test_a_window_of_streams_is_bounded_in_stream_seconds(prefix):
    # one stream: max(min_segment, max_segment) + warm-up + fade = 3.8 + 0.15 + 0.05 = 4 s; 4096 stream-seconds
    # in memory at most, so 1024 folds are taken and 1025 are not (worked by hand)
    s = dict(min_segment_seconds=3.8, max_segment_seconds=0.5, warmup_seconds=0.15, fade_seconds=0.05)
    WaveNetSettings(folds=1024, **s).check_more(prefix)
    with pytest.raises(SettingsError) as err:
        WaveNetSettings(folds=1025, **s).check_more(prefix)
    key = f"{prefix}.folds" if prefix else "folds"
    assert (err.value.key, err.value.value) == (key, 1025)
    assert str(err.value) == (
        f"{key}=1025 is not allowed: it must be at most 4096 stream-seconds: folds x (max(min_segment_seconds, "
        "max_segment_seconds) + warmup_seconds + fade_seconds) <= 4096, here 1025 x 4 s"
    )
