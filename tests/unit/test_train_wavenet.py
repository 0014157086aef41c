"""Training smoke tests: a tiny WaveNet on fake data made here, through the real CLI, then a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, TINY_WAVENET
from tests.unit._synth import random_notes, tones, write_tsv
from w2m2w.models.wavenet import WaveNetConfig
from w2m2w.train.wavenet import WaveNetTrainConfig, build_datasets, train_wavenet

TINY_ARGS = [f"train.model.{k}={v}" for k, v in TINY_WAVENET.items()]


def _fake_audio_dir(root: Path, n: int = 4, seconds: float = 2.0) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        notes = random_notes(rng, seconds, 8)
        sf.write(str(root / f"piece{i}.flac"), tones(notes, seconds), 16000)
        write_tsv(root / f"piece{i}.tsv", notes)
    (root / "orphan.flac").write_bytes(b"")  # no notes beside it: not an example
    return root


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "w2m2w.train", "train=wavenet", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_trains_then_resumes(tmp_path):
    data = _fake_audio_dir(tmp_path / "data")
    run = tmp_path / "run"
    common = [
        f"train.out_dir={run}",
        "train.midi_globs=[]",
        f"train.audio_dirs=[{data}]",
        "train.holdout_files=1",
        "train.batch_size=2",
        "train.segment_seconds=0.2",
        "train.validate_every=2",
        "train.validation_segments=2",
        "train.threads=1",
        *TINY_ARGS,
    ]
    res = _train_cli(*common, "train.max_steps=3")
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == log[-1]
    assert all(np.isfinite(r["val_loss"]) for r in log)
    from w2m2w.render.wavenet import load_wavenet

    assert load_wavenet(run / "best.safetensors").cfg == WaveNetConfig(**TINY_WAVENET)
    res = _train_cli(*common, "train.max_steps=4")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed at step 3" in res.stdout + res.stderr
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 3, 4]


def test_loss_goes_down(tmp_path):
    data = _fake_audio_dir(tmp_path / "data", n=3)
    cfg = WaveNetTrainConfig(
        out_dir=str(tmp_path / "run"),
        model=WaveNetConfig(**TINY_WAVENET),
        audio_dirs=[str(data)],
        holdout_files=1,
        batch_size=4,
        segment_seconds=0.2,
        learning_rate=1e-2,
        max_steps=30,
        validate_every=5,
        validation_segments=4,
        threads=1,
    )
    train_wavenet(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < log[0]["val_loss"] - 0.3, log
    assert log[0]["val_loss"] < np.log(256) + 0.5  # nats per sample, starting near a uniform guess


def test_trains_a_model_with_excitation(tmp_path):
    from w2m2w.render.wavenet import SynthesisConfig, Synthesizer, load_wavenet

    data = _fake_audio_dir(tmp_path / "data", n=3)
    model = WaveNetConfig(
        **TINY_WAVENET, excitation_harmonics=2, scalar_input=True, output="logistic_mixture", mixtures=3
    )
    cfg = WaveNetTrainConfig(
        out_dir=str(tmp_path / "run"),
        model=model,
        audio_dirs=[str(data)],
        holdout_files=1,
        batch_size=2,
        segment_seconds=0.2,
        max_steps=4,
        validate_every=2,
        validation_segments=2,
        threads=1,
    )
    summary = train_wavenet(cfg)
    assert summary["step"] == 4 and np.isfinite(summary["val_loss"])
    m = load_wavenet(tmp_path / "run" / "best.safetensors")
    assert m.cfg == model
    y = Synthesizer(m, SynthesisConfig(folds=2, threads=1)).render(np.array([[0.0, 0.2, 60, 80]]), 3200)
    assert y.shape == (3200,) and np.isfinite(y).all()


def test_rendered_midi_with_one_soundfont(tmp_path):
    pytest.importorskip("fluidsynth")
    from w2m2w.midi import write_midi
    from w2m2w.render.fluidsynth import RenderError, soundfont_path

    try:
        soundfont_path("timgm6mb")
    except RenderError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(1)
    (tmp_path / "midi").mkdir()
    for i in range(3):
        write_midi(tmp_path / "midi" / f"m{i}.mid", random_notes(rng, 2.0, 6))
    cfg = WaveNetTrainConfig(
        out_dir=str(tmp_path / "run"),
        model=WaveNetConfig(**TINY_WAVENET),
        midi_globs=[str(tmp_path / "midi" / "*.mid")],
        soundfont="timgm6mb",
        render_seconds=2.0,
        render_cache=str(tmp_path / "cache"),
        holdout_files=1,
        batch_size=2,
        segment_seconds=0.2,
        max_steps=2,
        validate_every=2,
        validation_segments=2,
        threads=1,
    )
    train, val, held = build_datasets(cfg)
    assert len(train) == 2 and len(val) == 1 and len(held) == 1
    assert {e.group for e in train + val} == {"timgm6mb"}  # one instrument
    summary = train_wavenet(cfg)
    assert summary["step"] == 2
    assert (tmp_path / "run" / "validation_midi.txt").read_text().strip() == held[0]


def test_time_budget_still_validates_and_exports(tmp_path, ticking_clock):
    data = _fake_audio_dir(tmp_path / "data", n=2)
    cfg = WaveNetTrainConfig(
        out_dir=str(tmp_path / "run"),
        model=WaveNetConfig(**TINY_WAVENET),
        audio_dirs=[str(data)],
        holdout_files=1,
        batch_size=2,
        segment_seconds=0.2,
        max_steps=100000,
        max_minutes=0.05,
        validate_every=100000,
        validation_segments=2,
        threads=1,
    )
    summary = train_wavenet(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # the loop's clock moves 1 s a reading (conftest): before step k it reads k + 1 s since the start, so a 3 s
    # budget is passed before step 3: 2 steps; the final validation's two readings make 6 s
    assert (
        len(log) == 1
        and log[0] == summary
        and summary["step"] == 2
        and summary["elapsed_s"] == 6.0
        and summary["loss"] is not None
    )
    assert (tmp_path / "run" / "best.safetensors").is_file() and (tmp_path / "run" / "last.safetensors").is_file()


def test_segment_sampler_keeps_audio_and_roll_aligned(tmp_path):
    # audio that is 0.5 exactly while some note sounds and 0 elsewhere, notes on 10 ms frame boundaries:
    # every sampled segment's busy frames must be the frames its roll marks as sounding (a shift of the
    # audio against the notes, even by one frame, breaks it)
    import soundfile as sf

    from w2m2w.audio import mu_law_decode
    from w2m2w.data.synthesis import MuLawSampler
    from w2m2w.data.transcription import Example

    notes = np.array([[0.30, 0.80, 60, 90], [1.50, 1.70, 64, 90], [2.20, 3.10, 67, 90], [4.00, 4.05, 72, 90]])
    y = np.zeros(5 * 16000, np.float32)
    for on, off, _, _ in notes:
        y[int(round(on * 16000)) : int(round(off * 16000))] = 0.5
    sf.write(str(tmp_path / "a.wav"), y, 16000)
    np.savetxt(tmp_path / "a.tsv", notes, fmt="%.6f", delimiter="\t", header="onset,offset,note,velocity")
    m = 2
    sampler = MuLawSampler(
        [Example(str(tmp_path / "a.wav"), str(tmp_path / "a.tsv"), "a", "t")], 1600, 160, m, 16000, seed=3
    )
    x, roll, _ = sampler.sample(64)
    busy = (mu_law_decode(x.reshape(64, 10, 160)) > 0.25).all(-1)
    sounding = roll[:, m : m + 10, 88:176].any(-1)
    assert sounding.any() and (~sounding).any()
    np.testing.assert_array_equal(busy, sounding)
