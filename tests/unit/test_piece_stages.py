"""Which stages a piece goes through (a MIDI input skips transcribe) and settle_locked over several stages
(mutation testing's survivors of run/piece.py: stages_for, settle_locked). Expected values are written by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.generate import GenerateSettings
from stages.transcribe import TranscribeSettings
from w2m2w.run.piece import Hashes, PieceResult, Plan, run_piece, settle_locked, stages_for
from w2m2w.run.stage import Configured, Stage, StageJob


class Named(Stage):
    """Only a name: stages_for reads nothing else."""

    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}

    def __init__(self, name: str) -> None:
        self.name = name


def names(stages: list[Configured]) -> list[str]:
    return [s.name for s in stages]


T, G, S = (Configured(Named(n), None) for n in ("transcribe", "generate", "synthesize"))


@pytest.mark.parametrize(
    ("source", "given", "expected"),
    [
        ("a.mid", [T, G, S], ["generate", "synthesize"]),  # MIDI enters at generate
        ("a.midi", [T, G], ["generate"]),
        ("a.wav", [T, G, S], ["transcribe", "generate", "synthesize"]),  # audio goes through all
        ("a.mid", [G, S], ["generate", "synthesize"]),  # no transcribe to drop
        ("a.wav", [G, S], ["generate", "synthesize"]),
        ("a.mid", [T], []),  # nothing left for a MIDI input
        ("a.mid", [], []),
        ("a.wav", [], []),
        ("a.txt", [T, G], ["transcribe", "generate"]),  # not MIDI: run_piece refuses it later, with its reason
    ],
)
def test_stages_for(source, given, expected):
    got = stages_for(Path(source), given)
    assert names(got) == expected
    assert got is not given  # a new list: the caller's plan stays as it was


class Copy(Stage):
    """Copies its input to its output; no weights."""

    def weights_file(self, s) -> Path | None:
        return None

    def run(self, s, job: StageJob) -> dict:
        data = job.input.read_bytes()
        job.output.write_bytes(data)
        return {"bytes": len(data), "stage": self.name}


class CopyT(Copy):
    name = "transcribe"
    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}


class CopyG(Copy):
    name = "generate"
    settings = GenerateSettings
    options = {"music_transformer": GenerateSettings}


@pytest.fixture()
def two(tmp_path):
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFFab")
    plan = Plan([Configured(CopyT(), TranscribeSettings()), Configured(CopyG(), GenerateSettings())], tmp_path / "run")
    return src, plan


def test_settle_locked_keeps_the_stages_it_ran_and_reads_the_others_sidecars(two, tmp_path):
    src, plan = two
    first = run_piece("a", src, plan)  # the other run computes both stages
    assert first.status == "done"
    mine = {"status": "reused", "from": "elsewhere", "bytes": 99}  # this run's own result for transcribe
    locked = PieceResult("a", str(src), "locked", "held", {"transcribe": mine, "generate": {"status": "locked"}})
    settled = settle_locked(locked, plan, Hashes())
    assert settled.status == "done" and settled.error is None
    assert settled.stages["transcribe"] == mine, "a stage this run finished keeps its own result"
    assert settled.stages["generate"] == {
        "status": "done",
        "by": "another run",
        "seconds": first.stages["generate"]["seconds"],
        "bytes": 6,
        "stage": "generate",
    }
    for status in ("done", "current"):
        kept = {"status": status, "bytes": 1}
        again = PieceResult("a", str(src), "locked", "held", {"transcribe": kept, "generate": {"status": "locked"}})
        assert settle_locked(again, plan).stages["transcribe"] == kept


def test_settle_locked_needs_every_stage_current(two, tmp_path):
    src, plan = two
    run_piece("a", src, Plan(plan.stages[:1], plan.run_dir))  # the other run got only as far as transcribe
    locked = PieceResult("a", str(src), "locked", "held", {"transcribe": {"status": "locked"}})
    assert settle_locked(locked, plan) is locked, "generate's output is not there yet"
    # a stage of this run that failed is read again from the folder, not taken as done
    failed = PieceResult("a", str(src), "locked", "held", {"transcribe": {"status": "failed"}})
    assert settle_locked(failed, plan) is failed


def test_settle_locked_of_a_midi_input_skips_transcribe(tmp_path):
    src = tmp_path / "a.mid"
    src.write_bytes(b"MThd")
    plan = Plan([Configured(CopyT(), TranscribeSettings()), Configured(CopyG(), GenerateSettings())], tmp_path / "run")
    first = run_piece("a", src, plan)
    assert list(first.stages) == ["generate"]
    locked = PieceResult("a", str(src), "locked", "held", {"generate": {"status": "locked"}})
    settled = settle_locked(locked, plan)
    assert settled.status == "done" and list(settled.stages) == ["generate"]
    assert settled.stages["generate"]["bytes"] == 4


def test_settle_locked_of_a_missing_source_stays_locked(tmp_path):
    src = tmp_path / "gone.wav"  # never written: its input cannot be found (MissingInputError)
    plan = Plan([Configured(CopyT(), TranscribeSettings())], tmp_path / "run")
    locked = PieceResult("gone", str(src), "locked", "held", {"transcribe": {"status": "locked"}})
    assert settle_locked(locked, plan) is locked


def test_reuse_copies_when_a_hard_link_fails_and_skips_a_stale_candidate(tmp_path, monkeypatch):
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFFab")
    stages = [Configured(CopyT(), TranscribeSettings())]
    run_piece("a", src, Plan(stages, tmp_path / "old"))
    src.write_bytes(b"RIFFcd")  # old/ is stale now
    run_piece("a", src, Plan(stages, tmp_path / "new"))

    def no_link(a, b):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("w2m2w.run.piece.os.link", no_link)
    plan = Plan(stages, tmp_path / "mine", reuse_dirs=[tmp_path / "old", tmp_path / "new"])
    result = run_piece("a", src, plan)
    cand = tmp_path / "new" / "1-transcribe" / "a.mid"
    assert result.stages["transcribe"]["status"] == "reused" and result.stages["transcribe"]["from"] == str(cand)
    assert (tmp_path / "mine" / "1-transcribe" / "a.mid").read_bytes() == b"RIFFcd"
    assert not (tmp_path / "mine" / "1-transcribe" / "a.mid").samefile(cand), "copied, not linked"
    assert run_piece("a", src, Plan(stages, tmp_path / "mine")).status == "current"


class Faulty(CopyT):
    """Records the job it was given; writes its output and its side output only when told to."""

    def __init__(self, write: bool = True, side: bool = False) -> None:
        self.write, self.side, self.jobs = write, side, []

    def side_outputs(self, s) -> tuple[str, ...]:
        return (".musicxml",) if self.side else ()

    def run(self, s, job: StageJob) -> dict:
        self.jobs.append(job)
        if self.write:
            job.output.write_bytes(b"MThd")
        return {}


def test_compute_hands_the_stage_its_source_and_names_what_it_failed_to_write(tmp_path):
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFF")
    stage = Faulty()
    assert run_piece("a", src, Plan([Configured(stage, TranscribeSettings())], tmp_path / "ok")).status == "done"
    assert stage.jobs[0].source == src and stage.jobs[0].input == src and stage.jobs[0].extras == {}
    side = (tmp_path / "ok" / "1-transcribe" / "a.json").read_text()
    assert '"weights": null' in side and '"weights_sha256": null' in side, "a stage without weights records none"
    nothing = run_piece("a", src, Plan([Configured(Faulty(write=False), TranscribeSettings())], tmp_path / "r1"))
    assert nothing.status == "failed" and nothing.error == f"{src}: stage transcribe wrote no output"
    no_score = run_piece("a", src, Plan([Configured(Faulty(side=True), TranscribeSettings())], tmp_path / "r2"))
    assert no_score.status == "failed" and no_score.error == f"{src}: stage transcribe wrote no .musicxml file"
    assert not (tmp_path / "r2" / "1-transcribe" / "a.mid").exists()


def test_hashes_tell_apart_two_files_of_one_size_and_time(tmp_path):
    """The cache of file hashes is keyed by the file too: two weights files written in the same instant with the same
    size are two hashes (hashlib's, of each file's bytes)."""
    import hashlib
    import os

    from w2m2w.run.piece import Hashes

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"weights one")
    b.write_bytes(b"weights two")
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))
    os.utime(b, ns=(1_000_000_000, 1_000_000_000))
    hashes = Hashes()
    assert hashes(a) == hashlib.sha256(b"weights one").hexdigest()
    assert hashes(b) == hashlib.sha256(b"weights two").hexdigest()
