"""`python -m w2m2w.evaluate`: file matching, scoring, audio input, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.unit._synth import SR, tones, write_tsv
from w2m2w.evaluate import EvaluateError, ReferenceIndex, evaluate_transcription, find_inputs
from w2m2w.midi import write_midi

REPO = Path(__file__).resolve().parents[2]
NOTES = np.array([[0.1, 0.5, 60, 80], [0.3, 0.9, 64, 70], [0.6, 1.2, 67, 90], [1.0, 1.5, 72, 60]])


@pytest.fixture()
def folders(tmp_path):
    """input/ holds transcriptions (perfect, shifted, orphan, corrupt); reference/ holds labels."""
    inp, ref = tmp_path / "input", tmp_path / "reference"
    (inp / "set a").mkdir(parents=True)
    (ref / "set a").mkdir(parents=True)
    write_midi(inp / "set a" / "perfect.mid", NOTES)
    write_tsv(ref / "set a" / "perfect.tsv", NOTES)
    shifted = NOTES.copy()
    shifted[:, :2] += 0.1
    write_midi(inp / "shifted.midi", shifted)
    write_midi(ref / "shifted.mid", NOTES)
    write_midi(inp / "orphan.mid", NOTES)
    (inp / "corrupt.mid").write_text("not midi")
    write_midi(ref / "corrupt.mid", NOTES)
    (inp / "notes.txt").write_text("ignored")
    write_midi(inp / ".tmp-partial.mid", NOTES)  # a temporary of an atomic write: never an input
    return inp, ref


def test_find_inputs_filters(folders):
    inp, _ = folders
    rels = [i.rel for i in find_inputs(inp, (".mid", ".midi"))]
    assert rels == ["corrupt.mid", "orphan.mid", "set a/perfect.mid", "shifted.midi"]
    assert [i.key for i in find_inputs(inp, (".mid", ".midi"), include=["set a/*"])] == ["set a/perfect"]
    assert [i.rel for i in find_inputs(inp, (".mid", ".midi"), include=["*r*"], exclude=["orph*"])] == ["corrupt.mid", "set a/perfect.mid"]
    assert [i.rel for i in find_inputs(inp / "orphan.mid", (".mid",))] == ["orphan.mid"]


def test_reference_index(tmp_path):
    for rel in ("a/x.mid", "a/x.tsv", "b/y.tsv", "b/Piece Two.midi", "c/dup.tsv", "d/dup.tsv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    idx = ReferenceIndex(tmp_path)
    assert idx.find("a/x") == tmp_path / "a/x.mid"  # .mid is preferred over .tsv
    assert idx.find("y") == tmp_path / "b/y.tsv"  # unique file name
    assert idx.find("piece_two") == tmp_path / "b/Piece Two.midi"  # sanitised piece id of a run directory
    assert idx.find("dup") is None  # ambiguous
    assert idx.find("c/dup") == tmp_path / "c/dup.tsv"
    assert idx.find("zzz") is None


def test_evaluate_midi_folder(folders):
    inp, ref = folders
    rows, warnings = [], []
    report = evaluate_transcription(inp, ref, emit=rows.append, warn=warnings.append)
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {"set a/perfect.mid", "shifted.midi"}
    assert by_file["set a/perfect.mid"]["note_f1"] == pytest.approx(1.0)
    assert by_file["shifted.midi"]["note_f1"] == 0.0 and by_file["shifted.midi"]["frame_f1"] > 0.5
    s = report.summary
    assert s["files"] == 2 and s["source"] == "midi"
    assert s["note_f1"] == pytest.approx(0.5)
    assert s["unmatched"] == ["orphan.mid"]
    assert [f["file"] for f in s["failed"]] == ["corrupt.mid"]
    assert len(warnings) == 1 and str(inp / "corrupt.mid") in warnings[0]


def test_evaluate_errors(folders, tmp_path):
    inp, ref = folders
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluateError, match=str(tmp_path / "empty")):
        evaluate_transcription(tmp_path / "empty", ref)
    with pytest.raises(EvaluateError, match="no such"):
        evaluate_transcription(tmp_path / "nope", ref)
    with pytest.raises(EvaluateError, match="include"):
        evaluate_transcription(inp, ref, include=["*nothing*"])


class _Clock:
    """A perf_counter that advances by `step` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 100.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def test_evaluate_audio_with_weights(tmp_path, monkeypatch):
    import types

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig

    torch.manual_seed(0)
    cfg = OnsetsFramesConfig(model_size=32, lstm_units=8)
    weights = tmp_path / "of.safetensors"
    save_weights(weights, "onsets_frames", OnsetsFrames(cfg).state_dict(), asdict(cfg))
    (tmp_path / "flac").mkdir()
    (tmp_path / "tsv").mkdir()
    for name in ("MAPS_MUS-a_SptkBGCl", "MAPS_MUS-a_AkPnBcht"):
        sf.write(str(tmp_path / "flac" / f"{name}.flac"), tones(NOTES, 2.0), SR)
        write_tsv(tmp_path / "tsv" / f"{name}.tsv", NOTES)
    # transcribing a file reads the clock twice, 0.25 s apart: 2 s of audio in 0.25 s is 8x real time
    monkeypatch.setattr("w2m2w.evaluate.time", types.SimpleNamespace(perf_counter=_Clock(0.25).perf_counter))
    rows: list[dict] = []
    report = evaluate_transcription(tmp_path / "flac", tmp_path / "tsv", include=["*SptkBGCl*"], weights=weights, emit=rows.append)
    assert [r["file"] for r in rows] == ["MAPS_MUS-a_SptkBGCl.flac"]
    assert rows[0]["audio_s"] == pytest.approx(2.0) and rows[0]["ref_notes"] == 4 and rows[0]["transcribe_s"] == 0.25
    s = report.summary
    assert s["source"] == "audio" and s["files"] == 1 and len(s["weights_sha256"]) == 64
    assert s["audio_s"] == 2.0 and s["transcribe_s"] == 0.25 and s["x_real_time"] == 8.0
    # both files: the summary adds up 4 s of audio and 0.5 s of transcription
    both = evaluate_transcription(tmp_path / "flac", tmp_path / "tsv", weights=weights).summary
    assert both["files"] == 2 and both["audio_s"] == 4.0 and both["transcribe_s"] == 0.5 and both["x_real_time"] == 8.0
    with pytest.raises(EvaluateError, match=str(tmp_path / "missing.safetensors")):
        evaluate_transcription(tmp_path / "flac", tmp_path / "tsv", weights=tmp_path / "missing.safetensors")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "w2m2w.evaluate", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_prints_json_lines_and_writes_nothing(folders, tmp_path):
    inp, ref = folders
    work = tmp_path / "cwd"
    work.mkdir()
    res = _cli("task=transcription", f"input={inp}", f"reference={ref}", "include=[*perfect*,shift*]", cwd=work)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]  # every stdout line is JSON
    assert [r["file"] for r in lines[:-1]] == ["set a/perfect.mid", "shifted.midi"]
    assert lines[-1]["files"] == 2 and lines[-1]["note_f1"] == pytest.approx(0.5) and lines[-1]["unmatched"] == []
    assert list(work.iterdir()) == []  # no Hydra output folder, no log file


def test_cli_errors(tmp_path):
    res = _cli("task=generation", f"input={tmp_path}", cwd=tmp_path)
    assert res.returncode != 0 and res.stdout == "" and "no MIDI files" in res.stderr
    from w2m2w.midi import write_midi

    write_midi(tmp_path / "piece.mid", np.array([[0.0, 0.5, 60, 80]]))
    res = _cli("task=generation", f"input={tmp_path}", f"weights={tmp_path / 'missing.safetensors'}", cwd=tmp_path)
    assert res.returncode != 0 and res.stdout == ""
    assert str(tmp_path / "missing.safetensors") in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    res = _cli("task=transcription", f"input={tmp_path / 'empty'}", f"reference={tmp_path}", cwd=tmp_path)
    assert res.returncode != 0 and res.stdout == ""
    assert str(tmp_path / "empty") in res.stderr and len(res.stderr.strip().splitlines()) == 1
