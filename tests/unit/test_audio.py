"""Audio loading (resample, mix-down, clear errors) and mu-law."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from w2m2w.audio import AudioError, is_silent, level_db, level_gain, load_audio, mu_law_decode, mu_law_encode, save_wav


def test_stereo_44k_to_16k_mono(tmp_path):
    sr, seconds = 44100, 1.5
    t = np.arange(int(sr * seconds)) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    path = tmp_path / "x.wav"
    sf.write(str(path), stereo, sr)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - int(16000 * seconds)) <= 1
    # mono is the mean of the channels: half of the left channel's 0.5 peak
    assert np.max(np.abs(y[1000:-1000])) == pytest.approx(0.25, abs=0.01)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * 16000 / len(y) == pytest.approx(440, abs=2)


@pytest.mark.parametrize(
    "native_sr, frames", [(44100, 44100 * 3 + 13), (48000, 48000 * 2 + 1), (22050, 30001), (44100, 50)]
)
def test_block_by_block_reading_is_the_one_shot_resampling(tmp_path, native_sr, frames):
    """Reading in blocks (bounded memory) gives librosa's one-shot soxr_hq resampling of the mono mix, samples and length."""
    import librosa

    from w2m2w.audio import _read_resampled

    stereo = np.random.default_rng(frames).uniform(-0.5, 0.5, (frames, 2)).astype(np.float32)
    sf.write(str(tmp_path / "x.wav"), stereo, native_sr, subtype="FLOAT")
    want = librosa.resample(stereo.mean(axis=1), orig_sr=native_sr, target_sr=16000, res_type="soxr_hq")
    got = _read_resampled(tmp_path / "x.wav", 16000, block_seconds=0.3)  # many blocks, one of them short
    assert got.dtype == np.float32 and len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(load_audio(tmp_path / "x.wav"), want, atol=1e-6)


def test_non_finite_samples_are_refused_naming_the_file(tmp_path):
    y = np.zeros((44100 * 2, 2), np.float32)
    y[60000, 1] = np.nan  # past the first block
    sf.write(str(tmp_path / "nan.wav"), y, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN"):
        load_audio(tmp_path / "nan.wav")


def test_flac_at_16k_is_read_as_is(tmp_path):
    y0 = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
    sf.write(str(tmp_path / "x.flac"), y0, 16000, subtype="PCM_24")
    np.testing.assert_allclose(load_audio(tmp_path / "x.flac"), y0, atol=1e-6)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=f"{path}.*empty"):
        load_audio(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 10)
    with pytest.raises(AudioError, match=str(path)):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.flac")


def test_max_seconds(tmp_path):
    sf.write(str(tmp_path / "long.wav"), np.zeros(16000 * 3, np.float32), 16000)
    with pytest.raises(AudioError, match="longer than"):
        load_audio(tmp_path / "long.wav", max_seconds=2)


def test_save_wav_round_trip_and_silence(tmp_path):
    y = (0.3 * np.sin(np.linspace(0, 100, 16000))).astype(np.float32)
    save_wav(tmp_path / "y.wav", y)
    np.testing.assert_allclose(load_audio(tmp_path / "y.wav"), y, atol=1 / 32767)
    assert not is_silent(y) and is_silent(np.zeros(100, np.float32)) and is_silent(y * 1e-4)


def test_mu_law_round_trip():
    q = np.arange(256)
    assert np.array_equal(mu_law_encode(mu_law_decode(q)), q)  # every class maps back to itself
    x = np.linspace(-1, 1, 20001)
    enc = mu_law_encode(x)
    assert enc.min() == 0 and enc.max() == 255 and np.all(np.diff(enc) >= 0)
    err = np.abs(mu_law_decode(enc) - x)
    assert err.max() < 0.04  # coarse steps near full scale
    small = np.abs(x) < 0.01
    assert err[small].max() < 3e-4  # fine steps near zero: the point of mu-law
    assert mu_law_encode(np.array([5.0, -5.0])).tolist() == [255, 0]  # clipped


