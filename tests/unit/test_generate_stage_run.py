"""The generate stage's own run (stages/generate.py), called as the runner calls it with a tiny Music Transformer:
the facts it returns against what the written MIDI and MusicXML say, the input's tempo map carried on, an empty
transcription continued where an empty file of the user's is refused (word for word), the stage's torch threads,
and the seed drawn when none is given."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

import stages.generate as gen
from stages.generate import STAGE, GenerateSettings
from w2m2w.run.stage import StageError, StageJob


def _waltz(path: Path) -> Path:
    """40 notes 0.3 s apart at 100 bpm in 3/4: beats every 0.6 s, bars every 1.8 s."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=100.0)
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60 + k % 12, 0.3 * k, 0.3 * k + 0.25) for k in range(40)]
    pm.instruments.append(inst)
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    pm.write(str(path))
    return path


def _empty(path: Path) -> Path:
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.write(str(path))
    return path


def _settings(weights: Path, **kw) -> GenerateSettings:
    return GenerateSettings(weights=str(weights), **{"seconds": 2.0, "seed": 3, "threads": 1, **kw})


def test_the_facts_are_what_the_files_say_and_the_inputs_map_goes_on(tiny_music_transformer, tmp_path):
    src = _waltz(tmp_path / "waltz.mid")
    out = tmp_path / "waltz.gen.mid"
    extras = {".musicxml": tmp_path / "waltz.musicxml"}
    facts = STAGE.run(_settings(tiny_music_transformer), StageJob("waltz", src, src, out, extras))
    pm = pretty_midi.PrettyMIDI(str(out))
    written = [n for inst in pm.instruments for n in inst.notes]
    assert facts["input_notes"] == 40 and facts["output_notes"] == len(written)
    assert facts["seed"] == 3 and facts["sampling"]["seed"] == 3
    # the input's own map, carried on: 100 bpm in 3/4, in the MIDI written and in the facts
    assert facts["tempo_map_from"] == "input" and facts["meter"] == 3 and facts["tempo_bpm"] == 100.0
    assert [ts.numerator for ts in pm.time_signature_changes] == [3]
    np.testing.assert_allclose(pm.get_tempo_changes()[1], [100.0])
    assert "warning" not in facts
    from w2m2w.musicxml import read_notes

    assert sorted(p for _, _, p in read_notes(extras[".musicxml"])) == sorted(n.pitch for n in written)


def test_tempo_map_off_is_a_plain_file_with_no_beats_in_the_facts(tiny_music_transformer, tmp_path):
    src = _waltz(tmp_path / "waltz.mid")
    out = tmp_path / "waltz.gen.mid"
    facts = STAGE.run(_settings(tiny_music_transformer, tempo_map="off"), StageJob("waltz", src, src, out))
    pm = pretty_midi.PrettyMIDI(str(out))
    np.testing.assert_allclose(pm.get_tempo_changes()[1], [120.0])
    assert facts["beats"] == 0 and "tempo_map_from" not in facts and "meter" not in facts


def test_an_empty_transcription_is_continued_and_an_empty_file_of_the_users_refused(
    tiny_music_transformer, tmp_path, caplog
):
    source = tmp_path / "take.wav"  # the recording the transcription came from: another file than the input
    source.write_bytes(b"")
    empty = _empty(tmp_path / "take.mid")
    with caplog.at_level(logging.WARNING, logger="w2m2w"):
        facts = STAGE.run(_settings(tiny_music_transformer), StageJob("take", source, empty, tmp_path / "o.mid"))
    said = f"{empty}: transcription holds no notes; continuing from an empty start"
    assert facts["warning"] == said and facts["input_notes"] == 0
    assert f"[generate] {said}" in [r.getMessage() for r in caplog.records]
    with pytest.raises(StageError) as err:  # the user's own MIDI file, the input itself
        STAGE.run(_settings(tiny_music_transformer), StageJob("take", empty, empty, tmp_path / "o2.mid"))
    assert str(err.value) == f"{empty}: holds no notes to continue"
    one = tmp_path / "one.mid"
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60, 0.0, 0.5)]
    pm.instruments.append(inst)
    pm.write(str(one))
    facts = STAGE.run(_settings(tiny_music_transformer), StageJob("one", source, one, tmp_path / "o3.mid"))
    assert facts["input_notes"] == 1 and "warning" not in facts  # one note is something to continue


def test_running_out_of_events_is_logged_with_the_piece(tiny_music_transformer, tmp_path, caplog):
    src = _waltz(tmp_path / "waltz.mid")
    with caplog.at_level(logging.WARNING, logger="w2m2w"):
        facts = STAGE.run(
            _settings(tiny_music_transformer, seconds=30.0, max_events=3),
            StageJob("waltz", src, src, tmp_path / "o.mid"),
        )
    assert facts["continuation_events"] == 3 and facts["warning"].startswith("stopped at max_events=3 after ")
    assert f"[generate] waltz: {facts['warning']}" in [r.getMessage() for r in caplog.records]


