"""w2m2w.score, tempo_map and musicxml: quantization, tempo maps that keep seconds, MusicXML round trips."""

import re
from fractions import Fraction

import numpy as np
import pytest

from w2m2w.beats import Beats
from w2m2w.score import estimate_key, key_sharps, quantize, spell_pitch, split_hands
from w2m2w.tempo_map import RESOLUTION, with_tempo_map


def rubato_beats(n: int = 40, meter: int = 3, seed: int = 0) -> Beats:
    """Beats (n,) from 0.7 s with intervals drifting between 0.4 and 0.7 s; downbeat on beat 1 of each bar."""
    rng = np.random.default_rng(seed)
    times = 0.7 + np.concatenate([[0.0], np.cumsum(rng.uniform(0.4, 0.7, n - 1))])
    return Beats(times, np.arange(n) % meter == 1, meter)


def random_notes(beats: Beats, n: int = 200, seed: int = 1) -> np.ndarray:
    """Notes (n, 4) anywhere over the beats (and before them), no two of one pitch overlapping."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(40, 90, 5):
        t = rng.uniform(0.0, 0.3)
        while t < beats.times[-1] + 2.0 and len(out) < n:
            d = rng.uniform(0.05, 1.5)
            out.append((t, t + d, p, rng.integers(20, 120)))
            t += d + rng.uniform(0.0, 1.0)
    return np.array(sorted(out), dtype=np.float64)


def sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort((a[:, 2], a[:, 0]))]


def test_tempo_map_keeps_note_seconds_to_the_tick():
    beats = rubato_beats()
    notes = random_notes(beats)
    pm = with_tempo_map(notes, beats, pedal=np.array([[1.0, 2.0], [3.0, 4.5]]))
    got = sorted_rows(np.array([(n.start, n.end, n.pitch, n.velocity) for n in pm.instruments[0].notes]))
    want = sorted_rows(notes)
    assert got.shape == want.shape
    half_tick = 0.7 / RESOLUTION / 2  # the slowest beat's half tick
    assert np.abs(got[:, :2] - want[:, :2]).max() <= half_tick + 1e-9
    np.testing.assert_array_equal(got[:, 2:], np.round(want[:, 2:]))
    cc = [(c.time, c.value) for c in pm.instruments[0].control_changes if c.number == 64]
    np.testing.assert_allclose([t for t, _ in cc], [1.0, 2.0, 3.0, 4.5], atol=half_tick + 1e-9)


def test_tempo_map_puts_beats_and_bar_lines_on_the_tracked_ones():
    beats = rubato_beats()
    pm = with_tempo_map(random_notes(beats), beats)
    tracked_beats = pm.get_beats()
    for t in beats.times:
        assert np.min(np.abs(tracked_beats - t)) < 1e-5
    downbeats = pm.get_downbeats()
    for t in beats.downbeats:
        assert np.min(np.abs(downbeats - t)) < 1e-5
    ts = pm.time_signature_changes
    assert ts[-1].numerator == 3 and ts[-1].denominator == 4
    assert ts[-1].time == pytest.approx(beats.downbeats[0], abs=1e-5)  # a pickup bar before the first downbeat


def test_quantize_chooses_sixteenths_and_triplets_per_beat():
    times = np.arange(0.5, 10.0, 0.5)
    beats = Beats(times, np.arange(len(times)) % 4 == 0, 4)
    rng = np.random.default_rng(3)
    onsets = [times[2] + i * 0.125 for i in range(4)] + [times[3] + i * 0.5 / 3 for i in range(3)]
    notes = np.array([(t + rng.normal(0, 0.01), t + 0.1, 60 + i, 80) for i, t in enumerate(onsets)])
    q = quantize(notes, beats)
    assert q.onsets == [
        Fraction(2),
        Fraction(9, 4),
        Fraction(5, 2),
        Fraction(11, 4),
        Fraction(3),
        Fraction(10, 3),
        Fraction(11, 3),
    ]
    assert [p for p, _ in q.positions()] == q.onsets  # all in the first bar


def test_split_hands_by_range_with_continuity():
    pitches = np.array([48, 52, 55, 72, 76, 50, 62, 74, 53, 64, 76])
    onsets = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    hands = split_hands(pitches, onsets)
    assert list(hands) == [1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0]
    # a left-hand line climbing past middle C under a high right hand stays in the left hand
    climb = np.array([55, 84, 58, 86, 61, 88, 63, 89])
    assert list(split_hands(climb, np.repeat(np.arange(4), 2))) == [1, 0, 1, 0, 1, 0, 1, 0]


def test_key_of_a_c_major_scale_and_key_signatures():
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    notes = np.array([(i * 0.5, i * 0.5 + 0.45 + (0.5 if p in (60, 67) else 0.0), p, 80) for i, p in enumerate(scale)])
    assert estimate_key(notes) == (0, "major")
    assert estimate_key(notes + np.array([0, 0, 7, 0])) == (7, "major")
    assert [key_sharps(7, "major"), key_sharps(5, "major"), key_sharps(9, "minor"), key_sharps(2, "minor")] == [
        1,
        -1,
        0,
        -1,
    ]


def test_spelling_follows_the_key_signature_and_the_minor_leading_tone():
    # by hand: sharps in C and sharp keys, flats in flat keys, the harmonic minor's raised 7th as a sharp
    assert [spell_pitch(p, 0, "major") for p in (60, 61, 63, 66, 68, 70)] == ["C4", "C#4", "D#4", "F#4", "G#4", "A#4"]
    assert [spell_pitch(p, 5, "major") for p in (61, 63, 70, 71)] == ["D-4", "E-4", "B-4", "B4"]  # F major
    assert [spell_pitch(p, 2, "minor") for p in (61, 70, 73)] == ["C#4", "B-4", "C#5"]  # D minor: C# leads
    assert [spell_pitch(p, 7, "minor") for p in (66, 63, 70)] == ["F#4", "E-4", "B-4"]  # G minor: F# leads
    assert [spell_pitch(p, 9, "minor") for p in (68, 70)] == ["G#4", "A#4"]  # A minor, no signature: sharps
    assert [spell_pitch(p, 0, "major") for p in (21, 108, 59)] == ["A0", "C8", "B3"]


def test_note_values_are_plain_dotted_or_triplets():
    pytest.importorskip("music21")
    from w2m2w.musicxml import _expressible, _pieces

    F = Fraction
    assert [_expressible(x) for x in (F(1, 4), F(3, 2), F(2, 3), F(1, 3), F(4))] == [True] * 5
    # 5/3 would be a half note under 6:5 sixteenths, 5/4 a quarter tied to a sixteenth: neither is one value
    assert [_expressible(x) for x in (F(5, 3), F(5, 4), F(5, 6))] == [False] * 3
    assert _pieces(F(1, 3), F(2)) == [(F(1, 3), F(1)), (F(1), F(2))]  # split at the beat line
    assert _pieces(F(1, 4), F(3)) == [(F(1, 4), F(1)), (F(1), F(3))]  # whole beats join into a half
    assert _pieces(F(0), F(5)) == [(F(0), F(4)), (F(4), F(5))]
    assert _pieces(F(1, 2), F(2)) == [(F(1, 2), F(2))]  # a dotted quarter across a beat line stays one value
    # after an off-beat start, whole beats join while their sum is one value: 4 beats (a whole note) from beat 1
    assert _pieces(F(1, 4), F(5)) == [(F(1, 4), F(1)), (F(1), F(5))]


def test_musicxml_notation_beams_tuplets_accidentals_and_whole_bar_rests(tmp_path):
    """One hand-made piece at 120 bpm in 4/4, whose notation is known: a beamed sixteenth run, a bracketed
    triplet, a sharp shown once per bar and cancelled by a natural, and an empty bar written as a bar rest."""
    pytest.importorskip("music21")
    import xml.etree.ElementTree as ET

    from w2m2w.musicxml import write_musicxml

    beats = Beats(np.arange(20) * 0.5, np.arange(20) % 4 == 0, 4)
    right = [(t * 0.125, 0.125, p) for t, p in enumerate((72, 74, 76, 77))]  # beat 1: C D E F sixteenths
    right += [(0.5 + t / 6, 1 / 6, p) for t, p in enumerate((79, 81, 79))]  # beat 2: a G A G triplet
    right += [(1.0, 0.25, 73), (1.25, 0.25, 73), (1.5, 0.5, 72)]  # beat 3: C# C# eighths; beat 4: C natural
    right += [(2.0 + t * 0.5, 0.5, p) for t, p in enumerate((76, 79, 76, 72))]  # bar 2: quarters; bar 3: none
    left = [(0.0, 2.0, 48), (0.0, 2.0, 55), (2.0, 2.0, 48), (2.0, 2.0, 52), (4.0, 2.0, 48), (4.0, 2.0, 55)]
    notes = np.array([(on, on + d, p, 80) for on, d, p in right + left])
    path = tmp_path / "known.musicxml"
    write_musicxml(path, quantize(notes, beats), notes)
    root = ET.parse(path).getroot()
    assert root.find(".//key/fifths").text == "0"
    parts = root.findall("part")
    assert len(parts) == 1  # two staves of one part
    bars = parts[0].findall("measure")
    assert len(bars) == 3
    upper = [[n for n in bar.findall("note") if n.find("staff").text == "1"] for bar in bars]
    pitched = [n for n in upper[0] if n.find("pitch") is not None]
    assert len(pitched) == 10
    beams = [[(b.get("number"), b.text) for b in n.findall("beam")] for n in pitched]
    run = [[("1", "begin"), ("2", "begin")], [("1", "continue"), ("2", "continue")]]
    run += [[("1", "continue"), ("2", "continue")], [("1", "end"), ("2", "end")]]
    assert beams[:4] == run
    assert beams[4:7] == [[("1", "begin")], [("1", "continue")], [("1", "end")]]
    assert beams[7:9] == [[("1", "begin")], [("1", "end")]] and beams[9] == []
    tuplets = [[t.get("type") for t in n.findall("notations/tuplet")] for n in pitched]
    assert tuplets == [[], [], [], [], ["start"], [], ["stop"], [], [], []]
    assert [n.find("time-modification/actual-notes") is not None for n in pitched] == [False] * 4 + [True] * 3 + [
        False
    ] * 3
    accidentals = [getattr(n.find("accidental"), "text", None) for n in pitched]
    assert accidentals == [None] * 7 + ["sharp", None, "natural"]
    rests = [n.find("rest") for n in upper[2]]
    assert len(rests) == 1 and rests[0].get("measure") == "yes"


def test_musicxml_round_trip_note_for_note_with_pedal_and_tempo(tmp_path):
    pytest.importorskip("music21")
    from w2m2w.musicxml import read_notes, write_musicxml

    beats = rubato_beats(n=30, meter=4)
    rng = np.random.default_rng(5)
    notes = []
    for k in range(24):  # sixteenths, a triplet every fifth beat, a bass note per beat lasting 1-2 beats
        b0, b1 = beats.times[k], beats.times[k + 1]
        sub = 3 if k % 5 == 2 else 4
        for j in range(sub):
            on = b0 + j * (b1 - b0) / sub
            notes.append((on, on + (b1 - b0) / sub * rng.integers(1, 5), rng.integers(62, 80), 80))
        notes.append((b0, beats.times[k + rng.integers(1, 3)], rng.integers(36, 55), 70))
    notes = np.array(notes, dtype=np.float64)
    q = quantize(notes, beats)
    path = tmp_path / "piece.musicxml"
    write_musicxml(
        path, q, notes, pedal=np.array([[beats.times[2], beats.times[6]], [beats.times[8], beats.times[12]]])
    )
    assert read_notes(path) == sorted(zip(q.onsets, q.offsets, q.pitches))
    xml = path.read_text()
    pedals = re.findall(r'<pedal [^>]*type="(start|stop)"', xml)
    assert pedals == ["start", "stop", "start", "stop"]
    assert "<staff>2</staff>" in xml and "<per-minute>" in xml


def test_musicxml_reads_back_a_repeated_note_quantized_onto_a_tied_one(tmp_path):
    """Two notes of one pitch from the same beat, one tied over the bar line: the file holds a tied and an untied
    piece alike but for their ties, which reading back must not trip over (it compared None with "start")."""
    pytest.importorskip("music21")
    from w2m2w.musicxml import read_notes, write_musicxml

    beats = Beats(np.arange(12) * 0.5, np.arange(12) % 4 == 0, 4)  # 120 bpm, bars at beats 0, 4, 8
    notes = np.array([[1.5, 2.5, 60, 80], [1.5, 2.0, 60, 70], [0.0, 1.0, 48, 60]])  # beats 3-5 (tied), 3-4, 0-2
    path = tmp_path / "repeated.musicxml"
    write_musicxml(path, quantize(notes, beats), notes)
    F = Fraction
    assert read_notes(path) == [(F(0), F(2), 48), (F(3), F(4), 60), (F(3), F(5), 60)]


def test_musicxml_document_of_a_hand_made_piece_in_three(tmp_path):
    """3/4 at 120 bpm (beats 0.5 s apart, bar lines every 3 beats). Right hand: a C5-E5 half-note chord and a G5
    quarter in bar 1, nothing in bar 2, a D5 quarter in bar 3; left hand: C3 held 7 beats, so tied over both bar
    lines, and G3 with it. Every element below is what a musician writes for this by hand."""
    pytest.importorskip("music21")
    import xml.etree.ElementTree as ET

    from w2m2w.musicxml import read_notes, write_musicxml

    beats = Beats(np.arange(16) * 0.5, np.arange(16) % 3 == 0, 3)
    notes = np.array(
        [
            [0.0, 1.0, 72, 80],
            [0.0, 1.0, 76, 80],
            [1.0, 1.5, 79, 80],
            [3.0, 3.5, 74, 80],
            [0.0, 3.5, 48, 70],
            [0.0, 3.5, 55, 70],
        ]
    )
    path = tmp_path / "three.musicxml"
    write_musicxml(path, quantize(notes, beats), notes, title="Trois")
    root = ET.parse(path).getroot()
    assert [t.text for t in root.iter("work-title")] + [t.text for t in root.iter("movement-title")] != []
    assert "Trois" in {t.text for t in root.iter() if t.tag in ("work-title", "movement-title")}
    (part,) = root.findall("part")
    bars = part.findall("measure")
    assert [m.get("number") for m in bars] == ["1", "2", "3"]
    # the time signature, clefs, key and tempo once, at the start
    assert [(t.findtext("beats"), t.findtext("beat-type")) for t in part.iter("time")] == [("3", "4")]
    assert bars[0].find("attributes/time") is not None
    assert [(c.get("number"), c.findtext("sign"), c.findtext("line")) for c in part.iter("clef")] == [
        ("1", "G", "2"),
        ("2", "F", "4"),
    ]
    assert bars[0].find("attributes/clef") is not None
    assert [k.findtext("fifths") for k in part.iter("key")] == ["0"]
    assert [p.text for p in part.iter("per-minute")] == ["120"]
    # the tempo stands over the upper staff, before the first note (not after a beat's notes or over the bass)
    children = list(bars[0])
    first_note = next(i for i, c in enumerate(children) if c.tag == "note")
    tempo = [c for c in children[:first_note] if c.find("direction-type/metronome") is not None]
    assert len(tempo) == 1 and tempo[0].findtext("staff") == "1" and tempo[0].find("offset") is None
    div = int(part.findtext("measure/attributes/divisions"))

    def staff(bar, n):
        return [x for x in bar.findall("note") if x.findtext("staff") == str(n)]

    def row(x):  # (pitch or "rest", quarters, is a chord's further note, ties)
        p = x.find("pitch")
        name = "rest" if p is None else f"{p.findtext('step')}{p.findtext('alter') or ''}{p.findtext('octave')}"
        ties = [t.get("type") for t in x.findall("tie")]
        return name, Fraction(int(x.findtext("duration")), div), x.find("chord") is not None, ties

    F = Fraction
    assert [row(x) for x in staff(bars[0], 1)] == [
        ("C5", F(2), False, []),
        ("E5", F(2), True, []),
        ("G5", F(1), False, []),
    ]
    assert [row(x) for x in staff(bars[1], 1)] == [("rest", F(3), False, [])]
    assert staff(bars[1], 1)[0].find("rest").get("measure") == "yes"
    assert [row(x) for x in staff(bars[2], 1)] == [("D5", F(1), False, []), ("rest", F(2), False, [])]
    assert staff(bars[2], 1)[1].find("rest").get("measure") != "yes"
    assert [row(x) for x in staff(bars[0], 2)] == [("C3", F(3), False, ["start"]), ("G3", F(3), True, ["start"])]
    assert [row(x) for x in staff(bars[1], 2)] == [
        ("C3", F(3), False, ["stop", "start"]),
        ("G3", F(3), True, ["stop", "start"]),
    ]
    assert [row(x) for x in staff(bars[2], 2)] == [
        ("C3", F(1), False, ["stop"]),
        ("G3", F(1), True, ["stop"]),
        ("rest", F(2), False, []),
    ]
    # read back, the tie over two bar lines is one note again (onset, offset in beats from the first bar line)
    assert read_notes(path) == [
        (F(0), F(2), 72),
        (F(0), F(2), 76),
        (F(0), F(7), 48),
        (F(0), F(7), 55),
        (F(2), F(3), 79),
        (F(6), F(7), 74),
    ]


def test_a_pedal_mark_spans_the_notes_from_a_sixteenth_before_the_press_to_the_lift(tmp_path):
    """4/4 at 120 bpm; the left hand plays E3 on each beat of bar 1 under a C3 whole note. The pedal goes down at
    0.45 s (beat 0.9) and up at 1.9 s (beat 3.8): the notes starting from beat 0.65 (a sixteenth before) up to the
    lift are those on beats 1, 2 and 3, so the mark starts at beat 1 and ends after beat 3's note, at beat 4. A
    second press, 2.45-2.7 s, holds one note, bar 2's E3 on its beat 1: a mark around that note alone."""
    pytest.importorskip("music21")
    import xml.etree.ElementTree as ET

    from w2m2w.musicxml import write_musicxml

    beats = Beats(np.arange(16) * 0.5, np.arange(16) % 4 == 0, 4)
    lh = [[t, t + 0.5, 52, 60] for t in (0.0, 0.5, 1.0, 1.5, 2.5)]
    notes = np.array([[0.0, 2.0, 48, 70], [0.0, 2.0, 72, 80]] + lh)
    path = tmp_path / "pedal.musicxml"
    write_musicxml(path, quantize(notes, beats), notes, pedal=np.array([[0.45, 1.9], [2.45, 2.7]]))
    bars = ET.parse(path).getroot().findall("part/measure")
    div = int(bars[0].findtext("attributes/divisions"))
    got = []
    for bar in bars[:2]:
        now, marks = 0, []
        for el in bar:  # the running position in the bar, in quarters, where each pedal direction stands
            if el.tag == "note" and el.find("chord") is None:
                now += int(el.findtext("duration"))
            elif el.tag == "backup":
                now -= int(el.findtext("duration"))
            elif el.tag == "forward":
                now += int(el.findtext("duration"))
            elif el.tag == "direction":
                marks += [(p.get("type"), Fraction(now, div)) for p in el.iter("pedal")]
        got.append(marks)
    assert got == [[("start", Fraction(1)), ("stop", Fraction(4))], [("start", Fraction(1)), ("stop", Fraction(2))]]


