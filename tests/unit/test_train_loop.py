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


def test_a_resumed_run_counts_its_time_budget_from_the_first_run(tmp_path, clock, caplog):
    import logging

    cfg = Cfg(out_dir=str(tmp_path), max_steps=3, validate_every=3)
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))  # 30 s used
    cfg.max_steps, cfg.max_minutes = 1000, 0.75  # 45 s in all: two more steps (40 s not over it, 50 s is)
    with caplog.at_level(logging.INFO, logger="w2m2w.train.loop"):
        summary = fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    assert summary["step"] == 5 and summary["elapsed_s"] == 50.0
    assert caplog.messages == ["resumed at step 3", "time budget of 1 min reached"]  # 0.75 min shown as 1


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


# --- what mutation testing of loop.py found untested (issue 29) ---


class Draws:
    """Row i of step s is default_rng((seed, s, i)).random() (prefetch.row_rngs' contract), as a (rows, 1) batch."""

    def draw(self, rngs):
        return np.array([[r.random()] for r in rngs], np.float32)


def _row(seed: int, step: int, i: int) -> float:
    return float(np.float32(np.random.default_rng((seed, step, i)).random()))


def _data_task(clock: Clock, lrs: list | None = None, figures: bool = False) -> Task:
    """w starts at 0; the loss is the batch's mean of (w - x)^2, so one SGD step is w <- w - lr * mean(2 (w - x))."""
    task = _task(clock)
    task.sampler = Draws()

    def step(m, batch):
        clock.now += clock.per_step
        loss = ((m.weight.reshape(()) - batch[:, 0]) ** 2).mean()
        return loss, ({"rows": torch.tensor(float(len(batch))), "one": torch.tensor(1.0)} if figures else {})

    def lr(s, elapsed):
        if lrs is not None:
            lrs.append((s, elapsed))
        return 0.1

    task.step, task.lr = step, lr
    task.train_log = lambda p: {"loss": p.last_loss, "sums": dict(p.sums), "seconds": p.seconds, "lr": p.lr}
    return task


def test_accumulated_micro_batches_train_as_one_batch_of_their_rows(tmp_path, clock):
    # batch_size 1 over 2 micro-batches draws rows 0 and 1 of each step, as batch_size 2 does, and (loss / 2 per
    # micro-batch) gives the same SGD step; by hand from the rows: w <- w - 0.1 * mean_i 2 (w - x_i)
    w, losses = 0.0, []
    for s in range(3):
        xs = [_row(0, s, 0), _row(0, s, 1)]
        losses.append(float(np.mean([(w - x) ** 2 for x in xs])))
        w -= 0.1 * float(np.mean([2 * (w - x) for x in xs]))
    for name, batch, accumulate in (("one", 2, 1), ("acc", 1, 2)):
        out = tmp_path / name
        out.mkdir()
        cfg = Cfg(out_dir=str(out), batch_size=batch, max_steps=3, validate_every=1)
        cfg.accumulate = accumulate
        rows = fit(Run(out, "cpu"), cfg, _data_task(clock)) and _rows(out)
        assert [r["val"] for r in rows][-1] == pytest.approx(w, rel=1e-5), name
        assert [r["loss"] for r in rows] == pytest.approx(losses, rel=1e-5), name


def test_a_resumed_accumulating_run_draws_the_rows_of_its_steps(tmp_path, clock):
    # resumed at step 2, micro-batch j of step s still draws row j of step s (not of step s - 2)
    w = 0.0
    for s in range(4):
        xs = [_row(0, s, 0), _row(0, s, 1)]
        w -= 0.1 * float(np.mean([2 * (w - x) for x in xs]))
    cfg = Cfg(out_dir=str(tmp_path), batch_size=1, max_steps=2, validate_every=1)
    cfg.accumulate = 2
    fit(Run(tmp_path, "cpu"), cfg, _data_task(clock))
    cfg.max_steps = 4
    assert fit(Run(tmp_path, "cpu"), cfg, _data_task(clock))["val"] == pytest.approx(w, rel=1e-5)


