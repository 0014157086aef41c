"""Notes <-> MIDI files, the sustain pedal, and piano rolls <-> decoded notes."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from w2m2w.decoding import decode_notes
from w2m2w.midi import (
    MidiError,
    apply_sustain,
    load_midi_notes,
    load_notes,
    load_tsv_notes,
    notes_to_rolls,
    sort_notes,
    write_midi,
)

FR = 16000 / 512  # the transcriber's frame rate


def test_midi_round_trip(tmp_path):
    notes = np.array([[0.0, 0.5, 60, 80], [0.25, 1.75, 64, 1], [0.25, 0.3, 108, 127], [1.0, 2.0, 21, 64]], dtype=float)
    path = tmp_path / "x.mid"
    write_midi(path, notes)
    back = load_midi_notes(path)
    expected = sort_notes(notes)
    assert back.shape == expected.shape
    np.testing.assert_allclose(back[:, :2], expected[:, :2], atol=3e-3)  # tick quantisation
    np.testing.assert_array_equal(back[:, 2:], expected[:, 2:])


def test_tsv_and_midi_load_the_same_notes(tmp_path):
    notes = np.array([[0.1, 0.6, 62, 70], [0.4, 0.9, 66, 50]])
    np.savetxt(tmp_path / "x.tsv", notes, fmt="%.6f", delimiter="\t", header="onset,offset,note,velocity")
    write_midi(tmp_path / "x.mid", notes)
    np.testing.assert_allclose(load_tsv_notes(tmp_path / "x.tsv"), notes, atol=1e-6)
    np.testing.assert_allclose(load_notes(tmp_path / "x.mid"), load_notes(tmp_path / "x.tsv"), atol=3e-3)


def test_bad_midi_names_the_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_text("not a midi file")
    with pytest.raises(MidiError, match=str(bad)):
        load_midi_notes(bad)
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    with pytest.raises(MidiError, match="empty"):
        load_midi_notes(empty)


def test_pedal_in_midi_file_lengthens_notes(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.5))
    inst.control_changes += [pretty_midi.ControlChange(64, 127, 0.2), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "p.mid"))
    assert load_midi_notes(tmp_path / "p.mid")[0, 1] == pytest.approx(2.0, abs=3e-3)
    assert load_midi_notes(tmp_path / "p.mid", apply_pedal=False)[0, 1] == pytest.approx(0.5, abs=3e-3)


class TestSustain:
    def test_pedal_extends_notes_released_while_down(self):
        notes = np.array([[0.0, 1.0, 60, 80], [0.0, 0.1, 64, 80], [1.5, 2.5, 67, 80]])
        out = apply_sustain(notes, [(0.5, 127), (2.0, 0)])
        # released at 1.0 with the pedal down: held to 2.0; released before the pedal: as is;
        # released at 2.5 after the pedal came up: as is
        by_pitch = {int(p): off for _, off, p, _ in out}
        assert by_pitch == {60: 2.0, 64: 0.1, 67: 2.5}

    def test_pedal_value_64_is_down_and_63_is_up(self):
        # MIDI's convention for a switch controller: 0..63 off, 64..127 on
        notes = np.array([[0.0, 1.0, 60, 80]])
        assert apply_sustain(notes, [(0.5, 64), (2.0, 0)])[0, 1] == 2.0
        assert apply_sustain(notes, [(0.5, 63), (2.0, 0)])[0, 1] == 1.0
        assert apply_sustain(notes, [(0.5, 127), (1.5, 63), (2.0, 0)])[0, 1] == 1.5
        held = np.array([[0.0, 1.2, 60, 80]])
        assert apply_sustain(held, [(0.5, 127), (1.0, 64), (2.0, 0)])[0, 1] == 2.0, "64 after 127: still down"

    def test_pedal_value_64_in_a_midi_file(self, tmp_path):
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(0)
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.5))
        inst.control_changes += [pretty_midi.ControlChange(64, 64, 0.2), pretty_midi.ControlChange(64, 63, 2.0)]
        pm.instruments.append(inst)
        pm.write(str(tmp_path / "p.mid"))
        assert load_midi_notes(tmp_path / "p.mid")[0, 1] == pytest.approx(2.0, abs=3e-3)

    def test_restrike_cuts_sustained_note(self):
        notes = np.array([[0.0, 0.5, 60, 80], [1.0, 1.2, 60, 90]])
        out = apply_sustain(notes, [(0.2, 100), (3.0, 0)])
        np.testing.assert_allclose(out[:, :2], [[0.0, 1.0], [1.0, 3.0]])

    def test_no_pedal_changes_nothing(self):
        notes = np.array([[0.0, 0.5, 60, 80], [0.2, 0.4, 62, 70]])
        np.testing.assert_array_equal(apply_sustain(notes, []), notes)
        np.testing.assert_array_equal(apply_sustain(notes, [(0.1, 10), (0.3, 63)]), notes)  # never past the threshold

    def test_pedal_never_lifted_holds_to_the_last_offset(self):
        notes = np.array([[0.0, 0.5, 60, 80], [0.2, 4.0, 62, 70]])
        out = apply_sustain(notes, [(0.3, 127)])
        np.testing.assert_allclose(out[:, 1], [4.0, 4.0])

    def test_repeated_pedal_presses(self):
        notes = np.array([[0.0, 0.6, 60, 80], [1.0, 1.6, 62, 80], [2.0, 2.1, 64, 80]])
        out = apply_sustain(notes, [(0.5, 127), (0.9, 0), (1.5, 127), (1.8, 0)])
        np.testing.assert_allclose(out[:, 1], [0.9, 1.8, 2.1])


def test_rolls_targets():
    notes = np.array([[0.32, 0.64, 60, 127]])  # frames 10..20 at 31.25 fps
    r = notes_to_rolls(notes, 40, FR)
    k = 60 - 21
    assert np.flatnonzero(r["onset"][:, k]).tolist() == [10]
    assert np.flatnonzero(r["frame"][:, k]).tolist() == list(range(10, 20))
    assert np.flatnonzero(r["offset"][:, k]).tolist() == [20]
    assert r["velocity"][10, k] == pytest.approx(1.0)
    assert r["frame"].sum() == 10  # nothing on other keys


def test_rolls_skip_notes_outside_the_piano_and_the_window():
    notes = np.array([[0.1, 0.5, 10, 80], [0.1, 0.5, 120, 80], [5.0, 6.0, 60, 80], [-1.0, 0.2, 62, 80]])
    r = notes_to_rolls(notes, 20, FR)
    assert r["onset"].sum() == 0  # out of range pitches, a note after the end, a note begun before the start
    assert r["frame"][:, 62 - 21].sum() == round(0.2 * FR)  # the early note still sounds from frame 0


def _grid_notes(spec: list[tuple[int, int, int, int]]) -> np.ndarray:
    return sort_notes(np.array([[a / FR, b / FR, p, v] for a, b, p, v in spec], dtype=float))


def test_adjacent_onsets_on_one_key_are_one_note():
    notes = _grid_notes([(0, 1, 21, 64), (1, 2, 21, 64)])
    r = notes_to_rolls(notes, 3, FR)
    out = decode_notes(r["onset"], r["frame"], r["velocity"], FR)
    np.testing.assert_allclose(out, _grid_notes([(0, 2, 21, 64)]), atol=1e-9)


def test_rolls_decode_round_trip_by_hand():
    notes = _grid_notes([(3, 10, 60, 80), (10, 14, 60, 40), (5, 30, 21, 1), (0, 2, 108, 127)])
    r = notes_to_rolls(notes, 40, FR)
    out = decode_notes(r["onset"], r["frame"], r["velocity"], FR)
    np.testing.assert_allclose(out, notes, atol=1e-9)


@st.composite
def grid_notes(draw) -> tuple[np.ndarray, int]:
    """Notes on the frame grid, non-overlapping on each key (they may touch).

    Onsets on one key are at least two frames apart: onsets in adjacent frames
    are one onset run, hence one note, by design of the decoder.
    """
    spec = []
    for pitch in draw(st.lists(st.integers(21, 108), min_size=1, max_size=6, unique=True)):
        t = draw(st.integers(0, 5))
        for _ in range(draw(st.integers(1, 4))):
            length = draw(st.integers(1, 12))
            spec.append((t, t + length, pitch, draw(st.integers(1, 127))))
            t += length + draw(st.integers(1 if length == 1 else 0, 4))
    n_frames = max(b for _, b, _, _ in spec) + draw(st.integers(1, 5))
    return _grid_notes(spec), n_frames


@settings(max_examples=60, deadline=None)
@given(grid_notes())
def test_rolls_decode_round_trip_property(case):
    notes, n_frames = case
    r = notes_to_rolls(notes, n_frames, FR)
    out = decode_notes(r["onset"], r["frame"], r["velocity"], FR)
    assert out.shape == notes.shape
    np.testing.assert_allclose(out, notes, atol=1e-9)


class TestPedalWritten:
    """write_midi(..., pedal=) writes CC64; pedal.load_pedal, pretty_midi and load_notes read it back."""

    # pretty_midi files are written at 120 bpm and 220 ticks per beat: 440 ticks per second,
    # so a time comes back within half a tick (1.14 ms)
    TICK = 1 / 440

    def test_intervals_come_back(self, tmp_path):
        from w2m2w.pedal import load_pedal

        notes = np.array([[0.0, 3.0, 60, 80]])
        pedal = np.array([[0.1, 0.75], [1.0, 1.3333], [2.5, 4.0]])  # the last one outlasts every note
        write_midi(tmp_path / "p.mid", notes, pedal=pedal)
        np.testing.assert_allclose(load_pedal(tmp_path / "p.mid"), pedal, atol=self.TICK / 2 + 1e-9)
        # what any MIDI reader sees: on the piano track, 127 at each down and 0 at each up, in order
        pm = pretty_midi.PrettyMIDI(str(tmp_path / "p.mid"))
        assert len(pm.instruments) == 1
        cc = [(c.number, c.value, c.time) for c in pm.instruments[0].control_changes]
        assert [(n, v) for n, v, _ in cc] == [(64, 127), (64, 0)] * 3
        np.testing.assert_allclose([t for _, _, t in cc], pedal.reshape(-1), atol=self.TICK / 2 + 1e-9)

    def test_no_pedal_writes_no_controller(self, tmp_path):
        from w2m2w.pedal import load_pedal

        write_midi(tmp_path / "n.mid", np.array([[0.0, 1.0, 60, 80]]))
        assert pretty_midi.PrettyMIDI(str(tmp_path / "n.mid")).instruments[0].control_changes == []
        assert load_pedal(tmp_path / "n.mid").shape == (0, 2)
        write_midi(
            tmp_path / "e.mid", np.array([[0.0, 1.0, 60, 80]]), pedal=np.zeros((0, 2))
        )  # a pedal never pressed: the same file
        assert pretty_midi.PrettyMIDI(str(tmp_path / "e.mid")).instruments[0].control_changes == []

    def test_touching_and_overlapping_presses_are_written_as_one(self, tmp_path):
        write_midi(
            tmp_path / "j.mid", np.array([[0.0, 3.0, 60, 80]]), pedal=np.array([[1.0, 1.5], [0.5, 1.0], [1.2, 2.0]])
        )
        cc = pretty_midi.PrettyMIDI(str(tmp_path / "j.mid")).instruments[0].control_changes
        assert [c.value for c in cc] == [127, 0]
        np.testing.assert_allclose([c.time for c in cc], [0.5, 2.0], atol=self.TICK / 2 + 1e-9)

    def test_a_press_shorter_than_a_tick_is_left_out(self, tmp_path):
        # 1.0 s and 1.001 s are both tick 440 (440.44 rounds down): 127 and 0 on one tick would read as
        # an up then a down that never comes up, a pedal held to the end
        write_midi(tmp_path / "t.mid", np.array([[0.0, 3.0, 60, 80]]), pedal=np.array([[1.0, 1.001], [2.0, 2.5]]))
        cc = pretty_midi.PrettyMIDI(str(tmp_path / "t.mid")).instruments[0].control_changes
        assert [c.value for c in cc] == [127, 0]
        assert load_midi_notes(tmp_path / "t.mid")[0, 1] == pytest.approx(3.0, abs=self.TICK)

    def test_load_notes_applies_the_written_pedal(self, tmp_path):
        notes = np.array(
            [
                [0.0, 0.5, 60, 80],  # released at 0.5 while the pedal is down (0.4..1.0): held to 1.0
                [0.1, 0.3, 72, 80],  # released before the pedal goes down: as is
                [0.2, 1.2, 64, 80],  # released after the pedal came up: as is
                [0.45, 0.6, 62, 80],  # held to 1.0 by the pedal, but the key is struck again at 0.8: ends at 0.8
                [0.8, 0.9, 62, 80],  # the restrike, released under the pedal: held to 1.0
                [1.6, 1.7, 67, 80],  # released under the second press (1.5..2.0): held to 2.0
                [
                    1.5,
                    2.0,
                    48,
                    80,
                ],  # released exactly as the pedal comes up, as a pedal-lengthened transcription is: as is
            ]
        )
        pedal = np.array([[0.4, 1.0], [1.5, 2.0]])
        write_midi(tmp_path / "s.mid", notes, pedal=pedal)
        expected = np.array(
            [
                [0.0, 1.0, 60, 80],
                [0.1, 0.3, 72, 80],
                [0.2, 1.2, 64, 80],
                [0.45, 0.8, 62, 80],
                [0.8, 1.0, 62, 80],
                [1.5, 2.0, 48, 80],
                [1.6, 2.0, 67, 80],
            ]
        )
        np.testing.assert_allclose(load_notes(tmp_path / "s.mid"), expected, atol=self.TICK / 2 + 1e-9)
        # without applying the pedal, the notes as written
        np.testing.assert_allclose(
            load_notes(tmp_path / "s.mid", apply_pedal=False), sort_notes(notes), atol=self.TICK / 2 + 1e-9
        )