def test_the_stage_runs_on_its_threads_and_gives_them_back(monkeypatch):
    seen = []
    monkeypatch.setattr(gen, "continue_notes", lambda model, notes, cfg: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        gen.continue_piece(None, np.zeros((0, 4)), None, GenerateSettings(threads=1))
        gen.continue_piece(None, np.zeros((0, 4)), None, GenerateSettings(threads=0))  # 0: torch's own
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_seed_left_null_is_drawn_for_each_piece_and_an_explicit_one_kept():
    drawn = {gen.generation_config(GenerateSettings(seed=None)).sampling.seed for _ in range(40)}
    assert len(drawn) > 1 and all(0 <= s < 2**31 for s in drawn)  # 4 random bytes, halved: a 31-bit seed
    assert max(drawn) >= 2**30  # the top bit used: 40 draws all under 2**30 would be 2**-40 likely
    cfg = gen.generation_config(GenerateSettings(seed=11, temperature=0.5, seconds=4.0))
    assert (cfg.sampling.seed, cfg.sampling.temperature, cfg.seconds) == (11, 0.5, 4.0)


def _slow(tempo: float, onsets: list[float]) -> pretty_midi.PrettyMIDI:
    """A PrettyMIDI (not a file) at `tempo` whose beats run to its last note's end."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60, t, t + 0.5) for t in onsets]
    pm.instruments.append(inst)
    return pm


def _continuation(notes: list, start: float) -> gen.Continuation:
    stats = {"primer_start_in_input_s": start, "primer_seconds": 0.0, "output": "primer+continuation"}
    return gen.Continuation(np.array(notes, dtype=float).reshape(-1, 4), stats)


@pytest.mark.parametrize(
    ("notes", "expected"),
    [([], [0.0, 1.2]), ([[0.0, 0.1, 60, 80]], [0.0, 1.2]), ([[0.0, 0.3, 60, 80]], [0.0, 1.2, 2.4])],
    ids=["no notes: 1 s", "ends at 0.1 s: 1.1 s", "ends at 0.3 s: 1.3 s"],
)
def test_the_beats_reach_one_second_past_the_last_note_and_no_further(notes, expected):
    """50 bpm (a beat every 1.2 s) from a PrettyMIDI handed in as it is: the input's beats 0 and 1.2 s, carried on
    until they cover the output's last offset plus 1 s (by hand: 1.0, 1.1 and 1.3 s)."""
    beats, source = gen.output_beats(_slow(50.0, [0.0, 1.2]), None, _continuation(notes, 0.0), "auto")
    assert source == "input"
    np.testing.assert_allclose(beats.times, expected, atol=1e-6)


def test_fewer_than_two_beats_in_the_outputs_frame_is_a_plain_file():
    """10 bpm, beats at 0 and 6 s; the output starts 5 s into the input and lasts 1 s (no notes): only the beat at
    6 s (1 s in) falls in it, and one beat is no tempo map. From 5.5 s the beat at 6 s is 0.5 s in, short of 1 s,
    so the next one (6.5 s in) joins it: two beats."""
    pm = _slow(10.0, [0.0, 6.0])
    assert gen.output_beats(pm, None, _continuation([], 5.0), "auto") == (None, None)
    beats, _ = gen.output_beats(pm, None, _continuation([], 5.5), "auto")
    np.testing.assert_allclose(beats.times, [0.5, 6.5], atol=1e-6)


def test_the_score_takes_the_written_beats_or_tracks_its_own(tiny_music_transformer, tmp_path, monkeypatch):
    """The model's answer fixed by hand (14 notes 0.4 s apart: a 150 bpm pulse): with the input's 100 bpm map the
    score is marked 100; with tempo_map=off the MIDI is a plain 120 bpm file and the score tracks the notes."""
    import xml.etree.ElementTree as ET

    notes = np.array([[0.2 + 0.4 * k, 0.5 + 0.4 * k, (60, 64, 67, 72)[k % 4], 90] for k in range(14)])
    stats = {"primer_start_in_input_s": 0.0, "primer_seconds": 0.0, "output": "primer+continuation"}
    monkeypatch.setattr(gen, "continue_piece", lambda model, n, g, s: gen.Continuation(notes, dict(stats)))
    src = _waltz(tmp_path / "waltz.mid")
    for mode, marks in (("auto", {100}), ("off", {75, 150})):
        xml = tmp_path / f"{mode}.musicxml"
        job = StageJob("waltz", src, src, tmp_path / f"{mode}.mid", {".musicxml": xml})
        STAGE.run(_settings(tiny_music_transformer, tempo_map=mode), job)
        root = ET.parse(xml).getroot()
        assert int(root.findtext(".//per-minute")) in marks, mode
        assert "waltz" in {t.text for t in root.iter() if t.tag in ("work-title", "movement-title")}