def test_the_log_row_has_the_figures_summed_since_the_last_validation_and_the_schedule_sees_step_and_time(
    tmp_path, clock
):
    lrs: list = []
    cfg = Cfg(out_dir=str(tmp_path), batch_size=2, max_steps=3, validate_every=2)
    fit(Run(tmp_path, "cpu"), cfg, _data_task(clock, lrs, figures=True))
    rows = _rows(tmp_path)
    # two steps of 2 rows, then one: the figures are sums over the steps since the last row
    assert [r["sums"] for r in rows] == [{"rows": 4.0, "one": 2.0}, {"rows": 2.0, "one": 1.0}]
    assert [r["seconds"] for r in rows] == [20.0, 10.0] and [r["lr"] for r in rows] == [0.1, 0.1]
    assert lrs == [(0, 0.0), (1, 10.0), (2, 20.0)]  # the step about to be taken, the seconds trained before it


def test_a_tie_keeps_the_first_best(tmp_path, clock):
    for maximize in (False, True):
        out = tmp_path / str(maximize)
        out.mkdir()
        task = _task(clock, scores=[3.0, 1.0, 1.0, 2.0] if not maximize else [1.0, 3.0, 3.0, 2.0])
        task.maximize = maximize
        fit(Run(out, "cpu"), Cfg(out_dir=str(out), max_steps=4, validate_every=1), task)
        _, _, meta = load_weights(out / "best.safetensors", "one")
        assert meta["validation"]["step"] == 2, maximize


def test_checkpoints_by_training_time_between_validations_and_after_a_resume(tmp_path, clock, monkeypatch):
    saved: list[tuple[int, float]] = []
    real = loop.save_training_state
    monkeypatch.setattr(
        loop,
        "save_training_state",
        lambda d, name, m, c, o, state: (
            saved.append((state["step"], state["elapsed_s"])),
            real(d, name, m, c, o, state),
        ),
    )
    monkeypatch.setattr(loop, "CHECKPOINT_MINUTES", 0.5)
    cfg = Cfg(out_dir=str(tmp_path), max_steps=10, validate_every=100)
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    # the clock is read before each step (10 s each): before step k (1-based) it reads 10 (k - 1) s; a checkpoint
    # when that is more than 30 s past the last one (0 s): before step 5 (40 s, saved at step 5), then before
    # step 9 (80 s); step 10 is the last: its validation checkpoints, and the end again
    assert saved == [(5, 40.0), (9, 80.0), (10, 100.0), (10, 100.0)]
    saved.clear()
    cfg.max_steps = 15
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    # resumed at 100 s: the interval counts from the resume, so before step 15 (140 s) but not before step 14 (130 s)
    assert saved == [(15, 150.0), (15, 150.0)]


def test_validate_first_scores_the_untrained_model_once(tmp_path, clock):
    task = _task(clock)
    task.validate_first = True
    cfg = Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=2)
    fit(Run(tmp_path, "cpu"), cfg, task)
    cfg.max_steps = 4
    resumed = _task(clock)
    resumed.validate_first = True
    fit(Run(tmp_path, "cpu"), cfg, resumed)
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [0, 2, 4] and rows[0]["val"] == 0.0  # w = 0 untrained


def test_export_records_the_training_settings_the_summary_and_the_extra_facts(tmp_path, clock):
    task = _task(clock)
    task.export_extra = {"data": "tiny"}
    summary = fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=1, validate_every=1), task)
    _, config, meta = load_weights(tmp_path / "last.safetensors", "one")
    assert config == {"size": 1} and meta["validation"] == summary and meta["data"] == "tiny"
    assert (
        meta["config"]["max_steps"] == 1
        and meta["config"]["out_dir"] == str(tmp_path)
        and "model" not in meta["config"]
    )
    assert (
        "processes" not in meta
        and f"torch {torch.__version__}" in meta["hardware"]
        and "device=cpu" in meta["hardware"]
    )


