"""What each stage reads (rundir.stage_input) and which outputs are stale (freshness), on hand-made run folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from w2m2w.run.freshness import piece_staleness
from w2m2w.run.rundir import MissingInputError, is_run_folder, stage_input
from w2m2w.run.runner import keep_apart


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def put(run_dir: Path, folder: str, name: str, data: bytes, made_from: Path | None) -> Path:
    """An output with a sidecar saying it was made from `made_from` as it is now (None: no sidecar)."""
    out = run_dir / folder / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    if made_from is not None:
        out.with_suffix(".json").write_text(json.dumps({"input": str(made_from), "input_sha256": sha(made_from)}))
    return out


@pytest.fixture()
def audio(tmp_path) -> Path:
    src = tmp_path / "in" / "p.wav"
    src.parent.mkdir()
    src.write_bytes(b"RIFF audio")
    return src


@pytest.fixture()
def midi(tmp_path) -> Path:
    src = tmp_path / "in" / "p.mid"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(b"MThd song")
    return src


def test_each_stage_reads_the_nearest_earlier_output_else_a_source_it_can_take(tmp_path, audio, midi):
    run = tmp_path / "run"
    assert stage_input(run, "transcribe", "p", audio) == audio
    with pytest.raises(
        MissingInputError, match=r"no transcribe output at .*1-transcribe/p\.mid; run stages=\[transcribe\] first"
    ):
        stage_input(run, "generate", "p", audio)
    with pytest.raises(MissingInputError, match=r"no generate output"):
        stage_input(run, "synthesize", "p", audio)
    assert stage_input(run, "generate", "p", midi) == midi  # a MIDI enters at generate...
    assert stage_input(run, "synthesize", "p", midi) == midi  # ...or at synthesize
    t = put(run, "1-transcribe", "p.mid", b"t", audio)
    assert stage_input(run, "generate", "p", audio) == t
    assert stage_input(run, "synthesize", "p", audio) == t  # no continuation yet: the transcription is what there is
    g = put(run, "2-generate", "p.mid", b"g", t)
    assert stage_input(run, "synthesize", "p", audio) == g
    assert stage_input(run, "synthesize", "p", midi) == g  # the run folder wins over the source
    assert stage_input(run, "transcribe", "p", audio) == audio


def test_a_missing_source_is_named_as_such(tmp_path):
    gone = tmp_path / "gone" / "p.wav"
    with pytest.raises(MissingInputError, match=r"gone/p\.wav: source not found .*kept"):
        stage_input(tmp_path / "run", "transcribe", "p", gone)


def test_is_run_folder(tmp_path):
    d = tmp_path / "r"
    (d / "2-generate").mkdir(parents=True)
    assert not is_run_folder(d)  # no run.json
    (d / "run.json").write_text("{}")
    assert is_run_folder(d)
    (d / "2-generate").rmdir()
    assert not is_run_folder(d)  # no stage folder: a folder that merely holds a run.json
    (d / "3-synthesize").mkdir()
    assert is_run_folder(d)


def hashing(path: Path) -> str:
    return sha(path)


def test_current_chain_is_not_stale(tmp_path, audio):
    run = tmp_path / "run"
    t = put(run, "1-transcribe", "p.mid", b"t", audio)
    g = put(run, "2-generate", "p.mid", b"g", t)
    put(run, "3-synthesize", "p.wav", b"s", g)
    assert piece_staleness(run, "p", audio, {}, hashing) == {}


def test_a_changed_upstream_output_makes_the_next_stale_and_those_after_it(tmp_path, audio):
    run = tmp_path / "run"
    t = put(run, "1-transcribe", "p.mid", b"t", audio)
    g = put(run, "2-generate", "p.mid", b"g", t)
    put(run, "3-synthesize", "p.wav", b"s", g)
    t.write_bytes(b"t, transcribed again")
    t.with_suffix(".json").write_text(json.dumps({"input_sha256": sha(audio)}))
    stale = piece_staleness(run, "p", audio, {}, hashing)
    assert list(stale) == ["generate", "synthesize"]
    assert "earlier 1-transcribe/ output" in stale["generate"] and "stale 2-generate/ output" in stale["synthesize"]


def test_only_the_last_stage_when_only_its_input_changed(tmp_path, midi):
    run = tmp_path / "run"
    g = put(run, "2-generate", "p.mid", b"g", midi)
    put(run, "3-synthesize", "p.wav", b"s", g)
    g.write_bytes(b"g2")
    g.with_suffix(".json").write_text(json.dumps({"input_sha256": sha(midi)}))
    assert list(piece_staleness(run, "p", midi, {}, hashing)) == ["synthesize"]


def test_a_changed_source_and_a_missing_sidecar(tmp_path, audio):
    run = tmp_path / "run"
    put(run, "1-transcribe", "p.mid", b"t", audio)
    audio.write_bytes(b"RIFF another take")
    assert "earlier version of the source" in piece_staleness(run, "p", audio, {}, hashing)["transcribe"]
    (run / "1-transcribe" / "p.json").unlink()
    assert "no readable sidecar" in piece_staleness(run, "p", audio, {}, hashing)["transcribe"]


def test_a_failed_or_interrupted_stage_keeps_a_stale_output_and_everything_after_it(tmp_path, audio):
    run = tmp_path / "run"
    t = put(run, "1-transcribe", "p.mid", b"t", audio)
    g = put(run, "2-generate", "p.mid", b"g", t)
    put(run, "3-synthesize", "p.wav", b"s", g)
    stale = piece_staleness(run, "p", audio, {"generate": {"status": "failed", "error": "disk full"}}, hashing)
    assert list(stale) == ["generate", "synthesize"] and "generate failed this time (disk full)" in stale["generate"]
    stale = piece_staleness(run, "p", audio, {"synthesize": {"status": "interrupted"}}, hashing)
    assert list(stale) == ["synthesize"] and "interrupted" in stale["synthesize"]
    for status in ("done", "current", "reused", "locked"):
        assert piece_staleness(run, "p", audio, {"generate": {"status": status}}, hashing) == {}


def test_a_missing_source_leaves_its_output_unchecked_without_spreading(tmp_path, audio):
    run = tmp_path / "run"
    t = put(run, "1-transcribe", "p.mid", b"t", audio)
    put(run, "2-generate", "p.mid", b"g", t)
    audio.unlink()
    stale = piece_staleness(run, "p", audio, {}, hashing)
    assert list(stale) == ["transcribe"] and stale["transcribe"].startswith("unchecked: ")


def test_keep_apart_gives_another_file_its_own_id():
    known = {"take": {"source": "/a/take.wav", "sha256": "1" * 64}}
    assert keep_apart("take", {"source": "/a/take.wav", "sha256": "2" * 64}, known) == "take"  # the same file, edited
    assert keep_apart("take", {"source": "/moved/take.wav", "sha256": "1" * 64}, known) == "take"  # moved
    other = keep_apart("take", {"source": "/b/take.wav", "sha256": "3" * 64}, known)
    assert other == "take~" + hashlib.sha256(b"/b/take.wav").hexdigest()[:8]
    assert keep_apart("new", {"source": "/b/new.wav", "sha256": None}, known) == "new"
    assert (
        keep_apart("take", {"source": "/c/take.wav", "sha256": None}, known) != "take"
    )  # unreadable: not the same file
