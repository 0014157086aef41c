"""scripts/label_real_teacher.py's pure parts: teacher events -> MIDI with CC64, the skip decision, the split file. No Transkun needed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pretty_midi
import pytest

from tests.unit._scripts import load_script


@pytest.fixture(scope="module")
def label():
    return load_script("label_real_teacher")


def _event(start, end, pitch, velocity=127):
    return SimpleNamespace(start=start, end=end, pitch=pitch, velocity=velocity)


def _cc64(pm):
    return [
        (round(c.time, 3), c.value)
        for inst in pm.instruments
        for c in sorted(inst.control_changes, key=lambda c: c.time)
        if c.number == 64
    ]


def test_events_split_into_notes_sustain_and_soft(label):
    events = [
        _event(0.5, 1.0, 60, 80),
        _event(0.2, 2.0, -64),
        _event(1.0, 1.5, 72, 100),
        _event(3.0, 4.0, -67),
        _event(2.5, 3.5, -64),
    ]
    notes, sustain, soft = label.split_events(events)
    np.testing.assert_allclose(notes, [[0.5, 1.0, 60, 80], [1.0, 1.5, 72, 100]])
    np.testing.assert_allclose(sustain, [[0.2, 2.0], [2.5, 3.5]])
    np.testing.assert_allclose(soft, [[3.0, 4.0]])


def test_midi_round_trip_notes_and_cc64(label, tmp_path):
    notes = np.array([[0.5, 1.0, 60, 80], [1.25, 2.0, 64, 100.4], [1.25, 1.75, 21, 1]])
    sustain = np.array([[0.25, 1.5], [2.0, 3.0]])
    path = tmp_path / "x.mid"
    label.labels_to_midi(notes, sustain).write(str(path))
    pm = pretty_midi.PrettyMIDI(str(path))
    back = sorted(
        (round(n.start, 3), round(n.end, 3), n.pitch, n.velocity) for inst in pm.instruments for n in inst.notes
    )
    assert back == [(0.5, 1.0, 60, 80), (1.25, 1.75, 21, 1), (1.25, 2.0, 64, 100)]
    # a press is 127 at its start, a lift 0 at its end, in time order
    assert _cc64(pm) == [(0.25, 127), (1.5, 0), (2.0, 127), (3.0, 0)]
    assert label.midi_presses(pm) == 2


def test_midi_overlapping_presses_join_and_no_pedal_writes_no_cc(label):
    notes = np.array([[0.5, 1.0, 60, 80]])
    pm = label.labels_to_midi(notes, np.array([[0.0, 1.0], [0.75, 2.0]]))
    assert _cc64(pm) == [(0.0, 127), (2.0, 0)]
    assert label.midi_presses(pm) == 1
    pm = label.labels_to_midi(notes, np.zeros((0, 2)))
    assert _cc64(pm) == [] and label.midi_presses(pm) == 0


def test_is_current_both_ways(label):
    sidecar = {"audio": {"sha256": "aaa"}, "teacher": {"checkpoint_sha256": "ttt"}}
    assert label.is_current(sidecar, "aaa", "ttt", True)
    assert not label.is_current(sidecar, "aab", "ttt", True)  # the audio changed
    assert not label.is_current(sidecar, "aaa", "ttu", True)  # another teacher checkpoint
    assert not label.is_current(sidecar, "aaa", "ttt", False)  # the MIDI is gone
    assert not label.is_current(None, "aaa", "ttt", True)  # no sidecar yet
    assert not label.is_current({}, "aaa", "ttt", True)


def test_committed_split_is_disjoint_and_about_a_third(label):
    split = label.load_split()
    assert set(split["val"]).isdisjoint(split["train"])
    assert len(split["val"]) == 4 and len(split["val"]) + len(split["train"]) == 12
    assert "ishizaka_wtc1_prelude_no_1_in_c_major_bwv846" in split["val"]
    assert any("goldberg" in s for s in split["val"])
    assert any("prelude" in s for s in split["val"]) and any("fugue" in s for s in split["val"])
    # a prelude and its fugue (same BWV number) stay on one side
    bwv = {side: {s.rsplit("_", 1)[-1] for s in stems} for side, stems in split.items()}
    assert bwv["val"].isdisjoint(bwv["train"])


def test_load_split_rejects_overlap_and_mismatch(label, tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"val": ["a", "b"], "train": ["b", "c"]}))
    with pytest.raises(ValueError, match="both"):
        label.load_split(path)
    path.write_text(json.dumps({"val": ["a"], "train": ["b", "c"]}))
    assert label.load_split(path, ["a", "b", "c"]) == {"val": ["a"], "train": ["b", "c"]}
    with pytest.raises(ValueError, match="not in the split"):
        label.load_split(path, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="not among the files"):
        label.load_split(path, ["a", "b"])


def test_summarize_counts_only_labelled_files(label):
    split = {"val": ["a", "b"], "train": ["c"]}
    sidecars = {
        "a": {"duration_s": 90.0, "notes": 10, "pedal_presses": 2},
        "b": None,
        "c": {"duration_s": 30.0, "notes": 5, "pedal_presses": 0},
    }
    s = label.summarize(sidecars, split)
    assert s["val"] == {"files": 2, "labelled": 1, "minutes": 1.5, "notes": 10, "pedal_presses": 2}
    assert s["train"] == {"files": 1, "labelled": 1, "minutes": 0.5, "notes": 5, "pedal_presses": 0}


def test_write_atomic_leaves_no_temp_on_failure(label, tmp_path):
    target = tmp_path / "x.json"
    label.write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        label.write_atomic(target, boom)
    assert json.loads(target.read_text()) == {"a": 1}  # the old file stands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_find_audio_only(label, tmp_path):
    for name in ("b.ogg", "a.flac", "notes.tsv", ".hidden.ogg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in label.find_audio(tmp_path)] == ["a.flac", "b.ogg"]
    assert [p.name for p in label.find_audio(tmp_path, ["b"])] == ["b.ogg"]
    with pytest.raises(SystemExit):
        label.find_audio(tmp_path, ["zzz"])