@pytest.fixture()
def own_handlers():
    """SIGTERM recorded by the test's own handler (so a loop that failed to catch it cannot kill pytest); SIGHUP
    ignored, as under nohup. Both restored afterwards."""
    import signal

    got: list[int] = []
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    handler = lambda signum, frame: got.append(signum)  # noqa: E731
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    yield handler, got
    for s, h in before.items():
        signal.signal(s, h)


def test_a_signal_stops_the_run_after_its_step_with_a_checkpoint_and_the_resumed_run_validates(
    tmp_path, clock, own_handlers, caplog
):
    import logging
    import signal

    handler, got = own_handlers
    task = _task(clock)
    inner, seen = task.step, []

    def step(m, batch):
        seen.append((signal.getsignal(signal.SIGTERM) is not handler, signal.getsignal(signal.SIGHUP)))
        if len(seen) == 2:
            signal.raise_signal(signal.SIGTERM)
        return inner(m, batch)

    task.step = step
    cfg = Cfg(out_dir=str(tmp_path), max_steps=100, validate_every=100)
    with caplog.at_level(logging.INFO, logger="w2m2w.train.loop"):
        assert fit(Run(tmp_path, "cpu"), cfg, task) == {}  # nothing validated
    assert caplog.messages == [f"stopped by signal {int(signal.SIGTERM)} at step 2; rerun the same command to resume"]
    assert seen == [(True, signal.SIG_IGN)] * 2  # SIGTERM caught by the loop, the ignored SIGHUP left ignored
    assert got == [] and signal.getsignal(signal.SIGTERM) is handler  # the test's handler is back
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and state["elapsed_s"] == 20.0  # the step under way when the signal came was finished
    assert not (tmp_path / "log.jsonl").exists() and not (tmp_path / "last.safetensors").exists()
    cfg.max_steps, cfg.validate_every = 4, 1
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    assert [r["step"] for r in _rows(tmp_path)] == [3, 4]
    w, _, _ = load_weights(tmp_path / "last.safetensors", "one")
    assert float(w["weight"]) == pytest.approx(0.5904)  # four steps in all (see the step budget's test)


def test_a_second_signal_goes_to_the_handler_there_was_before(own_handlers):
    import signal

    handler, got = own_handlers
    stop = loop._StopOnSignal(True)
    signal.raise_signal(signal.SIGTERM)
    assert stop.signum == signal.SIGTERM and got == []
    signal.raise_signal(signal.SIGTERM)  # the second: handed on (a default handler would end the process)
    assert got == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is handler
    stop.restore()
    assert signal.getsignal(signal.SIGTERM) is handler


def test_signals_are_left_alone_when_disabled_or_off_the_main_thread(own_handlers):
    import signal
    import threading

    handler, _ = own_handlers
    assert loop._StopOnSignal(False).previous == {} and signal.getsignal(signal.SIGTERM) is handler
    made = []
    t = threading.Thread(target=lambda: made.append(loop._StopOnSignal(True)))
    t.start()
    t.join()
    assert made[0].previous == {} and made[0].signum == 0 and signal.getsignal(signal.SIGTERM) is handler


def _draws_of(out, clock, cfg) -> list[float]:
    """The torch random numbers (dropout's stream) a run draws, one per step."""
    task, got = _task(clock), []
    inner = task.step
    task.step = lambda m, b: (got.append(float(torch.rand(()))), inner(m, b))[1]
    fit(Run(out, "cpu"), cfg, task)
    return got


def test_the_dropout_stream_follows_the_seed_and_the_step_a_run_starts_at(tmp_path, clock):
    import shutil

    def cfg(out, **kw):
        out.mkdir(exist_ok=True)
        return Cfg(out_dir=str(out), validate_every=100, **kw)

    fresh = _draws_of(tmp_path / "a", clock, cfg(tmp_path / "a", max_steps=4))
    assert _draws_of(tmp_path / "b", clock, cfg(tmp_path / "b", max_steps=4)) == fresh  # reproducible
    other = _draws_of(tmp_path / "c", clock, cfg(tmp_path / "c", max_steps=4, seed=1))
    assert all(x != y for x, y in zip(other, fresh))
    # a run resumed at step 2 draws a stream of its own (not steps 0-1's numbers again), the same on every resume
    shutil.copytree(tmp_path / "c", tmp_path / "d")
    resumed = _draws_of(tmp_path / "c", clock, cfg(tmp_path / "c", max_steps=6, seed=1))
    assert resumed == _draws_of(tmp_path / "d", clock, cfg(tmp_path / "d", max_steps=6, seed=1))
    assert len(resumed) == 2 and all(x not in other for x in resumed)