def test_max_seconds_in_the_decoder_fallback(tmp_path, monkeypatch):
    """Formats soundfile cannot open go through librosa; the length limit must hold there too."""
    import soundfile

    sf.write(str(tmp_path / "long.wav"), np.zeros(16000 * 3, np.float32), 16000)

    def refuse(*args, **kwargs):
        raise RuntimeError("format not supported")

    monkeypatch.setattr(soundfile, "info", refuse)
    with pytest.raises(AudioError, match="longer than"):
        load_audio(tmp_path / "long.wav", max_seconds=2)
    assert len(load_audio(tmp_path / "long.wav", max_seconds=5)) == 16000 * 3


def _frames(levels_db: list[float], frame: int = 2048) -> np.ndarray:
    """Frames of constant-magnitude samples (+-a alternating): each frame's RMS is exactly a."""
    sign = np.where(np.arange(frame) % 2 == 0, 1.0, -1.0)
    return np.concatenate([sign * 10 ** (d / 20) for d in levels_db]).astype(np.float32)


def test_level_is_the_95th_percentile_frame_over_the_loud_frames():
    # 90 frames at -30 dB and 10 at -10 dB: the 95th percentile (numpy's linear interpolation,
    # position 0.95 * 99 = 94.05 of the sorted frames) falls among the -10 dB ones
    assert level_db(_frames([-30.0] * 90 + [-10.0] * 10)) == pytest.approx(-10.0, abs=1e-4)
    # 99 at -30 and one at -10: position 94.05 is among the -30 dB frames
    assert level_db(_frames([-30.0] * 99 + [-10.0])) == pytest.approx(-30.0, abs=1e-4)
    # silence and frames 50 dB or more under the loudest do not count: a long quiet start changes nothing
    loud = _frames([-20.0] * 20)
    assert level_db(np.concatenate([np.zeros(200 * 2048, np.float32), _frames([-75.0] * 300), loud])) == pytest.approx(
        -20.0, abs=1e-4
    )
    # counted in blocks or at once, the same
    y = _frames(list(np.random.default_rng(0).uniform(-40, -5, 37)))
    assert level_db(y, block_frames=1) == pytest.approx(level_db(y, block_frames=4096), abs=1e-9)


def test_level_gain_brings_a_recording_to_the_target():
    y = _frames([-30.0] * 8) * np.float32(1.0)
    g = level_gain(y, -15.0)
    assert g == pytest.approx(10 ** (15 / 20), rel=1e-4)
    assert level_db(y * g) == pytest.approx(-15.0, abs=1e-4)
    assert level_gain(y, None) == 1.0
    assert level_gain(np.zeros(10000, np.float32), -15.0) == 1.0  # silence: nothing to bring up
    assert level_db(np.zeros(100, np.float32)) is None
    assert level_db(np.full(100, 0.5, np.float32)) == pytest.approx(
        20 * np.log10(0.5) - 10 * np.log10(2048 / 100), abs=1e-4
    )  # shorter than a frame: zero-padded to one


def test_level_gate_keeps_frames_just_inside_50_db_of_the_loudest_and_drops_those_just_outside():
    # percentile 0 is the quietest frame kept: -59.99 dB is within 50 dB of the -10 dB frames, -60.01 dB is not
    assert level_db(_frames([-10.0] * 4 + [-59.99] * 4), percentile=0.0) == pytest.approx(-59.99, abs=1e-4)
    assert level_db(_frames([-10.0] * 4 + [-60.01] * 4), percentile=0.0) == pytest.approx(-10.0, abs=1e-4)
    # the range is an argument: at 40 dB the -49.99 dB frames count, the -50.01 dB ones do not
    assert level_db(_frames([-10.0] * 4 + [-49.99] * 4), percentile=0.0, range_db=40.0) == pytest.approx(
        -49.99, abs=1e-4
    )
    assert level_db(_frames([-10.0] * 4 + [-50.01] * 4), percentile=0.0, range_db=40.0) == pytest.approx(
        -10.0, abs=1e-4
    )
    # the default percentile is the 95th: of 20 kept frames at -40 dB .. -21 dB (one dB apart), numpy's linear
    # interpolation at position 0.95 * 19 = 18.05 gives -22 + 0.05 (in power), by hand in dB below
    levels = [-40.0 + i for i in range(20)]
    p = 10 ** (-22 / 10) + 0.05 * (10 ** (-21 / 10) - 10 ** (-22 / 10))
    assert level_db(_frames(levels)) == pytest.approx(10 * np.log10(p), abs=1e-6)