def test_musicxml_of_a_piece_shorter_than_a_bar_and_of_no_notes(tmp_path):
    """One C4 quarter on the second beat of a 3/4 grid: one bar, a quarter rest, the quarter and a quarter rest, the left staff a
    bar rest; no notes at all: one bar of rests in each staff. The title defaults to the program's name."""
    pytest.importorskip("music21")
    import xml.etree.ElementTree as ET

    from w2m2w.musicxml import write_musicxml

    beats = Beats(np.arange(12) * 0.5, np.arange(12) % 3 == 0, 3)
    for notes, upper in (
        (np.array([[0.5, 1.0, 60, 80]]), [("rest", Fraction(1)), ("C4", Fraction(1)), ("rest", Fraction(1))]),
        (np.zeros((0, 4)), [("rest", Fraction(3))]),
    ):
        path = tmp_path / "short.musicxml"
        write_musicxml(path, quantize(notes, beats), notes)
        root = ET.parse(path).getroot()
        assert "w2m2w" in {t.text for t in root.iter() if t.tag in ("work-title", "movement-title")}
        bars = root.findall("part/measure")
        assert len(bars) == 1 and [(t.findtext("beats"), t.findtext("beat-type")) for t in root.iter("time")] == [
            ("3", "4")
        ]
        div = int(bars[0].findtext("attributes/divisions"))
        got = {
            s: [
                (
                    "rest" if x.find("pitch") is None else x.findtext("pitch/step") + x.findtext("pitch/octave"),
                    Fraction(int(x.findtext("duration")), div),
                )
                for x in bars[0].findall("note")
                if x.findtext("staff") == s
            ]
            for s in ("1", "2")
        }
        assert got == {"1": upper, "2": [("rest", Fraction(3))]}


