"""Tempo maps in the stages' MIDI (issue #32): which files have one, reading it back, carrying it into a
continuation's time frame, and the transcription and continuation writers keeping every note's seconds."""

import numpy as np
import pretty_midi
import pytest

from w2m2w.beats import Beats
from w2m2w.generation import Continuation
from w2m2w.midi import bar_lines, has_tempo_map, load_midi_notes
from w2m2w.tempo_map import beats_in_midi, shift_beats, with_tempo_map


def _pm(tempo: float = 120.0, signatures: list[tuple[int, int, float]] = ()) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60 + k % 12, 0.3 * k, 0.3 * k + 0.25) for k in range(40)]
    pm.instruments.append(inst)
    pm.time_signature_changes = [pretty_midi.TimeSignature(n, d, t) for n, d, t in signatures]
    return pm


@pytest.mark.parametrize(
    "tempo, signatures, expected",
    [
        (120.0, [], False),  # what most transcribers write: nothing about the music's beats
        (120.0, [(4, 4, 0.0)], False),
        (100.0, [], True),  # one tempo, not the default
        (120.0, [(3, 4, 0.0)], True),
        (120.0, [(4, 4, 0.0), (2, 4, 4.0)], True),
        (120.01, [], True),
    ],
)
def test_which_files_have_a_tempo_map(tempo, signatures, expected):
    assert has_tempo_map(_pm(tempo, signatures)) is expected


def test_two_tempos_are_a_tempo_map(tmp_path):
    pm = _pm()
    pm._tick_scales.append((pm.resolution * 4, 60.0 / (90.0 * pm.resolution)))  # 90 bpm from beat 4
    pm.write(str(tmp_path / "two.mid"))
    assert has_tempo_map(pretty_midi.PrettyMIDI(str(tmp_path / "two.mid")))


def test_a_written_map_reads_back_as_the_tracked_beats_and_bars():
    times = 0.3 + 0.6 * np.arange(12) + np.array([0, 0.02, -0.01, 0.03, 0, -0.02, 0.01, 0, 0.02, -0.03, 0, 0.01])
    beats = Beats(times, np.arange(12) % 3 == 1, 3)
    notes = np.array([[t, t + 0.2, 60, 70] for t in times])
    back = beats_in_midi(with_tempo_map(notes, beats))
    assert back is not None and back.meter == 3
    inside = back.times[(back.times > 0.25) & (back.times < times[-1] + 1e-3)]
    np.testing.assert_allclose(inside, times, atol=1e-3)  # the tracked beats, to the microsecond rounding
    # every tracked downbeat is a bar line; before the first, the 0.3 s lead-in beat and the first beat are a
    # pickup bar of 2 (its bar line at 0 s)
    np.testing.assert_allclose(
        back.times[back.is_downbeat][:5], [0.0, times[1], times[4], times[7], times[10]], atol=1e-3
    )


def test_a_file_without_a_map_reads_as_none_and_draws_no_bars(tmp_path):
    assert beats_in_midi(_pm()) is None
    _pm().write(str(tmp_path / "plain.mid"))
    assert bar_lines(tmp_path / "plain.mid") is None
    _pm(90.0, [(3, 4, 0.0)]).write(str(tmp_path / "waltz.mid"))
    np.testing.assert_allclose(bar_lines(tmp_path / "waltz.mid")[:4], [0.0, 2.0, 4.0, 6.0], atol=1e-5)  # 3 x 666666 us


def test_shifting_into_a_later_frame_keeps_period_and_bars():
    beats = Beats(0.5 * np.arange(11), np.arange(11) % 4 == 0, 4)  # 0 .. 5 s, bars at 0, 2, 4 s
    out = shift_beats(beats, offset=1.25, end=6.0)
    # beats at 1.5 s and on, 1.25 s earlier, carried on at 0.5 s until one is at or past 6 s
    np.testing.assert_allclose(out.times, 0.25 + 0.5 * np.arange(13), atol=1e-9)
    np.testing.assert_allclose(out.times[out.is_downbeat], [0.75, 2.75, 4.75], atol=1e-9)  # 2, 4, 6 s before
    assert out.meter == 4


def _continuation(start: float, primer: float, output: str, end: float) -> Continuation:
    notes = np.array([[t, t + 0.3, 64, 80] for t in np.arange(0.0, end, 0.5)])
    return Continuation(
        notes, {"primer_start_in_input_s": start, "primer_seconds": primer, "output": output, "primer_end_s": primer}
    )