def test_level_frames_are_whole_frames_only():
    # exactly one frame: no padding; a frame and a bit: the bit is left out, however loud
    one = _frames([-20.0])
    assert level_db(one) == pytest.approx(-20.0, abs=1e-6)
    assert level_db(np.concatenate([one, np.full(2047, 0.9, np.float32)])) == pytest.approx(-20.0, abs=1e-6)
    assert level_db(_frames([-20.0, -30.0], frame=100), frame=100, percentile=0.0) == pytest.approx(-30.0, abs=1e-6)


def test_is_silent_at_its_threshold():
    a = 10 ** (-60 / 20)
    assert is_silent(np.array([a], np.float64)) and not is_silent(np.array([a * 1.001]))
    assert is_silent(np.array([-a * 0.999])) and not is_silent(np.array([-a * 1.001])), "the peak is of the magnitude"
    assert (
        is_silent(np.zeros(0))
        and is_silent(np.array([0.09]), threshold_db=-20.0)
        and not is_silent(np.array([0.11]), threshold_db=-20.0)
    )


def test_level_gate_at_exactly_the_range_keeps_the_frame():
    # frames of +-10 (mean square 100) and +-1 (mean square 1): 20 dB apart, so with range_db=20 the quiet frames sit
    # exactly on the gate (100 x 10^-2 = 1.0 in floating point too) and are kept; percentile 0 then reads 0 dB
    sign = np.where(np.arange(2048) % 2 == 0, 1.0, -1.0)
    y = np.concatenate([10 * sign, sign]).astype(np.float32)
    assert level_db(y, percentile=0.0, range_db=20.0) == 0.0
    assert level_db(y, percentile=0.0, range_db=19.99) == 20.0


def test_level_of_a_signal_one_sample_short_of_a_frame():
    # 2047 samples, the last one 1.0: padded at the end to one frame, mean square 1/2048
    y = np.zeros(2047, np.float32)
    y[-1] = 1.0
    assert level_db(y) == pytest.approx(10 * np.log10(1 / 2048), abs=1e-9)


def test_mu_law_decode_by_hand():
    # x = sign(y) ((1 + mu)^|y| - 1) / mu with y = 2 q / mu - 1: the end classes are -1 and 1, the middle near 0
    out = mu_law_decode(np.array([0, 255, 191]))
    assert out.dtype == np.float32
    y = 2 * 191 / 255 - 1
    np.testing.assert_allclose(out, [-1.0, 1.0, (256**y - 1) / 255], rtol=1e-6)
    np.testing.assert_allclose(
        mu_law_decode(np.array([0, 15, 8]), mu=15), [-1.0, 1.0, (16 ** (1 / 15) - 1) / 15], rtol=1e-6
    )


def test_save_wav_writes_16_bit_wav_under_any_name_and_clips(tmp_path):
    import soundfile as sf

    path = tmp_path / "piece.wav.tmp-1234"  # a temporary name, as atomic writes use: still a WAV file
    save_wav(path, np.array([0.5, 1.5, -1.5, -0.25], np.float32))
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
    y, _ = sf.read(str(path), dtype="int16")
    assert y.tolist() == [16384, 32767, -32768, -8192]  # by hand: x * 32768, clipped to the 16-bit range


