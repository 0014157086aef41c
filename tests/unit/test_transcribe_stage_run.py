"""The transcribe stage's own run (stages/transcribe.py), called as the runner calls it: the facts it returns and the
files it writes, each checked against what the written files themselves say (read back with pretty_midi and music21),
for a recording with enough notes to track, with and without its score and pedal, and the refusals (too long,
silent, unreadable)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from stages.transcribe import STAGE, TranscribeSettings
from w2m2w.run.stage import StageError, StageJob

sys.path.insert(0, str(Path(__file__).parent))
from _synth import tones  # noqa: E402

# 14 notes 0.4 s apart (enough for a beat track), loud on every fourth
NOTES = np.array(
    [[0.2 + 0.4 * k, 0.5 + 0.4 * k, (60, 64, 67, 72)[k % 4], 100 if k % 4 == 0 else 70] for k in range(14)]
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("in") / "take.wav"
    sf.write(path, tones(NOTES, 6.0), 16000)
    return path


def _run(settings: TranscribeSettings, src: Path, out_dir: Path, score: bool = False) -> dict:
    extras = {".musicxml": out_dir / "take.musicxml"} if score else {}
    return STAGE.run(settings, StageJob("take", src, src, out_dir / "take.mid.tmp", extras))


def test_the_facts_are_what_the_files_say(recording, tmp_path):
    facts = _run(TranscribeSettings(), recording, tmp_path, score=True)
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "take.mid.tmp"))
    written = [n for inst in pm.instruments for n in inst.notes]
    presses = [c for inst in pm.instruments for c in inst.control_changes if c.number == 64 and c.value >= 64]
    assert facts["audio_seconds"] == 6.0  # 96,000 samples at 16 kHz, to the millisecond
    assert facts["notes"] == len(written) > 0
    assert facts["pedal_intervals"] == len(presses)  # each interval is one press written as CC64
    # the beats the stage reports are the ones it wrote as the tempo map: their meter is the time signature
    # (the last time signature: a pickup bar, when the first downbeat comes after the first beat, has its own)
    assert facts["meter"] == pm.time_signature_changes[-1].numerator and facts["beats"] >= 2
    assert facts["tempo_bpm"] == pytest.approx(60.0 / np.median(np.diff(pm.get_beats())), rel=0.05)
    # the score beside it: titled with the piece, its tempo that of the MIDI's tempo map, every MIDI note in it
    root = ET.parse(tmp_path / "take.musicxml").getroot()
    assert "take" in {t.text for t in root.iter() if t.tag in ("work-title", "movement-title")}
    assert int(root.findtext(".//per-minute")) == pytest.approx(facts["tempo_bpm"], abs=1)
    from w2m2w.musicxml import read_notes

    assert sorted(p for _, _, p in read_notes(tmp_path / "take.musicxml")) == sorted(n.pitch for n in written)


def test_no_score_unless_asked_no_pedal_when_off_and_a_long_recording_refused(recording, tmp_path):
    facts = _run(TranscribeSettings(pedal=False), recording, tmp_path)
    assert not (tmp_path / "take.musicxml").exists()
    assert facts["pedal_intervals"] is None  # no pedal written, not "none pressed"
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "take.mid.tmp"))
    assert not [c for inst in pm.instruments for c in inst.control_changes if c.number == 64]
    (tmp_path / "take.mid.tmp").unlink()
    with pytest.raises(StageError, match=r"take\.wav: 6 s is longer than the limit of 3 s"):
        _run(TranscribeSettings(max_seconds=3.0), recording, tmp_path)
    assert not (tmp_path / "take.mid.tmp").exists()
    assert _run(TranscribeSettings(max_seconds=6.0), recording, tmp_path)["audio_seconds"] == 6.0  # the edge: taken


def test_silence_and_an_unreadable_file_are_refused_naming_the_file(tmp_path):
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(StageError, match=r"quiet\.wav: silent recording"):
        _run(TranscribeSettings(), quiet, tmp_path)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    with pytest.raises(StageError, match="broken.wav"):
        _run(TranscribeSettings(), broken, tmp_path)
    assert not (tmp_path / "take.mid.tmp").exists()


def test_the_score_gets_the_pedal_and_its_own_beats_when_the_midi_has_none(tmp_path, monkeypatch):
    """The stage's wiring, with the model's answer fixed by hand: two pedal presses reach the score as two marks, and
    with tempo_map=false (a plain 120 bpm MIDI) the score still gets the beats tracked from the notes (150 bpm here,
    notes 0.4 s apart). 96,020 samples are 6.00125 s: 6.001 to the millisecond."""
    import stages.transcribe as tr

    notes = NOTES.copy()
    notes[::4, 2] = 48  # a left hand (C3 on 0.2, 1.8, 3.4 and 5.0 s), whose notes carry the pedal marks
    pedal = np.array([[0.1, 1.7], [2.5, 4.1]])  # each press over one of them
    monkeypatch.setattr(tr, "transcribe_audio", lambda model, audio, s, name="audio": (notes, pedal))
    src = tmp_path / "take.wav"
    sf.write(src, np.random.default_rng(0).uniform(-0.1, 0.1, 96020).astype(np.float32), 16000)
    facts = _run(TranscribeSettings(tempo_map=False), src, tmp_path, score=True)
    assert facts["audio_seconds"] == 6.001 and facts["pedal_intervals"] == 2 and facts["notes"] == len(notes)
    assert "tempo_bpm" not in facts  # no beats written into the MIDI
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "take.mid.tmp"))
    assert pm.get_tempo_changes()[1].tolist() == [120.0]
    root = ET.parse(tmp_path / "take.musicxml").getroot()
    bpm = int(root.findtext(".//per-minute"))
    assert bpm in (75, 150)  # the notes' pulse, not the plain file's 120
    assert [p.get("type") for p in root.iter("pedal")] == ["start", "stop", "start", "stop"]


def test_a_silent_recording_without_a_name_is_called_audio():
    from stages.transcribe import transcribe_audio

    with pytest.raises(StageError) as err:
        transcribe_audio(None, np.zeros(16000, np.float32), TranscribeSettings())
    assert str(err.value) == "audio: silent recording (peak below -60.0 dBFS), nothing to transcribe"