def test_a_continuation_carries_the_inputs_map_on(tmp_path):
    from stages.generate import output_beats

    path = tmp_path / "waltz.mid"
    _pm(100.0, [(3, 4, 0.0)]).write(str(path))  # beats every 0.6 s, bars every 1.8 s, from 0
    notes = load_midi_notes(path)
    beats, source = output_beats(path, notes, _continuation(1.8, 3.0, "primer+continuation", 10.0), "auto")
    assert source == "input" and beats.meter == 3
    np.testing.assert_allclose(beats.times[:5], [0.0, 0.6, 1.2, 1.8, 2.4], atol=1e-6)
    np.testing.assert_allclose(beats.times[beats.is_downbeat][:4], [0.0, 1.8, 3.6, 5.4], atol=1e-6)
    assert beats.times[-1] >= 10.0  # carried on past the input's end over the whole output
    # the continuation alone starts where the primer ended in the input: 1.8 + 3.0 = 4.8 s, between bars
    beats, _ = output_beats(path, notes, _continuation(1.8, 3.0, "continuation", 10.0), "auto")
    np.testing.assert_allclose(beats.times[beats.is_downbeat][:3], [0.6, 2.4, 4.2], atol=1e-6)  # 5.4, 7.2, 9.0 s
    assert output_beats(path, notes, _continuation(1.8, 3.0, "continuation", 10.0), "off") == (None, None)


def test_a_plain_input_gets_tracked_beats_and_track_ignores_the_inputs_map(tmp_path):
    from stages.generate import output_beats

    plain, waltz = tmp_path / "plain.mid", tmp_path / "waltz.mid"
    _pm().write(str(plain))
    _pm(100.0, [(3, 4, 0.0)]).write(str(waltz))
    cont = _continuation(0.0, 5.0, "primer+continuation", 12.0)
    for path, mode in ((plain, "auto"), (waltz, "track")):
        beats, source = output_beats(path, load_midi_notes(path), cont, mode)
        assert source == "tracked" and len(beats.times) >= 2
    few = load_midi_notes(plain)[:3]  # too few notes to track: a plain file
    assert output_beats(plain, few, cont, "auto") == (None, None)


@pytest.mark.parametrize("tempo_map", [True, False])
def test_a_transcription_keeps_its_notes_and_pedal_seconds(tmp_path, tempo_map):
    from stages.transcribe import write_transcription

    rng = np.random.default_rng(3)
    on = np.cumsum(rng.uniform(0.05, 0.3, 120))  # a pitch comes back 60 notes (3 s or more) later: no overlaps
    notes = np.stack([on, on + rng.uniform(0.05, 0.8, 120), 30 + np.arange(120) % 60, rng.integers(10, 120, 120)], 1)
    pedal = np.array([[1.003, 2.5], [7.25, 9.01]])
    path = tmp_path / "t.mid"
    beats = write_transcription(path, notes, pedal, tempo_map)
    pm = pretty_midi.PrettyMIDI(str(path))
    assert has_tempo_map(pm) is tempo_map and (beats is not None) is tempo_map
    back = load_midi_notes(path, apply_pedal=False)
    order = np.lexsort((notes[:, 2], notes[:, 0]))
    tick = 60.0 / 120.0 / 220.0 if not tempo_map else 0.002  # half a tick or less at any tracked tempo
    np.testing.assert_allclose(back[:, :2], notes[order, :2], atol=tick)
    assert np.array_equal(back[:, 2:], notes[order, 2:])
    cc = [(c.time, c.value) for c in pm.instruments[0].control_changes if c.number == 64]
    np.testing.assert_allclose([t for t, _ in cc], pedal.ravel(), atol=tick)
    assert [v for _, v in cc] == [127, 0, 127, 0]


def test_the_piano_roll_draws_the_bar_lines_inside_it():
    import re

    from w2m2w.run.report import piano_roll_svg

    notes = np.array([[0.0, 1.0, 60, 90], [4.0, 5.0, 64, 90]])  # 5 s: the roll spans 0 .. 5.05 s
    svg = piano_roll_svg(notes, width=541, bars=np.array([-1.0, 0.0, 2.5, 5.0, 6.0]))
    xs = [float(x) for x in re.findall(r'<line class="bar" x1="([\d.]+)"', svg)]
    # left margin 36, right 8: 497 px for 5.05 s; bars outside the roll are left out
    np.testing.assert_allclose(xs, [36 + t * 497 / 5.05 for t in (0.0, 2.5, 5.0)], atol=0.06)
    assert 'class="bar"' not in piano_roll_svg(notes)


def test_a_map_without_time_signatures_reads_as_4_4_and_two_beats_are_enough():
    pm = pretty_midi.PrettyMIDI(initial_tempo=100.0)  # a tempo of its own, no time signature at all
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60, 0.0, 0.7)]  # up to 0.7 s: beats at 0 and 0.6 s only
    pm.instruments.append(inst)
    beats = beats_in_midi(pm)
    assert beats is not None and beats.meter == 4
    np.testing.assert_allclose(beats.times, [0.0, 0.6], atol=1e-6)
    inst.notes = [pretty_midi.Note(80, 60, 0.0, 0.3)]  # a single beat (0 s) says no tempo
    assert beats_in_midi(pm) is None


def test_a_beat_exactly_at_the_new_start_is_kept_as_its_first():
    beats = Beats(0.5 * np.arange(11), np.arange(11) % 4 == 0, 4)
    out = shift_beats(beats, offset=1.0, end=2.0)  # the beat at 1.0 s is the frame's 0 s
    np.testing.assert_allclose(out.times[:5], [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-9)
    np.testing.assert_array_equal(out.is_downbeat[:5], [False, False, True, False, False])  # 2 s was a bar line
