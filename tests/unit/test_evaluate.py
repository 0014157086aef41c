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
from w2m2w.decoding import DecodeConfig
from w2m2w.evaluate.__main__ import EvaluateError, evaluate_transcription, find_inputs
from w2m2w.finding import ReferenceIndex
from w2m2w.midi import write_midi
from w2m2w.pedal import save_pedal_tsv

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
    assert [i.rel for i in find_inputs(inp, (".mid", ".midi"), include=["*r*"], exclude=["orph*"])] == [
        "corrupt.mid",
        "set a/perfect.mid",
    ]
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
    monkeypatch.setattr("w2m2w.evaluate.__main__.time", types.SimpleNamespace(perf_counter=_Clock(0.25).perf_counter))
    rows: list[dict] = []
    report = evaluate_transcription(
        tmp_path / "flac", tmp_path / "tsv", include=["*SptkBGCl*"], weights=weights, emit=rows.append
    )
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
    return subprocess.run(
        [sys.executable, "-m", "w2m2w.evaluate", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


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


@pytest.mark.parametrize(
    "override, line",
    [
        ("task=foo", "task='foo' is not allowed: it must be one of 'transcription', 'generation', 'synthesis'"),
        ("decode.onset_threshold=2", "decode.onset_threshold=2.0 is not allowed: it must be in (0, 1)"),
        ("continuation.top_p=1.5", "continuation.top_p=1.5 is not allowed: it must be in (0, 1]"),
        ("device=gpu", "device='gpu' is not allowed: it must be 'cpu', 'cuda' or 'cuda:N' (N: a GPU's index)"),
        ("also=3", "also=3 is not allowed: it must be a mapping, e.g. '{key: value}'"),
        ("threads=abc", "threads=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ],
)
def test_settings_are_checked_before_any_work(override, line):
    from w2m2w.evaluate.__main__ import settings_of
    from w2m2w.hydra_edge import precheck

    assert precheck([override], "evaluate", settings_of) == line


def test_settings_take_the_documented_forms():
    from hydra import compose, initialize_config_dir

    from w2m2w.evaluate.__main__ import settings_of
    from w2m2w.paths import CONF

    forms = [  # as README.md and weights/README.md write them
        "task=synthesis",
        "include=[*aria*,*fugue*]",
        "soundfont=[fluidr3,musescore]",
        "also={sptkbgcl: weights/source_filter_wavenet.safetensors}",
        "settings={release: measured, eq_db: [0, 0, 0, 0, 0, 1, 3, 6]}",
        "continuation.enabled=false",
        "decode.frame_threshold=0.3",
        "max_seconds=60",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        s = settings_of(compose("evaluate", overrides=forms))
    assert s.include == ["*aria*", "*fugue*"] and s.soundfont == ["fluidr3", "musescore"]
    assert s.also == {"sptkbgcl": "weights/source_filter_wavenet.safetensors"} and s.settings["release"] == "measured"
    assert s.continuation.enabled is False and s.decode == DecodeConfig(frame_threshold=0.3) and s.max_seconds == 60.0


# --- sustain pedal -------------------------------------------------------------------------------
PEDAL = np.array([[0.2, 0.8], [1.0, 1.4]])
PEDAL_SUMMARY = {
    f"pedal_{kind}_{m}" for kind in ("onset", "onset_offset", "frame") for m in ("precision", "recall", "f1")
} | {
    "pedal_files",
    "pedal_onset_tolerance",
}


@pytest.fixture()
def pedal_folders(tmp_path):
    """Transcriptions and references with and without pedal; the first file scored has none."""
    inp, ref = tmp_path / "input", tmp_path / "reference"
    inp.mkdir()
    ref.mkdir()
    write_midi(inp / "0_tsv.mid", NOTES, pedal=PEDAL)  # a TSV reference without .pedal.tsv: nothing known
    write_tsv(ref / "0_tsv.tsv", NOTES)
    write_midi(inp / "a_perfect.mid", NOTES, pedal=PEDAL)
    write_midi(ref / "a_perfect.mid", NOTES, pedal=PEDAL)
    write_midi(inp / "b_half.mid", NOTES, pedal=np.array([[0.3, 0.8]]))
    write_midi(ref / "b_half.mid", NOTES, pedal=PEDAL)
    write_midi(
        inp / "c_never.mid", NOTES, pedal=PEDAL
    )  # a MIDI reference whose pedal is never pressed: nothing to find
    write_midi(ref / "c_never.mid", NOTES)
    write_midi(inp / "d_missing.mid", NOTES)  # the transcription has no CC64, the reference's pedal file has a press
    write_tsv(ref / "d_missing.tsv", NOTES)
    save_pedal_tsv(ref / "d_missing.pedal.tsv", np.array([[0.2, 0.8]]))
    return inp, ref


def test_pedal_is_scored_where_the_reference_has_one(pedal_folders):
    inp, ref = pedal_folders
    rows: list[dict] = []
    report = evaluate_transcription(inp, ref, emit=rows.append)
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {"0_tsv.mid", "a_perfect.mid", "b_half.mid", "c_never.mid", "d_missing.mid"}
    for name in ("0_tsv.mid", "c_never.mid"):
        assert not [k for k in by_file[name] if k.startswith(("pedal_", "ref_pedal", "est_pedal"))], name
    a, b, d = by_file["a_perfect.mid"], by_file["b_half.mid"], by_file["d_missing.mid"]
    assert a["ref_pedal"] == a["est_pedal"] == 2
    assert a["pedal_onset_f1"] == a["pedal_onset_offset_f1"] == a["pedal_frame_f1"] == 1.0
    # b: one press found of two, its onset 100 ms late (a hit within the pedal's 200 ms, a miss within a note's 50)
    # and its offset right: P 1, R 1/2, F1 2/3; frames at 100/s: 50 of the reference's 60 + 40, none extra:
    # recall 1/2, F1 2/3
    assert (b["ref_pedal"], b["est_pedal"]) == (2, 1)
    assert b["pedal_onset_precision"] == 1.0 and b["pedal_onset_recall"] == 0.5
    assert b["pedal_onset_f1"] == pytest.approx(2 / 3, abs=1e-6) and b["pedal_onset_offset_f1"] == pytest.approx(
        2 / 3, abs=1e-6
    )
    assert b["pedal_frame_recall"] == 0.5 and b["pedal_frame_f1"] == pytest.approx(2 / 3, abs=1e-6)
    # d: the reference's NAME.pedal.tsv is read; a transcription without CC64 found no press
    assert (d["ref_pedal"], d["est_pedal"]) == (1, 0) and d["pedal_onset_f1"] == 0.0
    s = report.summary
    # pooled as the note figures are, a mean over files, but only over the three whose reference has a press
    assert s["files"] == 5 and s["pedal_files"] == 3 and s["pedal_onset_tolerance"] == 0.2
    assert s["pedal_onset_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3, abs=1e-6)
    assert s["pedal_frame_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3, abs=1e-6)
    assert s["note_f1"] == 1.0  # every file has the same notes on both sides
    assert {k for k in s if "pedal" in k} == PEDAL_SUMMARY


def test_no_pedal_figures_without_a_pressed_reference_pedal(folders):
    inp, ref = folders
    s = evaluate_transcription(inp, ref).summary
    assert not [k for k in s if "pedal" in k]


def _pedal_weights(path: Path, pedal_head: bool) -> Path:
    """A tiny transcriber; with a pedal head whose output says "down" on every frame and no onset or offset."""
    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig

    torch.manual_seed(0)
    cfg = OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=pedal_head)
    model = OnsetsFrames(cfg)
    if pedal_head:
        with torch.no_grad():
            model.pedal_stack[-1].bias.copy_(torch.tensor([-20.0, -20.0, 20.0]))
    save_weights(path, "onsets_frames", model.state_dict(), asdict(cfg))
    return path


def test_audio_input_scores_the_transcribers_pedal(tmp_path):
    (tmp_path / "flac").mkdir()
    (tmp_path / "tsv").mkdir()
    for name in ("pedalled", "unknown"):
        sf.write(str(tmp_path / "flac" / f"{name}.flac"), tones(NOTES, 2.0), SR)
        write_tsv(tmp_path / "tsv" / f"{name}.tsv", NOTES)
    save_pedal_tsv(tmp_path / "tsv" / "pedalled.pedal.tsv", np.array([[0.0, 2.0]]))
    rows: list[dict] = []
    s = evaluate_transcription(
        tmp_path / "flac", tmp_path / "tsv", weights=_pedal_weights(tmp_path / "p.safetensors", True), emit=rows.append
    ).summary
    by_file = {r["file"]: r for r in rows}
    assert "pedal_onset_f1" not in by_file["unknown.flac"]
    row = by_file["pedalled.flac"]
    # 2 s at hop 512: 32000 // 512 + 1 = 63 frames, so the one press is [0, 63 / 31.25 = 2.016 s]: onset exact,
    # offset 16 ms late (within 0.4 s); frames at 100/s: [0, 202) against [0, 200): precision 200/202
    assert row["est_pedal"] == 1 and row["pedal_onset_f1"] == 1.0 and row["pedal_onset_offset_f1"] == 1.0
    assert row["pedal_frame_precision"] == pytest.approx(200 / 202, abs=1e-6) and row["pedal_frame_recall"] == 1.0
    assert s["pedal_files"] == 1 and s["pedal_onset_f1"] == 1.0
    # the decode block's pedal settings reach the transcription: the 2.016 s press is shorter than 2.5 s
    rows = []
    evaluate_transcription(
        tmp_path / "flac",
        tmp_path / "tsv",
        weights=tmp_path / "p.safetensors",
        decode=DecodeConfig(pedal_min_duration=2.5),
        emit=rows.append,
    )
    assert {r["file"]: r for r in rows}["pedalled.flac"]["est_pedal"] == 0
    # a transcriber without a pedal head (the shipped one) transcribes no pedal: it scores 0, and nothing breaks
    rows = []
    s = evaluate_transcription(
        tmp_path / "flac", tmp_path / "tsv", weights=_pedal_weights(tmp_path / "n.safetensors", False), emit=rows.append
    ).summary
    row = {r["file"]: r for r in rows}["pedalled.flac"]
    assert row["est_pedal"] == 0 and row["pedal_onset_f1"] == 0.0 and s["pedal_onset_f1"] == 0.0
