"""Per-stage runs and reruns through the real run.py: what each stage reads, what changes, and that nothing made is lost.

The matrix: input kind (audio, MIDI) x stages called ([transcribe], [generate], [synthesize],
[generate,synthesize], all) x situation:

- first:   a fresh run folder, the input given;
- changed: a rerun of a finished run folder (no input=: its run.json) with a setting of every called stage changed;
- failing: the same rerun, but the first called stage fails for the piece (its disk is full: a real ENOSPC);
- moved:   the same rerun as `changed`, after the source file was moved away.

The expectations are written out by hand, cell by cell (EXPECTED), from the run-folder contract
in DESIGN.md: a stage reads the previous stage's output in the run folder, a MIDI enters at generate
or synthesize, a failure deletes nothing, and outputs downstream of a changed one are marked stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, piano_like, run_command
from w2m2w.midi import write_midi

FAULTS = Path(__file__).parent / "faults"
STAGES = ("transcribe", "generate", "synthesize")
FOLDER = {"transcribe": "1-transcribe", "generate": "2-generate", "synthesize": "3-synthesize"}
EXT = {"transcribe": ".mid", "generate": ".mid", "synthesize": ".wav"}
CALLS = {
    "T": ["transcribe"],
    "G": ["generate"],
    "S": ["synthesize"],
    "GS": ["generate", "synthesize"],
    "TGS": ["transcribe", "generate", "synthesize"],
}
# a setting of each stage that changes its output (asserted below: the output's bytes differ)
CHANGE = {
    "transcribe": "transcribe.onset_threshold=0.95",
    "generate": "generate.seed=7",
    "synthesize": "synthesize.loudness_lufs=-30",  # the level: tail_seconds is a cap now, which a render may end before
}

# (kind, call, situation) -> (exit code, {stage: (what it read, what happened to its output)}, stale stages)
# read: "source", a stage folder, or "-" (did not read: refused, failed before, not called);
# output: "new" (written by this call), "kept" (byte for byte as before), "none" (no output)
T, G, S = "transcribe", "generate", "synthesize"
EXPECTED: dict[tuple[str, str, str], tuple[int, dict[str, tuple[str, str]], set[str]]] = {
    # audio, fresh folder: only transcribe can take a recording
    ("audio", "T", "first"): (0, {T: ("source", "new"), G: ("-", "none"), S: ("-", "none")}, set()),
    ("audio", "G", "first"): (1, {T: ("-", "none"), G: ("-", "none"), S: ("-", "none")}, set()),
    ("audio", "S", "first"): (1, {T: ("-", "none"), G: ("-", "none"), S: ("-", "none")}, set()),
    ("audio", "GS", "first"): (1, {T: ("-", "none"), G: ("-", "none"), S: ("-", "none")}, set()),
    ("audio", "TGS", "first"): (0, {T: ("source", "new"), G: ("1-transcribe", "new"), S: ("2-generate", "new")}, set()),
    # audio, rerun with new settings: each called stage reads the folder; later uncalled stages go stale
    ("audio", "T", "changed"): (0, {T: ("source", "new"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("audio", "G", "changed"): (0, {T: ("-", "kept"), G: ("1-transcribe", "new"), S: ("-", "kept")}, {S}),
    ("audio", "S", "changed"): (0, {T: ("-", "kept"), G: ("-", "kept"), S: ("2-generate", "new")}, set()),
    ("audio", "GS", "changed"): (0, {T: ("-", "kept"), G: ("1-transcribe", "new"), S: ("2-generate", "new")}, set()),
    ("audio", "TGS", "changed"): (
        0,
        {T: ("source", "new"), G: ("1-transcribe", "new"), S: ("2-generate", "new")},
        set(),
    ),
    # audio, the first called stage fails: everything stays, the failed stage and those after it are stale
    ("audio", "T", "failing"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {T, G, S}),
    ("audio", "G", "failing"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("audio", "S", "failing"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {S}),
    ("audio", "GS", "failing"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("audio", "TGS", "failing"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {T, G, S}),
    # audio, the recording moved away: transcribe cannot run (it fails, its output and those after it are kept and
    # stale; not called, its output is unchecked); later stages need only the run folder
    ("audio", "T", "moved"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {T, G, S}),
    ("audio", "G", "moved"): (0, {T: ("-", "kept"), G: ("1-transcribe", "new"), S: ("-", "kept")}, {T, S}),
    ("audio", "S", "moved"): (0, {T: ("-", "kept"), G: ("-", "kept"), S: ("2-generate", "new")}, {T}),
    ("audio", "GS", "moved"): (0, {T: ("-", "kept"), G: ("1-transcribe", "new"), S: ("2-generate", "new")}, {T}),
    ("audio", "TGS", "moved"): (1, {T: ("-", "kept"), G: ("-", "kept"), S: ("-", "kept")}, {T, G, S}),
    # MIDI, fresh folder: it enters at generate (continued) or synthesize (rendered as it is)
    ("midi", "T", "first"): (0, {T: ("-", "none"), G: ("-", "none"), S: ("-", "none")}, set()),
    ("midi", "G", "first"): (0, {T: ("-", "none"), G: ("source", "new"), S: ("-", "none")}, set()),
    ("midi", "S", "first"): (0, {T: ("-", "none"), G: ("-", "none"), S: ("source", "new")}, set()),
    ("midi", "GS", "first"): (0, {T: ("-", "none"), G: ("source", "new"), S: ("2-generate", "new")}, set()),
    ("midi", "TGS", "first"): (0, {T: ("-", "none"), G: ("source", "new"), S: ("2-generate", "new")}, set()),
    # MIDI, rerun with new settings
    ("midi", "T", "changed"): (0, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, set()),
    ("midi", "G", "changed"): (0, {T: ("-", "none"), G: ("source", "new"), S: ("-", "kept")}, {S}),
    ("midi", "S", "changed"): (0, {T: ("-", "none"), G: ("-", "kept"), S: ("2-generate", "new")}, set()),
    ("midi", "GS", "changed"): (0, {T: ("-", "none"), G: ("source", "new"), S: ("2-generate", "new")}, set()),
    ("midi", "TGS", "changed"): (0, {T: ("-", "none"), G: ("source", "new"), S: ("2-generate", "new")}, set()),
    # MIDI, the first called stage fails
    ("midi", "T", "failing"): (0, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, set()),
    ("midi", "G", "failing"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("midi", "S", "failing"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {S}),
    ("midi", "GS", "failing"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("midi", "TGS", "failing"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    # MIDI, the source moved away: generate cannot run; synthesize reads 2-generate
    ("midi", "T", "moved"): (0, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G}),
    ("midi", "G", "moved"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("midi", "S", "moved"): (0, {T: ("-", "none"), G: ("-", "kept"), S: ("2-generate", "new")}, {G}),
    ("midi", "GS", "moved"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
    ("midi", "TGS", "moved"): (1, {T: ("-", "none"), G: ("-", "kept"), S: ("-", "kept")}, {G, S}),
}


def run_py(*args: str, faults: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "W2M2W_FAULTS"}
    env["PYTHONUNBUFFERED"] = "1"
    if faults:
        env["W2M2W_FAULTS"] = json.dumps(faults)
        env["PYTHONPATH"] = os.pathsep.join([str(FAULTS), str(REPO), env.get("PYTHONPATH", "")])
    return run_command(args, env=env)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    notes = np.array([[0.2, 0.9, 60, 80], [0.5, 1.3, 64, 70], [1.0, 1.8, 67, 90], [1.4, 2.2, 72, 60]], dtype=np.float64)
    sf.write(str(root / "take.wav"), piano_like(notes, seconds=2.5), 16000)
    write_midi(root / "take.mid", notes)
    return {"audio": root / "take.wav", "midi": root / "take.mid"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sources, weights) -> dict[str, Path]:
    """A run folder through every stage its input enters, per input kind: the starting point of the reruns."""
    dirs = {}
    for kind, src in sources.items():
        run_dir = tmp_path_factory.mktemp(f"finished_{kind}") / "run"
        res = run_py(f"input={src}", f"run_dir={run_dir}", *weights)
        assert res.returncode == 0, res.stderr[-3000:]
        dirs[kind] = run_dir
    return dirs


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def snapshot(run_dir: Path) -> dict[str, dict[str, str | None]]:
    """stage -> {"output": sha256 or None, "sidecar": its text or None}."""
    snap = {}
    for stage in STAGES:
        out = run_dir / FOLDER[stage] / f"take{EXT[stage]}"
        side = out.with_suffix(".json")
        snap[stage] = {"output": digest(out), "sidecar": side.read_text() if side.is_file() else None}
    return snap


CELLS = sorted(EXPECTED)


@pytest.mark.parametrize("kind,call,situation", CELLS, ids=["-".join(c) for c in CELLS])
def test_rerun_matrix(tmp_path, kind, call, situation, sources, finished, weights):
    code, per_stage, stale = EXPECTED[(kind, call, situation)]
    stages = CALLS[call]
    args = [f"stages=[{','.join(stages)}]", *weights]
    src = sources[kind]
    if situation == "first":
        run_dir = tmp_path / "run"
        args += [f"input={src}", f"run_dir={run_dir}"]
    else:
        run_dir = tmp_path / "run"
        shutil.copytree(finished[kind], run_dir)
        args += [f"run_dir={run_dir}", *(CHANGE[s] for s in stages)]
    before = snapshot(run_dir)
    faults = None
    if situation == "failing":
        first = [st for st in stages if not (kind == "midi" and st == "transcribe")]  # a MIDI skips transcribe
        faults = {"full_disk": str(run_dir / FOLDER[first[0]])} if first else None
    if situation == "moved":
        data = json.loads((run_dir / "run.json").read_text())
        data["inputs"]["take"]["source"] = str(tmp_path / "gone" / src.name)  # as if the recordings were unmounted
        (run_dir / "run.json").write_text(json.dumps(data))
    res = run_py(*args, faults=faults)
    assert res.returncode == code, res.stdout[-2000:] + res.stderr[-3000:]
    after = snapshot(run_dir)
    for stage, (read, output) in per_stage.items():
        side = json.loads(after[stage]["sidecar"]) if after[stage]["sidecar"] else None
        if output == "none":
            assert after[stage]["output"] is None, stage
        elif output == "kept":  # nothing made is lost or altered
            assert after[stage] == before[stage], stage
        else:  # written by this call, from what the contract says it reads
            assert after[stage]["output"] is not None and after[stage]["sidecar"] != before[stage]["sidecar"], stage
            if before[stage]["output"] is not None:
                assert after[stage]["output"] != before[stage]["output"], (
                    f"{stage}: the changed setting changed nothing"
                )
            expected_input = (
                str(sources[kind].resolve())
                if read == "source"
                else str(run_dir.resolve() / read / f"take{EXT[STAGES[STAGES.index(stage) - 1]]}")
            )
            assert side["input"] == expected_input, stage
            assert side["input_sha256"] == hashlib.sha256(Path(expected_input).read_bytes()).hexdigest(), stage
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary.get("stale", {}).get("take", {})) == stale, summary.get("stale")
    report = (run_dir / "report.html").read_text()
    assert report.count('class="stale">stale:') == len(stale)
    if situation in ("failing", "moved") or code == 1:
        assert res.stdout.count("\n") < 40 and "Traceback" not in res.stderr
