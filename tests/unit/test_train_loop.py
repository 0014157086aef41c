"""The one training loop (w2m2w/train/loop.py) with a one-weight model and a clock the test moves: the step budget,
the time budget bounded on both sides, validation every `validate_every` steps and at the end, best and last weights,
and resuming where a run stopped, its elapsed time and its best score included."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

import w2m2w.train.loop as loop
from w2m2w.checkpoint import load_weights
from w2m2w.train.loop import Run, Task, fit


@dataclass
class One:
    size: int = 1


@dataclass
class Cfg:
    out_dir: str = ""
    model: One = field(default_factory=One)
    batch_size: int = 1
    clip_grad_norm: float = 1e9
    max_steps: int = 5
    max_minutes: float = 0.0
    validate_every: int = 2
    seed: int = 0
    threads: int = 0
    device: str = "cpu"


class Clock:
    """time.time for the loop: moves only when a step says so (each step takes `per_step` seconds)."""

    def __init__(self, per_step: float = 10.0) -> None:
        self.now = 1000.0
        self.per_step = per_step

    def time(self) -> float:
        return self.now


class Batches:
    def draw(self, rngs):
        return np.zeros((len(rngs), 1), np.float32)


def _task(clock: Clock, scores: list[float] | None = None) -> Task:
    """w starts at 0 and SGD moves it toward 1; validation reports w, or the next of `scores` when given."""
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    steps: list[int] = []

    def step(m, batch):
        clock.now += clock.per_step
        steps.append(1)
        return ((m.weight - 1.0) ** 2).sum(), {}

    def validate(m):
        return {"val": scores.pop(0) if scores else float(m.weight.detach())}

    return Task(
        model_name="one",
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        sampler=Batches(),
        step=step,
        lr=lambda s, elapsed: 0.1,
        validate=validate,
        train_log=lambda p: {"steps_since": p.steps},
        score=lambda row: row["val"],
    )


def _rows(out) -> list[dict]:
    return [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(loop, "time", c)
    return c


def test_step_budget_and_validation_every_n_steps_and_at_the_end(tmp_path, clock):
    summary = fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=5, validate_every=2), _task(clock))
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [2, 4, 5] and [r["steps_since"] for r in rows] == [2, 2, 1]
    assert summary == rows[-1] and summary["elapsed_s"] == 50.0  # five steps of 10 s on the test's clock
    # by hand: w <- w - 0.1 * 2 (w - 1) = 0.8 w + 0.2, from 0: 0.2, 0.36, 0.488, 0.5904, 0.67232
    assert rows[0]["val"] == pytest.approx(0.36) and summary["val"] == pytest.approx(0.67232)
    w, _, _ = load_weights(tmp_path / "last.safetensors", "one")
    assert float(w["weight"]) == pytest.approx(0.67232)


def test_time_budget_stops_after_the_step_that_passes_it_and_scores_the_last_weights(tmp_path, clock):
    # 0.5 min = 30 s; each step 10 s; the budget is checked before each step and must be passed (>), not reached:
    # after 3 steps 30 s is not over it, so a 4th step runs, and after it 40 s is: exactly 4 steps
    summary = fit(
        Run(tmp_path, "cpu"),
        Cfg(out_dir=str(tmp_path), max_steps=1000, max_minutes=0.5, validate_every=1000),
        _task(clock),
    )
    assert summary["step"] == 4 and summary["elapsed_s"] == 40.0
    assert [r["step"] for r in _rows(tmp_path)] == [4], "stopped between validations: the last weights are scored once"
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "last.safetensors").is_file()


def test_time_budget_just_over_a_step(tmp_path, clock):
    clock.per_step = 10.0
    summary = fit(
        Run(tmp_path, "cpu"),
        Cfg(out_dir=str(tmp_path), max_steps=1000, max_minutes=29.9 / 60, validate_every=1000),
        _task(clock),
    )
    assert summary["step"] == 3  # 30 s > 29.9 s after three steps


def test_no_time_budget_means_the_step_budget_alone(tmp_path, clock):
    clock.per_step = 3600.0  # an hour a step
    summary = fit(
        Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=3, max_minutes=0.0, validate_every=10), _task(clock)
    )
    assert summary["step"] == 3


def test_resume_continues_from_the_checkpoint_with_its_elapsed_time_and_best_score(tmp_path, clock):
    cfg = Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=1)
    fit(Run(tmp_path, "cpu"), cfg, _task(clock, scores=[5.0, 1.0]))  # best after step 2: 1.0
    best_before = (tmp_path / "best.safetensors").read_bytes()
    cfg.max_steps = 4
    summary = fit(Run(tmp_path, "cpu"), cfg, _task(clock, scores=[2.0, 3.0]))  # worse than 1.0: best stays
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["elapsed_s"] for r in rows] == [10.0, 20.0, 30.0, 40.0], "the second run's time adds to the first's"
    assert summary["step"] == 4 and (tmp_path / "best.safetensors").read_bytes() == best_before
    # the weights went on from the first run's: four SGD steps in all (0.5904), not two from zero (0.36)
    w, _, _ = load_weights(tmp_path / "last.safetensors", "one")
    assert float(w["weight"]) == pytest.approx(0.5904)


def test_a_resumed_run_counts_its_time_budget_from_the_first_run(tmp_path, clock):
    cfg = Cfg(out_dir=str(tmp_path), max_steps=3, validate_every=3)
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))  # 30 s used
    cfg.max_steps, cfg.max_minutes = 1000, 0.75  # 45 s in all: two more steps (40 s not over it, 50 s is)
    summary = fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    assert summary["step"] == 5 and summary["elapsed_s"] == 50.0


def test_a_finished_run_resumed_with_the_same_budget_does_nothing(tmp_path, clock):
    cfg = Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=2)
    first = fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    again = fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    assert again == first and len(_rows(tmp_path)) == 1


def test_maximize_keeps_the_highest_score(tmp_path, clock):
    task = _task(clock, scores=[0.5, 0.9, 0.7])
    task.maximize = True
    fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=3, validate_every=1), task)
    _, _, meta = load_weights(tmp_path / "best.safetensors", "one")
    assert json.loads(json.dumps(meta))["validation"]["val"] == 0.9


def test_loss_log_rounds_the_loss_only_when_asked_and_averages_the_extra_figures_per_step():
    p = loop.Progress(last_loss=0.123456, sums={"loss_beat": 3.0, "loss_downbeat": 1.0}, steps=4)
    # by hand: 3/4 and 1/4 per step; the loss as it is, or to four decimals
    assert loop.loss_log(p) == {"loss": 0.123456, "loss_beat": 0.75, "loss_downbeat": 0.25}
    assert loop.loss_log(p, digits=4) == {"loss": 0.1235, "loss_beat": 0.75, "loss_downbeat": 0.25}
    assert loop.loss_log(loop.Progress(), digits=4) == {"loss": None}  # no step yet: nothing to round