def test_decoder_failure_reasons_by_hand():
    from w2m2w.audio import _first_line, _reason

    assert _first_line("\n  Error : flac decoder lost sync.\nmore") == "flac decoder lost sync"
    assert _first_line("Error: bad header...") == "bad header"
    assert (
        _first_line("Note: Illegal Audio-MPEG-Header 0x00000000 at offset 0.")
        == "Illegal Audio-MPEG-Header 0x00000000 at offset 0"
    )
    assert _first_line(".hidden.") == ".hidden" and _first_line("") == "" and _first_line("\n \n") == ""
    assert _first_line("Note: Error : x") == "Error : x", "the prefixes come off in order: the Error ones, then Note"
    assert _first_line("Error : no codec XX.") == "no codec XX", "only the full stops come off the end"

    class WithString(Exception):
        error_string = "Error : unsupported encoding 0x1234."

    assert _reason(WithString("generic")) == "unsupported encoding 0x1234"
    assert _reason(RuntimeError("first line\nsecond")) == "first line"
    missing = RuntimeError("File does not exist or is not a regular file (possibly a pipe?)")
    assert _reason(missing, "Note: Illegal Audio-MPEG-Header at offset 0.\n") == "Illegal Audio-MPEG-Header at offset 0"
    assert _reason(missing) == "File does not exist or is not a regular file (possibly a pipe?)"
    assert _reason(RuntimeError("other"), "Note: chatter") == "other", (
        "chatter only replaces libsndfile's 'does not exist'"
    )
    assert _reason(EOFError()) == "truncated or corrupt data" and _reason(KeyError()) == "KeyError"


def _refuse_soundfile_info(monkeypatch):
    """Send load_audio down its librosa/audioread fallback, as for a format libsndfile does not know."""
    import soundfile

    def refuse(*args, **kwargs):
        raise RuntimeError("format not supported")

    monkeypatch.setattr(soundfile, "info", refuse)


def test_refusals_word_for_word(tmp_path):
    """Each refusal names the file and its reason, one line; the words are written here by hand."""

    def message(path, **kwargs):
        with pytest.raises(AudioError) as e:
            load_audio(path, **kwargs)
        return str(e.value)

    assert message(tmp_path / "nope.flac") == f"{tmp_path / 'nope.flac'}: no such file"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert message(tmp_path / "empty.wav") == f"{tmp_path / 'empty.wav'}: file is empty (0 bytes)"
    sf.write(str(tmp_path / "none.wav"), np.zeros(0, np.float32), 16000)  # a 44-byte header and no frames
    assert message(tmp_path / "none.wav") == f"{tmp_path / 'none.wav'}: contains no samples"
    y = np.zeros(44100, np.float32)
    y[100] = np.inf
    sf.write(str(tmp_path / "inf.wav"), y, 44100, subtype="FLOAT")
    assert message(tmp_path / "inf.wav") == f"{tmp_path / 'inf.wav'}: contains NaN or infinite samples"
    sf.write(str(tmp_path / "long.wav"), np.zeros(16000 * 3, np.float32), 16000)
    assert (
        message(tmp_path / "long.wav", max_seconds=2) == f"{tmp_path / 'long.wav'}: 3 s is longer than the limit of 2 s"
    )
    # text: libsndfile's own reason ("Format not recognised"), not audioread's "no backend"
    (tmp_path / "notes.wav").write_text("this is not audio\n" * 10)
    assert message(tmp_path / "notes.wav") == f"{tmp_path / 'notes.wav'}: not readable as audio (Format not recognised)"


def test_fallback_refusals_word_for_word(tmp_path, monkeypatch):
    _refuse_soundfile_info(monkeypatch)
    sf.write(str(tmp_path / "long.wav"), np.zeros(16000 * 3, np.float32), 16000)
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "long.wav", max_seconds=2)
    assert str(e.value) == f"{tmp_path / 'long.wav'}: longer than the limit of 2 s"
    sf.write(str(tmp_path / "none.wav"), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "none.wav")
    assert str(e.value) == f"{tmp_path / 'none.wav'}: contains no samples"


@pytest.mark.parametrize("fallback", [False, True])
def test_a_file_exactly_at_the_limit_is_read(tmp_path, monkeypatch, fallback):
    """max_seconds is the longest accepted: a file of exactly that length loads whole (either path)."""
    if fallback:
        _refuse_soundfile_info(monkeypatch)
    y0 = np.random.default_rng(1).uniform(-0.5, 0.5, 16000 * 2).astype(np.float32)
    sf.write(str(tmp_path / "two.wav"), y0, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "two.wav", max_seconds=2), y0)