def _recording(inner, got: list):
    """The step `inner`, recording each batch's first value and a torch random number drawn at the step."""

    def step(m, b):
        got.append((float(b[0, 0]), float(torch.rand(()))))
        return inner(m, b)

    return step


def test_sample_seed_draws_the_batches_and_the_dropout_stream_in_place_of_seed(tmp_path, clock):
    @dataclass
    class Sampled(Cfg):
        sample_seed: int | None = None

    seen: dict[str, list] = {}
    for name, kw in (("seed", {"seed": 1}), ("sample", {"seed": 0, "sample_seed": 1})):
        out = tmp_path / name
        out.mkdir()
        cfg = Sampled(out_dir=str(out), max_steps=1, validate_every=1, **kw)
        assert loop.draw_seed(cfg) == 1
        task, got = _data_task(clock), seen.setdefault(name, [])
        task.step = _recording(task.step, got)
        fit(Run(out, "cpu"), cfg, task)
        assert got[0][0] == _row(1, 0, 0)  # row 0 of step 0 drawn with seed 1
    assert seen["sample"][0][1] == seen["seed"][0][1]  # and the same dropout stream
    assert loop.draw_seed(Sampled(seed=3)) == 3 and loop.draw_seed(Cfg(seed=2)) == 2


def test_start_sets_threads_and_seed_makes_out_dir_and_refuses_another_model_config(tmp_path, clock, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    threads = torch.get_num_threads()
    try:
        run = loop.start(Cfg(out_dir=str(tmp_path / "new" / "run"), threads=2, seed=3), "one")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    drawn = torch.rand(3)
    assert torch.equal(drawn, torch.rand(3, generator=torch.Generator().manual_seed(3)))
    assert (run.out, run.device, run.rank, run.world, run.main) == (tmp_path / "new" / "run", "cpu", 0, 1, True)
    assert (tmp_path / "new" / "run").is_dir()
    fit(run, Cfg(out_dir=str(run.out), max_steps=1, validate_every=1), _task(clock))
    loop.start(Cfg(out_dir=str(run.out)), "one")  # the same config resumes
    with pytest.raises(loop.TrainingError, match=r"model\.size: 1 there, 2 now"):
        loop.start(Cfg(out_dir=str(run.out), model=One(size=2)), "one")


def test_one_process_run_helpers(tmp_path):
    run = Run(tmp_path, "cpu")
    assert run.rows(4) == range(0, 4) and Run(tmp_path, "cpu", rank=1, world=2).rows(6) == range(3, 6)
    assert not Run(tmp_path, "cpu", rank=1, world=2).main
    assert run.sum([1, torch.tensor(2.5)]) == [1.0, 2.5] and run.agree(0.25) == 0.25
    with run.main_first():
        pass  # one process: no barrier to wait at
    assert loop.finish(run, {"step": 3}) == {"step": 3}
    moved = loop.to_device({"a": np.zeros(2), "b": (torch.ones(1), [np.ones(1), None]), "c": 3}, "cpu")
    assert torch.equal(moved["a"], torch.zeros(2, dtype=torch.float64)) and moved["c"] == 3
    assert isinstance(moved["b"], tuple) and isinstance(moved["b"][1], list) and moved["b"][1][1] is None
    assert torch.equal(moved["b"][0], torch.ones(1)) and torch.equal(
        moved["b"][1][0], torch.ones(1, dtype=torch.float64)
    )


def test_init_from_copies_what_fits_adapts_what_it_can_and_logs_what_starts_fresh(tmp_path, caplog):
    import logging

    from w2m2w.checkpoint import save_weights

    saved = {
        "0gone.weight": torch.full((1, 1), 9.0),  # not in the model (before and after the others in any order)
        "a.weight": torch.tensor([[1.0, 2.0]]),
        "b.weight": torch.tensor([[3.0, 4.0, 5.0]]),
        "zgone.weight": torch.full((1, 1), 9.0),
    }
    save_weights(tmp_path / "w.safetensors", "one", saved, {}, {})

    def model() -> nn.Module:
        m = nn.Module()
        m.a, m.b, m.c = nn.Linear(2, 1, bias=False), nn.Linear(4, 1, bias=False), nn.Linear(1, 1, bias=False)
        for p in m.parameters():
            nn.init.zeros_(p)
        return m

    path = str(tmp_path / "w.safetensors")
    plain = model()
    with caplog.at_level(logging.INFO, logger="w2m2w.train.loop"):
        loop.init_from(plain, path, "one")
    assert plain.a.weight.tolist() == [[1.0, 2.0]] and plain.b.weight.tolist() == [[0.0] * 4]
    assert plain.c.weight.tolist() == [[0.0]]
    assert f"initialised 1 of 3 tensors from {path}; fresh: ['b', 'c']" in caplog.messages

    calls = []

    def pad(name, there, own):  # b's saved (1, 3) grows to the model's (1, 4) with a zero; a wrong shape is left out
        calls.append((name, there.shape, own.shape))
        return torch.cat([there, torch.zeros(1, 1)], 1) if name == "b.weight" else torch.zeros(2, 2)

    adapted = model()
    adapted.c = nn.Linear(2, 1, bias=False)  # saved has no c: adapt is not asked about it
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="w2m2w.train.loop"):
        loop.init_from(adapted, path, "one", adapt=pad)
    assert adapted.b.weight.tolist() == [[3.0, 4.0, 5.0, 0.0]] and adapted.a.weight.tolist() == [[1.0, 2.0]]
    assert calls == [("b.weight", (1, 3), (1, 4))]
    assert f"initialised 2 of 3 tensors from {path}; fresh: ['c']" in caplog.messages
    refused = model()
    loop.init_from(refused, path, "one", adapt=lambda name, there, own: None)
    assert refused.b.weight.tolist() == [[0.0] * 4]
    wrong = model()
    loop.init_from(wrong, path, "one", adapt=lambda name, there, own: torch.zeros(2, 2))  # still not b's shape
    assert wrong.b.weight.tolist() == [[0.0] * 4] and wrong.a.weight.tolist() == [[1.0, 2.0]]
    whole = nn.Module()
    whole.a = nn.Linear(2, 1, bias=False)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="w2m2w.train.loop"):
        loop.init_from(whole, path, "one")
    assert caplog.messages == [f"initialised 1 of 1 tensors from {path}; fresh: none"]


