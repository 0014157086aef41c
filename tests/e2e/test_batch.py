"""End-to-end batch runs through the real run.py: worker processes, locks, summary, sweeps that reuse earlier stages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_pipeline
from w2m2w.files import file_lock
from w2m2w.midi import load_midi_notes
from w2m2w.run.rundir import lock_path


@pytest.fixture()
def folder(tmp_path, example_audio) -> Path:
    """Three short recordings (one nested) and one unreadable file."""
    root = tmp_path / "in"
    (root / "nested").mkdir(parents=True)
    y, sr = sf.read(example_audio)
    sf.write(str(root / "a.wav"), y[: 2 * sr], sr)
    sf.write(str(root / "b.flac"), y[sr // 2 : 2 * sr], sr)
    shutil.copy(root / "a.wav", root / "nested" / "c.wav")
    (root / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    return root


def all_stages(run_dir: Path, weights: dict[str, Path], *extra: str) -> list[str]:
    return [
        f"run_dir={run_dir}",
        "stages=[transcribe,generate,synthesize]",
        f"transcribe.weights={weights['t']}",
        f"generate.weights={weights['g']}",
        "generate.seconds=1",
        "generate.context=128",
        "synthesize=wavenet",
        f"synthesize.weights={weights['s']}",
        "synthesize.tail_seconds=0.2",
        "synthesize.folds=4",
        "progress=false",
        *extra,
    ]


@pytest.fixture()
def weights(tiny_transcriber, tiny_music_transformer, tiny_wavenet) -> dict[str, Path]:
    return {"t": tiny_transcriber, "g": tiny_music_transformer, "s": tiny_wavenet}


def outputs(run_dir: Path) -> dict[str, object]:
    """Every output of a run: notes of MIDI files, samples of wav files."""
    out: dict[str, object] = {}
    for f in sorted(run_dir.glob("[123]-*/**/*")):
        if f.suffix == ".mid":
            out[str(f.relative_to(run_dir))] = load_midi_notes(f)
        elif f.suffix == ".wav":
            out[str(f.relative_to(run_dir))] = sf.read(str(f))[0]
    return out


def test_two_workers_match_one_and_summarize(tmp_path, folder, weights):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run_pipeline(*all_stages(one, weights, f"input={folder}", "workers=1"))
    r2 = run_pipeline(*all_stages(two, weights, f"input={folder}", "workers=2"))
    for r in (r1, r2):
        assert r.returncode == 1, r.stderr[-3000:]  # broken.wav failed, so the exit code says so
    o1, o2 = outputs(one), outputs(two)
    assert len(o1) == 9 and sorted(o1) == sorted(o2)
    for k in o1:
        assert np.allclose(o1[k], o2[k], atol=1e-4), k
    summary = json.loads((two / "summary.json").read_text())
    assert summary["counts"] == {"done": 3, "failed": 1}
    assert "broken.wav" in summary["failed"]["broken"]
    piece = summary["pieces"]["nested/c"]
    assert [piece["stages"][s]["status"] for s in ("transcribe", "generate", "synthesize")] == ["done"] * 3
    assert piece["stages"]["synthesize"]["audio_seconds"] > 0 and piece["stages"]["transcribe"]["seconds"] > 0
    # the table: one line per piece with its status, the failure with its reason
    lines = r2.stdout.splitlines()
    assert any(ln.startswith("nested/c") and "done" in ln for ln in lines)
    assert any(ln.startswith("broken: failed:") and "broken.wav" in ln for ln in lines)
    assert (two / "report.html").is_file()


def test_piece_held_by_another_run_is_named_and_left_alone(tmp_path, folder, weights):
    run_dir = tmp_path / "run"
    (folder / "broken.wav").unlink()  # nothing fails here: the exit code 1 must come from the lock alone
    args = [
        f"input={folder}",
        f"run_dir={run_dir}",
        "stages=[transcribe]",
        f"transcribe.weights={weights['t']}",
        "progress=false",
    ]
    with file_lock(lock_path(run_dir, "transcribe", "a"), root=run_dir):  # as another run would hold it
        res = run_pipeline(*args)
    assert res.returncode == 1, res.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pieces"]["a"]["status"] == "locked"
    assert "held by another process" in summary["pieces"]["a"]["error"] and "pid " in summary["pieces"]["a"]["error"]
    assert not (run_dir / "1-transcribe" / "a.mid").exists()
    assert summary["pieces"]["b"]["status"] == "done"
    # once released, the next run does it and keeps what is current
    res = run_pipeline(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pieces"]["a"]["status"] == "done" and summary["pieces"]["b"]["status"] == "current"


def test_concurrent_runs_on_one_run_dir(tmp_path, folder, weights):
    """Two processes started together on the same run directory: every output written once, all sidecars valid."""
    import subprocess
    import sys

    from tests.conftest import REPO

    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        str(REPO / "run.py"),
        f"input={folder}",
        f"run_dir={run_dir}",
        "stages=[transcribe,generate]",
        f"transcribe.weights={weights['t']}",
        f"generate.weights={weights['g']}",
        "generate.seconds=1",
        "generate.context=128",
        "workers=1",
        "progress=false",
    ]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=600) for p in procs]
    for piece in ("a", "b", "nested/c"):
        for stage, folder_name in (("transcribe", "1-transcribe"), ("generate", "2-generate")):
            side = json.loads((run_dir / folder_name / f"{piece}.json").read_text())
            assert side["piece"] == piece and side["stage"] == stage
    assert not [p for p in run_dir.rglob("*.tmp-*")], "no temporary files left"
    run_json = json.loads((run_dir / "run.json").read_text())
    assert set(run_json["inputs"]) == {"a", "b", "nested/c", "broken"}
    text = "".join(out + err for out, err in logs)
    assert "Traceback" not in text, text[-3000:]


def test_sweep_over_generate_transcribes_once(tmp_path, folder, weights):
    run_dir = tmp_path / "sweep"
    src = folder / "a.wav"
    res = run_pipeline(
        "-m",
        f"input={src}",
        f"run_dir={run_dir}",
        "stages=[transcribe,generate]",
        f"transcribe.weights={weights['t']}",
        f"generate.weights={weights['g']}",
        "generate.seconds=1",
        "generate.context=128",
        "progress=false",
        "generate.temperature=0.8,1.2",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = sorted(d for d in run_dir.iterdir() if (d / "run.json").is_file())
    assert [d.name for d in jobs] == ["generate.temperature=0.8", "generate.temperature=1.2"]
    s0 = json.loads((jobs[0] / "summary.json").read_text())["pieces"]["a"]["stages"]
    s1 = json.loads((jobs[1] / "summary.json").read_text())["pieces"]["a"]["stages"]
    assert s0["transcribe"]["status"] == "done" and s0["generate"]["status"] == "done"
    assert s1["transcribe"]["status"] == "reused" and s1["generate"]["status"] == "done"
    side1 = json.loads((jobs[1] / "1-transcribe" / "a.json").read_text())
    assert side1["reused_from"] == str(jobs[0] / "1-transcribe" / "a.mid")
    g0 = json.loads((jobs[0] / "2-generate" / "a.json").read_text())["settings"]["temperature"]
    g1 = json.loads((jobs[1] / "2-generate" / "a.json").read_text())["settings"]["temperature"]
    assert (g0, g1) == (0.8, 1.2)


def test_shards_split_the_input_into_one_run_dir(tmp_path, folder, weights):
    """What each SLURM job of `-m hydra/launcher=submitit_slurm shard=0,1 num_shards=2` does, here with the basic launcher."""
    run_dir = tmp_path / "run"
    res = run_pipeline(
        "-m",
        f"input={folder}",
        f"run_dir={run_dir}",
        "stages=[transcribe]",
        f"transcribe.weights={weights['t']}",
        "progress=false",
        "num_shards=2",
        "shard=0,1",
    )
    assert res.returncode == 1, res.stderr[-3000:]  # broken.wav is in one of the shards
    assert sorted(p.name for p in (run_dir / "1-transcribe").rglob("*.mid")) == ["a.mid", "b.mid", "c.mid"]
    assert not [d for d in run_dir.iterdir() if (d / "run.json").is_file()], (
        "no per-job folders for a sweep over shards"
    )
    assert set(json.loads((run_dir / "run.json").read_text())["inputs"]) == {"a", "b", "broken", "nested/c"}
