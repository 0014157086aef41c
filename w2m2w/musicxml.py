"""MusicXML of a quantized performance with music21 (issue #32): two staves, key, tempo, pedal marks.

Bars come from the quantization's bar lines (a pickup bar and meter changes included); in each staff,
notes with one onset and one length form a chord, and chords that overlap go to further voices. A note
crossing a bar line is split there and tied; so is one whose length within a bar no single note value
(dotted or in a triplet) can write. Parsing the file back and joining ties gives the notes again.
"""

from __future__ import annotations

import os
from fractions import Fraction
from functools import lru_cache

import numpy as np

from w2m2w.beats import Beats
from w2m2w.score import Quantized, beat_positions, estimate_key, key_sharps, quantize, spell_pitch, split_hands


def _voices(
    items: list[tuple[Fraction, Fraction, int, bool, bool]],
) -> list[list[tuple[Fraction, Fraction, list[int], bool, bool]]]:
    """Chords (onset, offset, pitches, tied in, tied out) in non-overlapping voices, from notes (onset,
    offset, pitch, tied in, tied out): one chord holds notes of one onset, one length and the same ties."""
    chords: dict[tuple[Fraction, Fraction, bool, bool], list[int]] = {}
    for on, off, p, ti, to in items:
        chords.setdefault((on, off, ti, to), []).append(p)
    voices: list[list[tuple[Fraction, Fraction, list[int], bool, bool]]] = []
    for (on, off, ti, to), pitches in sorted(chords.items()):
        chord = (on, off, sorted(set(pitches)), ti, to)
        for v in voices:
            if v[-1][1] <= on:
                v.append(chord)
                break
        else:
            voices.append([chord])
    return voices


@lru_cache(maxsize=4096)  # a piece has few distinct lengths; music21's Duration is slow to build
def _expressible(ql: Fraction) -> bool:
    """Whether one note value writes `ql` quarters: plain, dotted or in a triplet (music21 would also take
    tuplets such as 6:5 sixteenths, which no reader expects from a sixteenth-and-triplet grid)."""
    from music21 import duration

    d = duration.Duration(ql)
    return d.type not in ("complex", "inexpressible") and all(
        (t.numberNotesActual, t.numberNotesNormal) == (3, 2) for t in d.tuplets
    )


def _pieces(on: Fraction, off: Fraction) -> list[tuple[Fraction, Fraction]]:
    """(start, end) pieces of [on, off) within one bar that each one note value can write: whole as is
    if possible, else split at beat lines (each beat's grid is one subdivision, so its parts are)."""
    if _expressible(off - on):
        return [(on, off)]
    cuts = [on] + [Fraction(b) for b in range(int(np.floor(on)) + 1, int(np.ceil(off)))] + [off]
    out: list[tuple[Fraction, Fraction]] = []
    for a, b in zip(cuts, cuts[1:]):
        if (
            out
            and _expressible(b - out[-1][0])
            and out[-1][1] == a
            and float(out[-1][0]).is_integer()
            and float(a).is_integer()
        ):
            out[-1] = (out[-1][0], b)  # whole beats join while the sum stays one note value
        else:
            out.append((a, b))
    return out