def test_start_under_torchrun_reads_its_variables_joins_the_group_and_checks_on_every_rank(
    tmp_path, clock, monkeypatch
):
    # torchrun's contract: WORLD_SIZE, RANK and LOCAL_RANK (the GPU on this node) in the environment; the group is
    # recorded here instead of joined (a one-process test cannot join a group of two)
    from datetime import timedelta

    from w2m2w.settings import SettingsError, setting

    calls: list = []
    initialized = [False]
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: initialized[0])
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda backend, timeout=None: calls.append((backend, timeout))
    )
    monkeypatch.setattr(torch.distributed, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")

    out = tmp_path / "a" / "run"
    run = loop.start(Cfg(out_dir=str(out), batch_size=4), "one")
    assert run == Run(out, "cpu", rank=1, world=2, owns_group=True) and not run.main
    assert calls == [("gloo", timedelta(hours=2)), "barrier"] and not out.exists()  # rank 0 makes out_dir
    calls.clear()
    monkeypatch.setenv("RANK", "0")
    run = loop.start(Cfg(out_dir=str(out), batch_size=4, device="cuda"), "one")
    assert run == Run(out, "cuda:1", rank=0, world=2, owns_group=True) and out.is_dir()
    assert calls == [("set_device", "cuda:1"), ("nccl", timedelta(hours=2)), "barrier"]
    calls.clear()
    monkeypatch.delenv("LOCAL_RANK")
    initialized[0] = True  # a group someone else started: joined as it is, and not ended by this run
    assert loop.start(Cfg(out_dir=str(out), batch_size=4, device="cuda"), "one") == Run(out, "cuda:0", 0, 2, False)
    assert calls == [("set_device", "cuda:0"), "barrier"]
    with pytest.raises(loop.TrainingError, match=r"train\.batch_size=3 is the global batch: it must split evenly"):
        loop.start(Cfg(out_dir=str(out), batch_size=3), "one")

    fit(Run(out, "cpu"), Cfg(out_dir=str(out), max_steps=1, validate_every=1), _task(clock))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(loop.TrainingError, match=r"model\.size: 1 there, 2 now"):  # every rank refuses
        loop.start(Cfg(out_dir=str(out), batch_size=4, model=One(size=2)), "one")

    @dataclass
    class Checked(Cfg):
        validate_every: int = setting(2, range=loop_range())

    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(SettingsError, match=r"^train\.validate_every=0 is not allowed"):
        loop.start(Checked(out_dir=str(tmp_path / "x"), validate_every=0), "one")


def loop_range():
    from w2m2w.settings import Range

    return Range(lo=1)


@dataclass
class Two:
    size: int = 1
    depth: int = 1


@dataclass
class Nested:
    inner: One = field(default_factory=One)
    source: dict = field(default_factory=lambda: {"a": 1})


@dataclass
class Needs:
    n: int


def test_config_differences_by_hand():
    assert loop.config_differences({"inner": {"size": 1}, "source": {"a": 1}}, Nested()) == []
    assert loop.config_differences({"inner": {"size": 1}}, Nested(inner=One(size=2))) == [("inner.size", 1, 2)]
    # a key on one side of a dict setting only
    assert loop.config_differences({"source": {"a": 1, "b": 2}}, Nested()) == [("source.b", 2, None)]
    assert loop.config_differences({}, Nested(source={"a": 1, "c": 3})) == [("source.c", None, 3)]
    assert loop.config_differences({"source": {"a": 1}}, Nested(source=3)) == [("source", {"a": 1}, 3)]
    (got,) = loop.config_differences({}, Needs(n=1))
    assert got[:2] == ("*", {}) and got[2].startswith("not readable as Needs (") and "'n'" in got[2]


def test_every_difference_is_named_in_the_refusal(tmp_path, clock):
    fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), model=Two(), max_steps=1, validate_every=1), _task(clock))
    with pytest.raises(loop.TrainingError) as err:
        loop.check_resume(tmp_path / "checkpoint", "one", Two(size=2, depth=3))
    assert str(err.value) == (
        f"{tmp_path}: holds a checkpoint of another model config (model.depth: 1 there, 3 now; model.size: 1 there, "
        "2 now); use a new out_dir or the same model settings"
    )