def test_musicxml_keeps_a_low_note_far_into_the_piece(tmp_path):
    """An A0 (MIDI 21) on beat 40 of a 4/4 grid, after a C4 on beat 0: bar 11 holds it. (A bar's notes are found by
    their times, so a low pitch number far into a piece must not be mistaken for a time.)"""
    pytest.importorskip("music21")
    from w2m2w.musicxml import read_notes, write_musicxml

    beats = Beats(np.arange(60) * 0.5, np.arange(60) % 4 == 0, 4)
    notes = np.array([[0.0, 0.5, 60, 80], [20.0, 20.5, 21, 80]])
    path = tmp_path / "low.musicxml"
    write_musicxml(path, quantize(notes, beats), notes)
    assert read_notes(path) == [(Fraction(0), Fraction(1), 60), (Fraction(40), Fraction(41), 21)]


def test_musicxml_follows_a_change_of_meter(tmp_path):
    """Bar lines at beats 0, 3, 6 (two bars of 3/4), then 10 and 14 (4/4), a quarter note on every beat to beat 17:
    five bars, 3/4 written once at the start and 4/4 once at bar 3, each bar full, the notes read back in place."""
    pytest.importorskip("music21")
    import xml.etree.ElementTree as ET

    from w2m2w.musicxml import read_notes, write_musicxml

    down = np.zeros(24, dtype=bool)
    down[[0, 3, 6, 10, 14, 18, 22]] = True
    beats = Beats(np.arange(24) * 0.5, down, 4)
    notes = np.array([[k * 0.5, k * 0.5 + 0.5, 60 + k % 12, 80] for k in range(18)])
    path = tmp_path / "meters.musicxml"
    write_musicxml(path, quantize(notes, beats), notes)
    bars = ET.parse(path).getroot().findall("part/measure")
    assert len(bars) == 5
    times = [(m.get("number"), t.findtext("beats")) for m in bars for t in m.iter("time")]
    assert times == [("1", "3"), ("3", "4")]
    div = int(bars[0].findtext("attributes/divisions"))
    upper = [sum(int(n.findtext("duration")) for n in m.findall("note") if n.findtext("staff") == "1") for m in bars]
    assert [Fraction(u, div) for u in upper] == [3, 3, 4, 4, 4]
    assert read_notes(path) == [(Fraction(k), Fraction(k + 1), 60 + k % 12) for k in range(18)]