def _fill(
    m, voice_chords, bar_start: Fraction, bar_end: Fraction, pedal_notes: list, names: dict[int, str], ts
) -> None:
    """Write chords into a music21 Voice/Measure `m` over [bar_start, bar_end), rests in the gaps, beamed as
    the bar's TimeSignature `ts` groups them; `names` spells each MIDI pitch."""
    from music21 import beam, chord, note, tie
    from music21.stream.makeNotation import makeTupletBrackets

    written = []

    def rest(a: Fraction, b: Fraction) -> None:
        r = note.Rest(quarterLength=b - a)
        # said, not left to music21's "auto", whose look-up of the bar's time signature is most of the write
        r.fullMeasure = a == bar_start and b == bar_end
        m.insert(float(a - bar_start), r)
        written.append(r)

    now = bar_start
    for on, off, pitches, tie_in, tie_out in voice_chords:
        for a, b in _pieces(now, on) if on > now else []:
            rest(a, b)
        parts = _pieces(on, off)
        for i, (a, b) in enumerate(parts):
            # names, not MIDI numbers: a chord of ints is re-spelled by music21 (most of the build's time)
            el = note.Note(names[pitches[0]]) if len(pitches) == 1 else chord.Chord([names[p] for p in pitches])
            el.quarterLength = b - a
            starts, stops = i > 0 or tie_in, i < len(parts) - 1 or tie_out
            if starts or stops:
                el.tie = tie.Tie("continue" if starts and stops else ("stop" if starts else "start"))
            m.insert(float(a - bar_start), el)
            written.append(el)
            pedal_notes.append((a, el))
        now = off
    for a, b in _pieces(now, bar_end) if bar_end > now else []:
        rest(a, b)
    # music21's beaming, given the bar's time signature rather than looking it up
    if len(written) > 1:
        for el, beams in zip(written, ts.getBeams(written)):
            el.beams = beams if beams is not None else beam.Beams()
    makeTupletBrackets(m, inPlace=True)  # after the beams, as makeNotation orders them


def to_music21(q: Quantized, notes: np.ndarray, pedal: np.ndarray | None = None, title: str = "w2m2w"):
    """A music21 Score of `q` (quantized from notes (n, 4)); pedal (p, 2) seconds become pedal marks."""
    from music21 import clef, expressions, key, layout, metadata, meter, stream, tempo
    from music21.stream.makeNotation import makeAccidentalsInMeasureStream

    onsets = np.array([float(o) for o in q.onsets])
    hands = split_hands(np.array(q.pitches), onsets)
    tonic, mode = estimate_key(notes)
    n_beats = int(np.ceil(max([float(o) for o in q.offsets], default=1.0)))
    lines = [b for b in q.bar_lines if b < n_beats] or [0]
    if lines[-1] < n_beats:
        lines.append(
            lines[-1] + max(q.grid.meter, int(np.ceil(n_beats - lines[-1])))
            if len(lines) == 1
            else lines[-1] + max(lines[-1] - lines[-2], 1)
        )
    while lines[-1] < n_beats:
        lines.append(lines[-1] + q.grid.meter)
    bpm = q.grid.tempo
    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title))
    staves = []
    pedal_notes: list = []
    names = {p: spell_pitch(p, tonic, mode) for p in set(q.pitches)}  # one spelling for both staves
    for hand in (0, 1):
        part = stream.PartStaff(id=f"P{hand + 1}")
        idx = np.flatnonzero(hands == hand)
        items = sorted((q.onsets[i], q.offsets[i], q.pitches[i]) for i in idx)
        prev_len = None
        sounding: list[tuple[Fraction, Fraction, int]] = []  # the notes begun before this bar's end
        nxt = 0
        for b, (a, z) in enumerate(zip(lines, lines[1:])):
            m = stream.Measure(number=b + 1)
            if b == 0:
                m.insert(0, clef.TrebleClef() if hand == 0 else clef.BassClef())
                m.insert(0, key.KeySignature(key_sharps(tonic, mode)))
                if hand == 0 and bpm > 0:
                    m.insert(0, tempo.MetronomeMark(number=round(bpm)))
            if z - a != prev_len:
                ts = meter.TimeSignature(f"{z - a}/4")
                # beams group by the beat at every level (four sixteenths: both beams unbroken), as engravers
                # do and as the quantizer's per-beat grids suggest; music21 breaks the second beam at eighths
                ts.beamSequence = meter.MeterSequence("+".join(["1/4"] * (z - a)))
                m.insert(0, ts)
                prev_len = z - a
            # the notes sounding in this bar, cut at its lines and tied across them
            sounding = [it for it in sounding if it[1] > a]
            while nxt < len(items) and items[nxt][0] < z:
                if items[nxt][1] > a:
                    sounding.append(items[nxt])
                nxt += 1
            inside = [(max(on, Fraction(a)), min(off, Fraction(z)), p, on < a, off > z) for on, off, p in sounding]
            voices = _voices(inside)
            targets = [m] if len(voices) <= 1 else [stream.Voice(id=str(v + 1)) for v in range(len(voices))]
            for target, chords in zip(targets, voices or [[]]):
                _fill(target, chords, Fraction(a), Fraction(z), pedal_notes if hand == 1 else [], names, ts)
                if target is not m:
                    m.insert(0, target)
            part.append(m)
        makeAccidentalsInMeasureStream(part)  # accidentals as makeNotation would make them, bar by bar
        staves.append(part)
        score.insert(0, part)
    score.insert(0, layout.StaffGroup(staves, symbol="brace", barTogether=True))
    if pedal is not None and len(pedal) and pedal_notes:
        starts = np.array([float(a) for a, _ in pedal_notes])
        order = np.argsort(starts, kind="stable")
        ordered = starts[order]
        down_b, up_b = beat_positions(pedal[:, 0], q.grid.times), beat_positions(pedal[:, 1], q.grid.times)
        for d, u in zip(down_b, up_b):
            # the notes starting from a sixteenth before the press until the lift
            lo, hi = np.searchsorted(ordered, d - 0.25, side="left"), np.searchsorted(ordered, u, side="left")
            sel = [pedal_notes[i][1] for i in order[lo:hi]]
            if sel:
                staves[1].insert(
                    0, expressions.PedalMark(sel[0], sel[-1]) if len(sel) > 1 else expressions.PedalMark(sel[0])
                )
    return score