def test_the_hardware_line(tmp_path, clock, monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "m1")
    for processor, words in (("chip", "m1 chip"), ("", "m1 ")):
        monkeypatch.setattr(platform, "processor", lambda p=processor: p)
        loop.export_trained(tmp_path / "w.safetensors", "one", nn.Linear(1, 1), Cfg(), {})
        _, _, meta = load_weights(tmp_path / "w.safetensors", "one")
        assert meta["hardware"] == f"{words} torch {torch.__version__} threads={torch.get_num_threads()} device=cpu"


def test_data_workers_reach_the_prefetcher_and_default_to_none(tmp_path, clock, monkeypatch):
    from w2m2w.train.prefetch import Prefetcher

    asked: list[int] = []

    def spy(sampler, seed, workers, key_at):  # records the workers asked for, draws in place
        asked.append(workers)
        return Prefetcher(sampler, seed, 0, key_at)

    monkeypatch.setattr(loop, "Prefetcher", spy)
    cfg = Cfg(out_dir=str(tmp_path), max_steps=1, validate_every=1)
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    cfg.data_workers, cfg.max_steps = 3, 2
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    assert asked == [0, 3]


def test_the_progress_bar_counts_the_steps_of_the_budget_from_where_the_run_resumed(tmp_path, clock, capsys):
    task = _task(clock)
    task.description = "tiny"
    cfg = Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=2)
    fit(Run(tmp_path, "cpu"), cfg, task)
    out, err = capsys.readouterr()
    assert "tiny" in err and "2/2" in err
    assert json.dumps(_rows(tmp_path)[0]) in out.splitlines()  # each log row is shown too
    cfg.max_steps = 4
    fit(Run(tmp_path, "cpu"), cfg, _task(clock))
    _, err = capsys.readouterr()
    assert "2/4" in err and "4/4" in err and "0/4" not in err  # resumed at 2 of 4, two steps on


