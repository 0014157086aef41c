"""The training loop under torchrun: 2 CPU processes (gloo) on a tiny WaveNet.

Every row of a global batch is drawn from a generator seeded by (seed, step, row), and DDP averages
the gradients of the ranks' halves, so two processes train on exactly the batches one process does
and must log the same losses step by step, up to float rounding; resuming a one-process run with
two processes must continue that same curve from the saved step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch.distributed

from tests.conftest import REPO, TINY_WAVENET
from tests.unit._synth import random_notes, tones, write_tsv
from w2m2w.models.wavenet import WaveNetConfig
from w2m2w.train.wavenet import WaveNetTrainConfig, train_wavenet

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available in this torch build",
)

STEPS = 4
# bf16 off: the comparison is of float32 arithmetic that differs only in summation order
SETTINGS = dict(
    midi_globs=[],
    holdout_files=1,
    batch_size=4,
    segment_seconds=0.1,
    learning_rate=1e-2,
    max_steps=STEPS,
    validate_every=1,
    validation_segments=2,
    threads=1,
    bf16=False,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    for i in range(3):
        notes = random_notes(rng, 2.0, 8)
        sf.write(str(root / f"piece{i}.flac"), tones(notes, 2.0), 16000)
        write_tsv(root / f"piece{i}.tsv", notes)
    return root


@pytest.fixture(scope="module")
def one_process(data, tmp_path_factory) -> list[dict]:
    """The reference: the log of STEPS steps in this process, global batch 4."""
    out = tmp_path_factory.mktemp("single") / "run"
    train_wavenet(
        WaveNetTrainConfig(out_dir=str(out), model=WaveNetConfig(**TINY_WAVENET), audio_dirs=[str(data)], **SETTINGS)
    )
    return _log(out)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _torchrun(run: Path, data: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 -m w2m2w.train train=wavenet ...` with SETTINGS, as a user runs it."""
    args = [
        f"train.out_dir={run}",
        f"train.audio_dirs=[{data}]",
        *(f"train.model.{k}={v}" for k, v in TINY_WAVENET.items()),
        *(
            f"train.{k}={json.dumps(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v}"
            for k, v in SETTINGS.items()
        ),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "w2m2w.train",
        "train=wavenet",
        *args,
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


def _same_curve(got: list[dict], want: list[dict]) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for key in ("loss", "val_loss"):
        # the log keeps 4 decimals; float rounding differs far below that, other data or weights far above
        np.testing.assert_allclose([r[key] for r in got], [r[key] for r in want], rtol=0, atol=3e-4, err_msg=key)


def test_two_processes_train_as_one_with_the_same_global_batch(data, one_process, tmp_path):
    run = tmp_path / "ddp"
    res = _torchrun(run, data)
    log = _log(run)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))  # rank 0 alone writes the log: one row per step
    _same_curve(log, one_process)
    assert log[0]["loss"] != log[-1]["loss"]  # it trained: the curve is not flat
    assert json.loads(res.stdout.strip().splitlines()[-1]) == log[-1]  # one summary line, from rank 0
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == STEPS
    assert len(list((run / "hydra").iterdir())) == 1  # one Hydra record of the call, not one per process
    assert not list(REPO.glob("*.log")) and not (REPO / ".hydra").exists()  # rank 1 wrote nothing in the working folder


def test_a_one_process_run_resumes_with_two(data, one_process, tmp_path):
    run = tmp_path / "resume"
    half = dict(SETTINGS, max_steps=STEPS // 2)
    train_wavenet(
        WaveNetTrainConfig(out_dir=str(run), model=WaveNetConfig(**TINY_WAVENET), audio_dirs=[str(data)], **half)
    )
    res = _torchrun(run, data)
    assert f"resumed at step {STEPS // 2}" in res.stdout + res.stderr
    log = _log(run)
    _same_curve(log, one_process)  # the second half too: the same rows, from the saved model and optimizer
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == STEPS
