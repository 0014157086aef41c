"""Sustain pedal: decoding a pedal head's probabilities (hand-made arrays), and the transcriber's pedal output."""

from __future__ import annotations

import warnings
from dataclasses import asdict

import numpy as np
import pytest

from w2m2w.midi import merge_intervals
from w2m2w.pedal import decode_pedal, load_pedal, pedal_from_pretty_midi, pedal_rolls, save_pedal_tsv

FR = 10.0  # frames per second: frame t starts at t / 10 s, so every expected time below is read off the arrays


def arrays(T: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero onset, offset and frame probabilities, each (T,)."""
    return np.zeros(T), np.zeros(T), np.zeros(T)


def test_a_run_of_frames_is_one_press():
    on, off, fr = arrays()
    fr[2:7] = 0.8  # down on frames 2..6: pressed at 0.2 s, up at frame 7 = 0.7 s
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.2, 0.7]])


def test_an_onset_starts_the_press_before_the_frames_rise():
    on, off, fr = arrays()
    on[2] = 0.9
    fr[3:8] = 0.9  # the frame head lags a frame behind the onset; up at frame 8
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.2, 0.8]])


def test_an_onset_run_alone_lasts_its_run():
    # as a note's onset run counts as sounding in decode_notes
    on, off, fr = arrays()
    on[3:5] = 0.7
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.3, 0.5]])


def test_an_offset_ends_the_press_before_the_frames_fall_and_lagging_frames_do_not_restart_it():
    on, off, fr = arrays()
    fr[2:10] = 0.9
    off[6] = 0.8  # up at 0.6 s; frames 7..9 still above the threshold start nothing: no new run begins there
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.2, 0.6]])


def test_pedal_change_offset_then_onset():
    # legato pedalling: up at frame 5, down again at frame 7, the frame head never dropping
    on, off, fr = arrays()
    fr[1:12] = 0.9
    off[5] = 0.9
    on[7] = 0.9
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.1, 0.5], [0.7, 1.2]])


def test_pedal_change_onset_without_offset():
    # a new onset run while down is a change the offset head missed: up at its frame, down one frame later
    on, off, fr = arrays()
    fr[1:10] = 0.9
    on[1] = on[5] = 0.9
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.1, 0.5], [0.6, 1.0]])


def test_offset_and_onset_on_one_frame_give_a_one_frame_gap():
    # intervals never touch: CC64 up and down at one instant would be ambiguous
    on, off, fr = arrays()
    fr[1:10] = 0.9
    off[5] = on[5] = 0.9
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.1, 0.5], [0.6, 1.0]])


def test_a_dip_in_the_frames_splits_the_press_and_gaps_are_not_merged():
    on, off, fr = arrays()
    fr[1:4] = 0.9
    fr[5:9] = 0.9  # one frame up at frame 4 (0.1 s): a real change can be this short
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.1, 0.4], [0.5, 0.9]])


def test_an_offset_while_up_does_nothing():
    on, off, fr = arrays()
    off[2] = 0.9
    fr[4:6] = 0.9
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.4, 0.6]])


def test_down_on_the_first_frame_and_still_down_on_the_last():
    on, off, fr = arrays(T=8)
    fr[0:3] = 0.9  # a recording that starts with the pedal down
    fr[5:] = 0.9  # ...and ends with it down: up at the end, 8 frames = 0.8 s
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.0, 0.3], [0.5, 0.8]])


def test_probability_exactly_at_a_threshold_does_not_count():
    on, off, fr = arrays()
    fr[2:6] = 0.5
    assert decode_pedal(on, off, fr, FR).shape == (0, 2)
    fr[2:6] = np.nextafter(0.5, 1.0)
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.2, 0.6]])
    off[4] = 0.5  # an offset at the threshold does not end it
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.2, 0.6]])


def test_thresholds_are_the_arguments():
    on, off, fr = arrays()
    fr[1:10] = 0.9
    off[5] = 0.4
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), [[0.1, 1.0]])  # an offset of 0.4 is below 0.5
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, offset_threshold=0.3), [[0.1, 0.5]])
    fr[1:10] = 0.4
    on[1] = 0.4
    assert decode_pedal(on, off, fr, FR).shape == (0, 2)
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, frame_threshold=0.3), [[0.1, 1.0]])
    np.testing.assert_allclose(
        decode_pedal(on, off, fr, FR, onset_threshold=0.3), [[0.1, 0.2]]
    )  # the one-frame onset run alone


def test_change_gap_presses_again_after_an_offset_under_high_frames():
    """A pedal change the frame head does not show: up at the offset, down again change_gap later."""
    on, off, fr = arrays(T=30)
    fr[:] = 0.9
    off[10:12] = 0.7
    np.testing.assert_allclose(
        decode_pedal(on, off, fr, FR), [[0.0, 1.0]]
    )  # no gap: the lagging frames never restart it
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, change_gap=0.3), [[0.0, 1.0], [1.3, 3.0]])
    # the frames drop during the gap: it really came up, so only the new run (frame 15) takes it down again
    fr[12:15] = 0.1
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, change_gap=0.3), [[0.0, 1.0], [1.5, 3.0]])
    fr[12:] = 0.1  # and never rises again: no second press
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, change_gap=0.3), [[0.0, 1.0]])


def test_min_duration_at_the_transcribers_frame_rate():
    fr_rate = 31.25  # 16 kHz audio, hop 512
    on, off, fr = arrays(T=40)
    fr[10] = 0.9  # one frame: 32 ms, under the default 50 ms
    fr[20:22] = 0.9  # two frames: 64 ms, kept
    np.testing.assert_allclose(decode_pedal(on, off, fr, fr_rate), [[20 / 31.25, 22 / 31.25]])
    assert len(decode_pedal(on, off, fr, fr_rate, min_duration=0.0)) == 2
    assert len(decode_pedal(on, off, fr, fr_rate, min_duration=0.07)) == 0


def test_training_rolls_decode_back_to_their_intervals():
    # what the pedal head is trained to output (pedal.pedal_rolls) decodes to the pedal it came from
    # (times on frame boundaries, gaps of at least one frame)
    pedal = np.array([[0.0, 0.4], [0.6, 1.5], [1.6, 1.7], [2.0, 3.0]])
    rolls = pedal_rolls(pedal, 30, FR)
    np.testing.assert_allclose(decode_pedal(rolls["onset"], rolls["offset"], rolls["frame"], FR), pedal)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="lengths"):
        decode_pedal(np.zeros(5), np.zeros(5), np.zeros(6), FR)


def test_pedal_tsv_round_trip(tmp_path):
    pedal = np.array([[0.25, 1.5], [2.0, 2.125]])
    save_pedal_tsv(tmp_path / "x.pedal.tsv", pedal)
    (tmp_path / "x.tsv").write_text("onset\toffset\tnote\tvelocity\n")
    np.testing.assert_allclose(load_pedal(tmp_path / "x.tsv"), pedal)
    assert load_pedal(tmp_path / "y.tsv") is None  # no .pedal.tsv: nothing known


def test_pedal_tsv_never_pressed_reads_as_empty_without_warning(tmp_path):
    save_pedal_tsv(tmp_path / "x.pedal.tsv", np.zeros((0, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "input contained no data" filled training logs
        got = load_pedal(tmp_path / "x.tsv")
    assert got is not None and got.shape == (0, 2)


def test_merge_intervals_joins_touching_and_overlapping():
    np.testing.assert_allclose(
        merge_intervals(np.array([[2.0, 3.0], [0.0, 1.0], [1.0, 1.5], [2.5, 2.7]])), [[0.0, 1.5], [2.0, 3.0]]
    )


# --- the transcriber's pedal output ---------------------------------------------------------------


class _FakeModel:
    """predict() returns fixed probabilities: the transcription code sees exactly what a model would give it."""

    frame_rate = FR

    def __init__(self, probs: dict[str, np.ndarray]) -> None:
        self.probs = probs

    def predict(
        self, audio: np.ndarray, chunk_seconds: float = 20.0, overlap_seconds: float = 2.0
    ) -> dict[str, np.ndarray]:
        return self.probs


def _note_probs(T: int = 14) -> dict[str, np.ndarray]:
    probs = {k: np.zeros((T, 88)) for k in ("onset", "offset", "frame", "velocity")}
    probs["onset"][1, 39] = probs["frame"][1:6, 39] = 0.9  # middle C from 0.1 to 0.6 s
    probs["velocity"][1, 39] = 0.5
    return probs


def test_transcribe_with_pedal_decodes_both_heads():
    from w2m2w.transcription import DecodeConfig, transcribe, transcribe_with_pedal

    probs = _note_probs()
    probs["pedal_onset"], probs["pedal_offset"], probs["pedal_frame"] = arrays()
    probs["pedal_frame"][2:9] = 0.8
    notes, pedal = transcribe_with_pedal(_FakeModel(probs), np.zeros(100))
    np.testing.assert_allclose(notes, [[0.1, 0.6, 60, 64]])  # round(0.5 * 127) = 64
    np.testing.assert_allclose(pedal, [[0.2, 0.9]])
    np.testing.assert_allclose(
        transcribe(_FakeModel(probs), np.zeros(100)), notes
    )  # transcribe() still returns the notes alone
    # the pedal thresholds of DecodeConfig reach the pedal decoder
    _, pedal = transcribe_with_pedal(_FakeModel(probs), np.zeros(100), DecodeConfig(pedal_frame_threshold=0.85))
    assert pedal.shape == (0, 2)
    _, pedal = transcribe_with_pedal(_FakeModel(probs), np.zeros(100), DecodeConfig(pedal_min_duration=0.75))
    assert pedal.shape == (0, 2)


def test_without_a_pedal_head_the_pedal_is_none():
    from w2m2w.transcription import transcribe_with_pedal

    notes, pedal = transcribe_with_pedal(_FakeModel(_note_probs()), np.zeros(100))
    assert pedal is None and len(notes) == 1


@pytest.mark.parametrize("with_pedal", [False, True])
def test_a_weights_file_says_whether_there_is_a_pedal_head(tmp_path, with_pedal):
    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig
    from w2m2w.transcription import load_transcriber, transcribe_with_pedal

    torch.manual_seed(0)
    cfg = OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=with_pedal)
    model = OnsetsFrames(cfg)
    if with_pedal:
        with torch.no_grad():  # pedal down throughout, no onset or offset: one press over the whole recording
            model.pedal_stack[-1].bias.copy_(torch.tensor([-20.0, -20.0, 20.0]))
    path = tmp_path / "of.safetensors"
    save_weights(path, "onsets_frames", model.state_dict(), asdict(cfg))
    loaded = load_transcriber(path)
    _, pedal = transcribe_with_pedal(loaded, np.zeros(16000, dtype=np.float32))
    if not with_pedal:
        assert pedal is None
    else:
        # 16000 samples at hop 512: 16000 // 512 + 1 = 32 frames of 1/31.25 s, so up at 32 / 31.25 = 1.024 s
        np.testing.assert_allclose(pedal, [[0.0, 1.024]])


def test_crop_pedal_shifts_clips_and_keeps_what_touches_the_window():
    from w2m2w.pedal import crop_pedal

    pedal = np.array([[0.0, 1.0], [1.5, 2.5], [3.0, 4.0], [5.0, 6.0]])
    # window [2, 5): [1.5, 2.5] was down at 2 -> [0, 0.5]; [3, 4] -> [1, 2]; [5, 6] starts at the window's end: out
    np.testing.assert_allclose(crop_pedal(pedal, 2.0, 3.0), [[0.0, 0.5], [1.0, 2.0]])
    # an interval that ends exactly where the window starts is out; one that starts there is in, at 0
    np.testing.assert_allclose(crop_pedal(pedal, 1.0, 1.0), [[0.5, 1.0]])
    np.testing.assert_allclose(crop_pedal(pedal, 3.0, 0.5), [[0.0, 0.5]])
    # a press longer than the window on both sides is the whole window
    np.testing.assert_allclose(crop_pedal(np.array([[0.0, 10.0]]), 4.0, 2.0), [[0.0, 2.0]])
    # a press just inside either edge
    np.testing.assert_allclose(
        crop_pedal(np.array([[0.0, 2.001], [4.999, 6.0]]), 2.0, 3.0), [[0.0, 0.001], [2.999, 3.0]], atol=1e-12
    )
    assert crop_pedal(np.zeros((0, 2)), 0.0, 1.0).shape == (0, 2)
    assert crop_pedal(pedal, 7.0, 1.0).shape == (0, 2)


def test_crop_pedal_leaves_its_input_alone():
    from w2m2w.pedal import crop_pedal

    pedal = np.array([[1.0, 3.0]])
    crop_pedal(pedal, 2.0, 0.5)
    np.testing.assert_array_equal(pedal, [[1.0, 3.0]])


def test_crop_pedal_of_whole_seconds_keeps_fractions_of_the_window():
    from w2m2w.pedal import crop_pedal

    # integer input (a list of whole seconds), a window of 2.5 s from 0: the press is clipped at 2.5, not 2
    np.testing.assert_array_equal(crop_pedal([[0, 3]], 0, 2.5), [[0.0, 2.5]])
    np.testing.assert_array_equal(crop_pedal([[1, 3]], 0.5, 1), [[0.5, 1.0]])


def test_pedal_rolls_by_hand_at_their_edges():
    # 10 frames per second, 10 frames: [0.0, 0.3] -> frames 0..2, onset 0, offset 3; [0.5, 2.0] -> frames 5..9, onset 5,
    # no offset inside; values are exactly 1, float32
    r = pedal_rolls(np.array([[0.0, 0.3], [0.5, 2.0]]), 10, 10.0)
    assert {k: v.dtype for k, v in r.items()} == {"onset": np.float32, "offset": np.float32, "frame": np.float32}
    np.testing.assert_array_equal(r["frame"], [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(r["onset"], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(r["offset"], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    # a press starting exactly at the last frame + 1 (a == n_frames) or ending exactly at 0 (b == 0) is outside;
    # one before them does not stop the ones after it
    r = pedal_rolls(np.array([[-0.5, 0.0], [1.0, 1.2], [0.2, 0.4]]), 10, 10.0)
    np.testing.assert_array_equal(r["frame"], [0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    assert not pedal_rolls(np.array([[1.0, 1.5]]), 10, 10.0)["frame"].any()
    # down before frame 0: frames from 0, no onset; down at -0.04 rounds to frame 0 but is before the window: no onset
    r = pedal_rolls(np.array([[-0.3, 0.2]]), 10, 10.0)
    np.testing.assert_array_equal(r["frame"][:3], [1, 1, 0])
    assert not r["onset"].any()
    assert not pedal_rolls(np.array([[-0.04, 0.2]]), 10, 10.0)["onset"].any()
    # an offset exactly on the last frame + 1 is outside; on the last frame it is marked
    assert not pedal_rolls(np.array([[0.5, 1.0]]), 10, 10.0)["offset"].any()
    assert pedal_rolls(np.array([[0.5, 0.9]]), 10, 10.0)["offset"][9] == 1


def test_pedal_of_pretty_midi_cc64_at_the_threshold_and_across_tracks():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.control_changes += [pretty_midi.ControlChange(64, 127, 0.1), pretty_midi.ControlChange(64, 0, 0.2)]
    left, right = pretty_midi.Instrument(0), pretty_midi.Instrument(0)
    left.notes.append(pretty_midi.Note(80, 60, 0.0, 3.0))
    # value 64 is down (the threshold itself), 63 is up
    left.control_changes += [pretty_midi.ControlChange(64, 64, 0.5), pretty_midi.ControlChange(64, 63, 1.0)]
    right.control_changes += [pretty_midi.ControlChange(64, 100, 2.0)]  # never released: lasts to the last note's end
    pm.instruments += [drums, left, right]  # the drums first: they are skipped, the piano tracks after them still read
    np.testing.assert_allclose(pedal_from_pretty_midi(pm), [[0.5, 1.0], [2.0, 3.0]])
    # no notes: a pedal still down lasts an instant
    pm.instruments = [right]
    np.testing.assert_allclose(pedal_from_pretty_midi(pm), [[2.0, 2.0]])
    pm.instruments = []
    assert pedal_from_pretty_midi(pm).shape == (0, 2)


def test_pedal_tsv_is_a_header_and_two_columns_of_six_decimals(tmp_path):
    save_pedal_tsv(tmp_path / "p.pedal.tsv", [[1, 2.5], [3.25, 4]])
    assert (tmp_path / "p.pedal.tsv").read_text() == "# down,up\n1.000000\t2.500000\n3.250000\t4.000000\n"


def test_empty_pedal():
    from w2m2w.pedal import empty_pedal

    e = empty_pedal()
    assert e.shape == (0, 2) and e.dtype == np.float64


def test_pedal_tsv_path_and_unreadable_midi():
    from w2m2w.pedal import pedal_tsv_path

    assert pedal_tsv_path("a/Take.TSV").as_posix() == "a/Take.pedal.tsv"
    assert pedal_tsv_path("a/take.tsv").as_posix() == "a/take.pedal.tsv"
    assert pedal_tsv_path("a/take.mid").as_posix() == "a/take.pedal.tsv"


def test_an_unreadable_midi_file_is_named_with_the_reason(tmp_path):
    from w2m2w.midi import MidiError

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(MidiError, match=r"bad\.mid: not a readable MIDI file \(.+\)$"):
        load_pedal(bad)


def test_decode_pedal_edges_of_its_thresholds():
    on, off, fr = arrays(10)
    fr[2:5] = 0.5  # exactly the threshold: not above it, so nothing
    assert decode_pedal(on, off, fr, FR).shape == (0, 2)
    on[2:5] = 0.5
    assert decode_pedal(on, off, fr, FR).shape == (0, 2)
    # a press of exactly min_duration is kept (0.3 s here), one frame shorter is not
    on, off, fr = arrays(10)
    fr[2:5] = 0.9
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, min_duration=0.3), [[0.2, 0.5]])
    assert decode_pedal(on, off, fr, FR, min_duration=0.31).shape == (0, 2)


def test_pedal_tsv_path_of_other_suffixes_and_a_bare_tsv():
    from w2m2w.pedal import pedal_tsv_path

    # NAME.tsv -> NAME.pedal.tsv for an empty NAME too; any other suffix, of any length, is replaced
    assert pedal_tsv_path("a/.tsv").as_posix() == "a/.pedal.tsv"
    assert pedal_tsv_path("a/take.midi").as_posix() == "a/take.pedal.tsv"


def test_a_pedal_still_down_in_a_midi_without_notes_lasts_an_instant_where_it_went_down():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.control_changes.append(pretty_midi.ControlChange(64, 127, 0.5))
    pm.instruments.append(piano)
    np.testing.assert_allclose(pedal_from_pretty_midi(pm), [[0.5, 0.5]])


def test_a_pedal_tsv_reads_its_first_two_columns(tmp_path):
    # the note file itself is not read: the pedal sits beside it
    (tmp_path / "x.pedal.tsv").write_text("down\tup\tvalue\n1.0\t2.0\t127\n3.0\t3.5\t100\n")
    np.testing.assert_allclose(load_pedal(tmp_path / "x.tsv"), [[1.0, 2.0], [3.0, 3.5]])


def test_an_unreadable_midi_file_gives_the_readers_first_line_or_its_exception_type(tmp_path, monkeypatch):
    import pretty_midi

    from w2m2w.midi import MidiError

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    first = ""
    try:  # the reader's own words, from the reader itself
        pretty_midi.PrettyMIDI(str(bad))
    except Exception as exc:
        first = str(exc).splitlines()[0]
    assert first
    with pytest.raises(MidiError) as err:
        load_pedal(bad)
    assert str(err.value) == f"{bad}: not a readable MIDI file ({first})"

    def silent(path):
        raise EOFError()

    monkeypatch.setattr(pretty_midi, "PrettyMIDI", silent)  # an exception without words: its type names it
    with pytest.raises(MidiError) as err:
        load_pedal(bad)
    assert str(err.value) == f"{bad}: not a readable MIDI file (EOFError)"


def test_pedal_rolls_of_presses_a_frame_long_or_less():
    # 10 frames per second: a press shorter than a frame still holds one frame, its offset on the next
    r = pedal_rolls(np.array([[0.5, 0.52]]), 10, 10.0)
    np.testing.assert_array_equal(r["frame"], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(r["onset"], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(r["offset"], [0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    # down before the window, up on frame 1: frame 0 held, no onset, the offset on frame 1
    r = pedal_rolls(np.array([[-0.5, 0.1]]), 10, 10.0)
    np.testing.assert_array_equal(r["frame"], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert not r["onset"].any()
    np.testing.assert_array_equal(r["offset"], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    # up exactly at the window's start is outside it (crop_pedal drops such a press too): no offset on frame 0
    r = pedal_rolls(np.array([[-0.5, 0.0]]), 10, 10.0)
    assert not r["frame"].any() and not r["onset"].any() and not r["offset"].any()


def test_a_change_gap_of_one_frame_presses_again_on_the_next_frame():
    # frames high throughout, an offset run at frame 10: up at 1.0 s, down again one frame (0.1 s) later
    on, off, fr = arrays(T=30)
    fr[:] = 0.9
    off[10:12] = 0.7
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR, change_gap=0.1), [[0.0, 1.0], [1.1, 3.0]])


def test_decode_pedal_reads_column_heads_as_the_same_frames():
    # a head's (frames, 1) output decodes as its (frames,) values: frames 1..3 down -> 0.1 s to 0.4 s
    on, off, fr = arrays()
    fr[1:4] = 0.9
    want = [[0.1, 0.4]]
    np.testing.assert_allclose(decode_pedal(on, off, fr, FR), want)
    np.testing.assert_allclose(decode_pedal(on[:, None], off[:, None], fr[:, None], FR), want)