def test_fallback_resamples_and_mixes_like_librosa(tmp_path, monkeypatch):
    """The fallback's samples: librosa's own mono mix and soxr_hq resampling of the file, float32 and contiguous."""
    import librosa

    stereo = np.random.default_rng(2).uniform(-0.5, 0.5, (44100, 2)).astype(np.float32)
    sf.write(str(tmp_path / "x.wav"), stereo, 44100, subtype="FLOAT")
    want = librosa.resample(stereo.mean(axis=1), orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    _refuse_soundfile_info(monkeypatch)
    got = load_audio(tmp_path / "x.wav")
    assert got.dtype == np.float32 and got.flags.c_contiguous and len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # at the file's own rate: the mono mix itself, not a trip through librosa's default 22050 Hz
    np.testing.assert_allclose(load_audio(tmp_path / "x.wav", sr=44100), stereo.mean(axis=1), atol=1e-7)


def test_decoder_stderr_catches_fd_2_and_gives_it_back(capfd):
    """What a C decoder writes to fd 2 inside the block is caught; fd 2 is the console again after it."""
    import os

    from w2m2w.audio import _decoder_stderr

    with _decoder_stderr() as got:
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 0.\n")
        assert got == []  # filled once the block ends
    os.write(2, b"after\n")
    assert got == ["Note: Illegal Audio-MPEG-Header 0x00000000 at offset 0.\n"]
    assert capfd.readouterr().err == "after\n"


def test_reading_past_a_header_that_undercounts_its_frames(tmp_path, monkeypatch):
    """Some formats' frame count is an estimate: samples past it are kept, the same as a true count gives."""
    import librosa
    import soundfile

    stereo = np.random.default_rng(3).uniform(-0.5, 0.5, (44100, 2)).astype(np.float32)
    sf.write(str(tmp_path / "x.wav"), stereo, 44100, subtype="FLOAT")
    want = librosa.resample(stereo.mean(axis=1), orig_sr=44100, target_sr=16000, res_type="soxr_hq")

    class Undercounting(soundfile.SoundFile):
        """The frame count read up front says 0 (a header that says nothing); reading then goes on to the end."""

        asked = 0

        @property
        def frames(self):
            Undercounting.asked += 1
            return 0 if Undercounting.asked == 1 else super().frames

    monkeypatch.setattr(soundfile, "SoundFile", Undercounting)
    from w2m2w.audio import _read_resampled

    got = _read_resampled(tmp_path / "x.wav", 16000, block_seconds=0.3)
    assert Undercounting.asked >= 1 and got.dtype == np.float32 and len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-6)
    Undercounting.asked = 0
    np.testing.assert_allclose(_read_resampled(tmp_path / "x.wav", 44100), stereo.mean(axis=1), atol=1e-7)


def test_a_file_of_a_few_samples_is_read_whole(tmp_path):
    """Shorter than the read buffer's 16 samples of slack: still read, sample for sample (at 16 kHz, as is)."""
    y0 = np.array([0.1, -0.2, 0.3, -0.4, 0.5], np.float32)
    sf.write(str(tmp_path / "five.wav"), y0, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "five.wav"), y0)


def test_stream_resampler_in_chunks_is_the_one_shot_resampling():
    """Chunk by chunk, then a flush: soxr's HQ resampling of the whole (librosa's soxr_hq); equal rates pass as is."""
    import librosa

    from w2m2w.audio import StreamResampler

    y = np.random.default_rng(4).uniform(-0.5, 0.5, 44100).astype(np.float32)
    want = librosa.resample(y, orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    r = StreamResampler(44100, 16000)
    got = np.concatenate([r(y[i : i + 7000]) for i in range(0, len(y), 7000)] + [r(np.zeros(0), last=True)])
    assert not r.same and got.dtype == np.float32 and len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-6)
    same = StreamResampler(16000, 16000.0)
    assert same.same
    np.testing.assert_array_equal(same(np.array([0.25, -0.5], np.float64)), np.array([0.25, -0.5], np.float32))
    assert same(np.array([0.25], np.float64)).dtype == np.float32