def test_a_checkpoint_as_soon_as_the_interval_is_passed(tmp_path, clock, monkeypatch):
    saved: list[tuple[int, float]] = []
    real = loop.save_training_state
    monkeypatch.setattr(
        loop,
        "save_training_state",
        lambda d, name, m, c, o, state: (
            saved.append((state["step"], state["elapsed_s"])),
            real(d, name, m, c, o, state),
        ),
    )
    monkeypatch.setattr(loop, "CHECKPOINT_MINUTES", 0.5)
    clock.per_step = 15.2
    fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=4, validate_every=100), _task(clock))
    # before step 3 the clock reads 30.4 s, just past 30 s: saved there; step 4 is the last (validated, then the end)
    assert [s for s, _ in saved] == [3, 4, 4] and [e for _, e in saved] == pytest.approx([30.4, 60.8, 60.8])


def test_the_final_checkpoint_counts_the_last_validations_time(tmp_path, clock):
    task = _task(clock)
    inner = task.validate
    task.validate = lambda m: (setattr(clock, "now", clock.now + 5.0), inner(m))[1]  # each validation takes 5 s
    fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=2), task)
    # two steps of 10 s, then the validation's 5 s: the row was written at 20 s, the end's checkpoint holds 25 s
    assert _rows(tmp_path)[0]["elapsed_s"] == 20.0
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["elapsed_s"] == 25.0


def test_loss_log_of_one_step_is_that_steps_figures_to_five_decimals():
    p = loop.Progress(last_loss=0.5, sums={"x": 0.1234567}, steps=1)
    assert loop.loss_log(p) == {"loss": 0.5, "x": 0.12346}  # by hand: 0.1234567 / 1, to 5 decimals


def test_to_device_moves_every_array_and_tensor_and_keeps_the_containers(tmp_path):
    batch = {"a": np.zeros(2, np.float32), "b": (torch.ones(1), [np.ones(1)]), "c": None, "d": 3}
    got = loop.to_device(batch, "meta")  # a device that is not the CPU, present on every machine
    assert got["a"].device.type == "meta" and got["a"].shape == (2,)
    assert isinstance(got["b"], tuple) and isinstance(got["b"][1], list)
    assert got["b"][0].device.type == "meta" and got["b"][1][0].device.type == "meta"
    assert got["c"] is None and got["d"] == 3


def test_the_schedules_learning_rate_is_the_one_each_step_uses(tmp_path, clock):
    # the optimiser starts at lr 0.1 (_task); the schedule says 0.05 then 0.2. By hand: w <- w - lr * 2 (w - 1)
    task = _task(clock)
    task.lr = lambda s, elapsed: [0.05, 0.2][s]
    fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=2), task)
    w = 0.0
    for lr in (0.05, 0.2):
        w -= lr * 2 * (w - 1)
    assert _rows(tmp_path)[-1]["val"] == pytest.approx(w)  # 0.28, not 0.36 (lr 0.1 twice)


def test_the_log_row_gives_the_elapsed_time_to_a_tenth_of_a_second(tmp_path, clock):
    clock.per_step = 10.04
    fit(Run(tmp_path, "cpu"), Cfg(out_dir=str(tmp_path), max_steps=2, validate_every=2), _task(clock))
    (row,) = _rows(tmp_path)
    assert row["elapsed_s"] == 20.1 and isinstance(row["elapsed_s"], float)  # 2 x 10.04 = 20.08 s