def write_musicxml(
    path: str | os.PathLike, q: Quantized, notes: np.ndarray, pedal: np.ndarray | None = None, title: str = "w2m2w"
) -> None:
    """Write the score of `q` as MusicXML to `path` (the caller renames it into place)."""
    # the score is complete notation (bars, rests, ties, beams, accidentals): music21's makeNotation would
    # copy it and redo each step, three quarters of the write's time
    to_music21(q, notes, pedal, title).write("musicxml", fp=str(path), makeNotation=False)


def read_notes(path: str | os.PathLike) -> list[tuple[Fraction, Fraction, int]]:
    """(onset, offset, pitch) in quarter notes from the start, of every note of a MusicXML file, ties joined.

    Ties are joined here, not by music21's stripTies, which does not follow a tie from one voice of a
    bar into another voice (or none) of the next.
    """
    from music21 import converter

    out = []
    for part in converter.parse(str(path)).parts:
        flat = part.flatten()
        pieces = []
        for el in flat.notes:
            on = Fraction(el.getOffsetBySite(flat)).limit_denominator(96)
            off = on + Fraction(el.quarterLength).limit_denominator(96)
            for n in el.notes if el.isChord else [el]:  # a chord's ties live on its notes
                tie = n.tie if n.tie is not None else el.tie
                pieces.append((on, off, int(n.pitch.midi), tie.type if tie is not None else None))
        open_ties: dict[tuple[int, Fraction], Fraction] = {}  # (pitch, where it ends) -> where it began
        # a tie-less piece sorts as "": two pieces alike but for their ties (a repeated note quantized onto
        # another) would otherwise compare None with a string
        for on, off, pitch, t in sorted(pieces, key=lambda x: (*x[:3], x[3] or "")):
            start = open_ties.pop((pitch, on), on) if t in ("stop", "continue") else on
            if t in ("start", "continue"):
                open_ties[(pitch, off)] = start
            else:
                out.append((start, off, pitch))
    return sorted(out)


def write_score(
    path: str | os.PathLike,
    notes: np.ndarray,
    beats: Beats | None,
    pedal: np.ndarray | None = None,
    title: str = "w2m2w",
) -> None:
    """The score of notes (n, 4) and pedal (p, 2) as MusicXML at `path`: quantized to `beats`, or to a plain
    120 bpm 4/4 grid where there are none (too few notes to track), as the MIDI file is written then."""
    if beats is None:
        beats = Beats(np.array([0.0, 0.5]), np.array([True, False]), 4)  # extend_beats carries it on
    write_musicxml(path, quantize(notes, beats), notes, pedal, title)