def test_reasons_of_the_two_decoders_word_for_word(tmp_path, monkeypatch):
    """libsndfile's reason for a file it knows but cannot read; the fallback's own reason when it fails otherwise;
    and the decoder's note on fd 2 when libsndfile only says the file does not exist (its mp3 decoder giving up)."""
    import os

    import librosa
    import soundfile

    y = np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32)
    sf.write(str(tmp_path / "t.flac"), y, 16000)
    b = (tmp_path / "t.flac").read_bytes()
    (tmp_path / "t.flac").write_bytes(b[: len(b) // 2] + b"\x00" * 1000 + b[len(b) // 2 + 1000 :])  # a hole
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "t.flac")
    assert str(e.value) == f"{tmp_path / 't.flac'}: not readable as audio (flac decoder lost sync)"

    (tmp_path / "notes.mp3").write_text("this is not audio\n" * 10)

    def mp3_gives_up(*args, **kwargs):
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 0.\n")
        raise RuntimeError("File does not exist or is not a regular file (possibly a pipe?)")

    monkeypatch.setattr(soundfile, "info", mp3_gives_up)
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "notes.mp3")
    assert str(e.value) == (
        f"{tmp_path / 'notes.mp3'}: not readable as audio (Illegal Audio-MPEG-Header 0x00000000 at offset 0)"
    )

    def bad_frame(*args, **kwargs):
        raise ValueError("bad frame at 12 s")

    monkeypatch.setattr(librosa, "load", bad_frame)
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "notes.mp3")
    assert str(e.value) == f"{tmp_path / 'notes.mp3'}: not readable as audio (bad frame at 12 s)"


def test_dc_block_step_response_by_hand():
    # out[n] = x[n] - x[n-1] + r out[n-1]: a step of 1 from rest gives r**n, r = exp(-2 pi hz / sr)
    from w2m2w.audio import dc_block

    r = np.exp(-2 * np.pi * 5.0 / 16000)
    out, state = dc_block(np.ones(2000), np.ones(2000, bool), 5.0, 16000)
    np.testing.assert_allclose(out, r ** np.arange(2000), rtol=1e-6)
    assert out.dtype == np.float32 and state.shape == (1,)
    # 0.1 s at 5 Hz: an offset falls to exp(-pi) of itself, 27 dB
    assert 20 * np.log10(out[1600]) == pytest.approx(-27.3, abs=0.05)


def test_dc_block_chunks_join_as_one_pass_and_closed_samples_are_exactly_zero():
    from w2m2w.audio import dc_block

    rng = np.random.default_rng(0)
    y = rng.normal(size=5000) + 0.3
    open_ = np.ones(5000, bool)
    open_[1200:1900] = False
    whole, _ = dc_block(y, open_, 10.0)
    parts, state = [], None
    for a, b in ((0, 7), (7, 1500), (1500, 1501), (1501, 5000)):
        part, state = dc_block(y[a:b], open_[a:b], 10.0, state=state)
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6, atol=1e-7)
    assert not whole[1200:1900].any() and whole[1199] != 0 and whole[1900] != 0
    # a fresh start (state None) is not the carried state: the first chunk's history matters
    cold, _ = dc_block(y[2500:], open_[2500:], 10.0)
    assert not np.allclose(cold[:10], whole[2500:2510], rtol=1e-3, atol=1e-3)


def test_dc_block_passes_a0_nearly_whole():
    # |H(w)| = |1 - e^-jw| / |1 - r e^-jw| by hand at A0 (27.5 Hz), 5 Hz corner: -0.14 dB; steady state measured
    from w2m2w.audio import dc_block

    sr, f, hz = 16000, 27.5, 5.0
    r, w = np.exp(-2 * np.pi * hz / sr), 2 * np.pi * f / sr
    gain = abs(1 - np.exp(-1j * w)) / abs(1 - r * np.exp(-1j * w))
    assert 20 * np.log10(gain) == pytest.approx(-0.14, abs=0.01)
    t = np.arange(4 * sr) / sr
    out, _ = dc_block(np.sin(2 * np.pi * f * t), np.ones(len(t), bool), hz, sr)
    tail = out[2 * sr :]  # after 2 s the start's transient is gone (r**32000 ~ 1e-27)
    assert np.sqrt(2 * np.mean(tail.astype(np.float64) ** 2)) == pytest.approx(gain, rel=2e-3)
