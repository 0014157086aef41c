"""The one training loop: every model's run goes through `start` and `fit`.

A train module (transcriber.py, music_transformer.py, wavenet.py, source_filter.py) owns its
settings and its data, and hands `fit` a Task: the model, its optimizer, a sampler, the model's
batch step (from the model's module), a learning-rate schedule and a validation. The loop owns the
rest, once for all: resume (refusing a checkpoint of another model config), step and time budgets,
validation every `validate_every` steps and always at the end, best and last weights, log.jsonl,
the progress bar, and DistributedDataParallel under torchrun. Between validations the checkpoint is
also rewritten every CHECKPOINT_MINUTES of training, and a SIGTERM, SIGINT or SIGHUP stops a
one-process run at the end of its step with a checkpoint: a long run on a machine lent for hours
loses minutes of steps, not the hours since its last validation.

Data: row i of global step s is drawn with its own generator, seeded by (seed, s, i), and rank r of
W processes takes rows [r B/W, (r+1) B/W) of the global batch B (`batch_size`). The stream of
batches is therefore the same for any number of processes: each rank gets distinct rows, two
processes train on exactly the batches one process would (tests/unit/test_train_distributed.py
holds them to it), and a run resumes with another world size where it stopped, from the global
step in its checkpoint.

Under torchrun (its RANK/WORLD_SIZE/LOCAL_RANK variables set, WORLD_SIZE > 1) the processes join
one group, NCCL on GPUs and gloo on CPUs; gradients are averaged by DDP; only rank 0 validates,
writes checkpoints, weights and logs and shows the bar. Without torchrun nothing of this happens.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from w2m2w.checkpoint import load_training_state, load_weights, save_training_state, save_weights
from w2m2w.settings import check
from w2m2w.train.prefetch import Prefetcher

log = logging.getLogger(__name__)

# Only rank 0 validates, while the others wait in their next collective; a validation of a large
# held-out set (MAESTRO's) can outlast the default timeouts (10 min NCCL, 30 min gloo).
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class TrainingError(ValueError):
    """A run that cannot start as asked; str() is one line saying why and what to do."""


class Sampler(Protocol):
    def draw(self, rngs: list[np.random.Generator]) -> Any:
        """One batch with one row per generator (row i drawn from rngs[i] only)."""


CHECKPOINT_MINUTES = 10.0  # of training between checkpoints, besides those at validations


class Settings(Protocol):
    """The fields every training config has (each train module's dataclass declares them)."""

    out_dir: str
    model: Any  # the model's config dataclass
    batch_size: int  # global: split evenly over the processes
    clip_grad_norm: float
    max_steps: int
    max_minutes: float  # 0: no time limit
    validate_every: int
    seed: int
    threads: int  # 0: torch's default
    device: str


@dataclass
class Progress:
    """Training since the last validation, for the training part of a log row."""

    last_loss: float | None = None  # the last step's loss, mean over all processes
    sums: dict[str, float] = field(default_factory=dict)  # the step's extra figures, summed over steps and processes
    steps: int = 0
    seconds: float = 0.0  # training time only, validation excluded
    lr: float = 0.0


def loss_log(p: Progress, digits: int | None = None) -> dict:
    """The usual training part of a log row (Task.train_log): the last step's loss, rounded to `digits` where given,
    and each extra figure of the steps (Progress.sums) as its mean per step."""
    loss = p.last_loss if digits is None or p.last_loss is None else round(p.last_loss, digits)
    return {"loss": loss, **{k: round(v / max(p.steps, 1), 5) for k, v in p.sums.items()}}


Step = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass
class Task:
    """What one model's training hands the loop."""

    model_name: str  # in the weights' metadata: what load_weights checks
    model: nn.Module  # on the run's device
    optimizer: torch.optim.Optimizer
    sampler: Sampler
    step: Step  # (model, batch on the device) -> (loss to minimise, figures to sum for the log)
    lr: Callable[[int, float], float]  # (step, elapsed seconds) -> learning rate
    validate: Callable[[nn.Module], dict]  # the validation part of a log row (model in eval mode)
    train_log: Callable[[Progress], dict]  # the training part of a log row
    score: Callable[[dict], float]  # of a log row: best.safetensors keeps the best
    maximize: bool = False  # whether a higher score is better
    description: str = "train"  # the progress bar's
    validate_first: bool = False  # also score the untrained model at step 0
    export_extra: dict = field(default_factory=dict)  # more facts for the weights' training metadata


@dataclass
class Run:
    """This process's place in a run: the output folder, its device, its rank among `world` processes."""

    out: Path
    device: str
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # this run started the process group, so it ends it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it fills caches: rendered audio, parsed MIDI), then the others read them."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def rows(self, batch_size: int) -> range:
        """This rank's rows of a global batch."""
        n = batch_size // self.world
        return range(self.rank * n, (self.rank + 1) * n)

    def sum(self, values: list[float | torch.Tensor]) -> list[float]:
        """Sums over the processes (this process's values alone without torchrun)."""
        t = torch.stack([torch.as_tensor(v).detach().to(self._comm_device, torch.float64).reshape(()) for v in values])
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def agree(self, value: float) -> float:
        """Rank 0's value on every rank: decisions (stop now, the learning rate) must not differ between ranks."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        torch.distributed.broadcast(t, 0)
        return float(t.item())

    @property
    def _comm_device(self) -> str:
        return self.device if torch.device(self.device).type == "cuda" else "cpu"


def draw_seed(cfg: Settings) -> int:
    """The seed of what training draws (initial weights, batches, dropout): cfg.sample_seed where a
    config has one and sets it, else cfg.seed. cfg.seed alone also picks held-out data (and the
    transcriber's room bank), so a second draw of the same run must leave it as it is."""
    sample_seed = getattr(cfg, "sample_seed", None)
    return cfg.seed if sample_seed is None else int(sample_seed)


def start(cfg: Settings, model_name: str) -> Run:
    """Check the settings, set threads and seed, join torchrun's process group if there is one, and check
    that a checkpoint in out_dir (if any) is of the same model config. Call before reading any data."""
    check(cfg, "train")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(draw_seed(cfg))  # the same initial weights in every process
    out = Path(cfg.out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        check_resume(out / "checkpoint", model_name, cfg.model)
        out.mkdir(parents=True, exist_ok=True)
        return Run(out, cfg.device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.batch_size % world:
        raise TrainingError(
            f"train.batch_size={cfg.batch_size} is the global batch: it must split evenly over {world} processes"
        )
    device = cfg.device
    if torch.device(device).type == "cuda":
        device = f"cuda:{local}"  # one GPU per process, numbered on each node by torchrun
        torch.cuda.set_device(device)
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group(
            "nccl" if device.startswith("cuda") else "gloo", timeout=COLLECTIVE_TIMEOUT
        )
    run = Run(out, device, rank, world, owns)
    check_resume(out / "checkpoint", model_name, cfg.model)  # every rank: each must stop, not wait for rank 0
    if run.main:
        out.mkdir(parents=True, exist_ok=True)
    run.barrier()
    return run


def check_resume(checkpoint: Path, model_name: str, config: Any) -> None:
    """Raise TrainingError when `checkpoint` holds a model of another config than `config` (a config dataclass)."""
    if not (checkpoint / "state.json").is_file():
        return
    _, saved, _ = load_weights(checkpoint / "model.safetensors", model_name)
    diff = "; ".join(
        f"model.{key}: {there!r} there, {now!r} now" for key, there, now in config_differences(saved, config)
    )
    if diff:
        raise TrainingError(
            f"{checkpoint.parent}: holds a checkpoint of another model config ({diff}); use a new out_dir or the same model settings"
        )


def config_differences(saved: dict, config: Any) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) for each setting where the `saved` config dict and the config dataclass
    `config` differ. The saved config is read as the loaders read it, type(config)(**saved): a setting it predates
    takes its default, so a new setting whose default keeps the old behaviour does not refuse a resume. A dict
    setting is compared key by key (model.source.release_tau_octave)."""
    names = {f.name for f in fields(config)}
    out = [(k, saved[k], None) for k in sorted(set(saved) - names)]
    try:
        effective = type(config)(**{k: v for k, v in saved.items() if k in names})
    except (TypeError, ValueError) as exc:
        return [*out, ("*", saved, f"not readable as {type(config).__name__} ({exc})")]
    for name in sorted(names):
        there, now = _as_json(getattr(effective, name)), _as_json(getattr(config, name))
        if isinstance(there, dict) and isinstance(now, dict):
            out += [
                (f"{name}.{k}", there.get(k), now.get(k))
                for k in sorted(set(there) | set(now))
                if there.get(k) != now.get(k)
            ]
        elif there != now:
            out.append((name, there, now))
    return out


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(asdict(value) if is_dataclass(value) else value))


def export_trained(path: Path, model_name: str, model: nn.Module, cfg: Settings, summary: dict, **extra: Any) -> None:
    """Save `model` for inference with what produced it: the training settings (all but the model's, which
    are the weights' config), the validation summary, the hardware and any `extra` facts."""
    training = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        **extra,
        "validation": summary,
        "hardware": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__} threads={torch.get_num_threads()} device={cfg.device}".strip(),
    }
    save_weights(path, model_name, model.state_dict(), asdict(cfg.model), training)


class _StepModule(nn.Module):
    """The model and its batch step as one module, so that DDP's forward wraps the whole step."""

    def __init__(self, model: nn.Module, step: Step) -> None:
        super().__init__()
        self.model = model
        self.step = step

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.step(self.model, batch)


def init_unless_resuming(
    model: nn.Module,
    run,
    path: str | None,
    model_name: str,
    adapt: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
) -> None:
    """init_from(model, path, ...) for a run's `init_weights`, unless `path` is unset or run.out holds a checkpoint
    (the run then resumes from that, which loop.fit loads over whatever the model holds)."""
    if path and not (run.out / "checkpoint" / "state.json").is_file():
        init_from(model, path, model_name, adapt)


def init_from(
    model: nn.Module,
    path: str,
    model_name: str,
    adapt: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
) -> None:
    """Copy every tensor of the weights at `path` whose name and shape fit `model`; log what starts fresh.

    adapt(name, saved, own) may return a reshaped copy of a saved tensor whose shape does not fit
    (say a longer relative-position table), or None to leave that tensor fresh.
    """
    from w2m2w.checkpoint import load_weights

    state, _, _ = load_weights(path, model_name)
    own = model.state_dict()
    fits: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k not in own:
            continue
        if own[k].shape != v.shape and adapt is not None:
            v = adapt(k, v, own[k])
        if v is not None and own[k].shape == v.shape:
            fits[k] = v
    model.load_state_dict(fits, strict=False)
    fresh = sorted({k.split(".")[0] for k in own if k not in fits})
    log.info("initialised %d of %d tensors from %s; fresh: %s", len(fits), len(own), path, fresh or "none")


def to_device(x: Any, device: str) -> Any:
    """numpy arrays and tensors, nested in dicts, tuples and lists, as tensors on `device` (None stays None)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(v, device) for v in x)
    return x


def fit(run: Run, cfg: Settings, task: Task) -> dict:
    """Train `task` from out_dir's checkpoint (or from the start) to the step or time budget; returns the last log row.

    Writes (rank 0) out_dir/checkpoint/ (resumable; rewritten at every validation and at the end),
    out_dir/log.jsonl (one row per validation), out_dir/best.safetensors (the best score so far)
    and out_dir/last.safetensors.
    """
    training = _Training(run, cfg, task)
    task.model.train()
    if task.validate_first and not training.state["history"]:
        training.summary = training.validation()
    stop = _StopOnSignal(run.world == 1)
    try:
        training.train(stop)
    finally:
        training.prefetch.close()
        stop.restore()
    training.bar.close()
    training.wrap_up(stop.signum)
    summary = training.summary
    # a run leaves thousands of objects in reference cycles (2,500-3,500 per rank at exit under
    # tests/unit/test_train_distributed), DDP's state among them, which the collector would free only
    # at interpreter exit; gloo's resources freed that late aborted about 1 two-process run in 13
    # after its atexit handlers ("terminate called without an active exception": 6 of 80 runs of
    # that test's command; 0 of 80 with this collection)
    del training
    gc.collect()
    return finish(run, summary)


class _Training:
    """One fit(): the checkpointed state (step, elapsed time, best score, log rows), the clocks, the data, the bar."""

    def __init__(self, run: Run, cfg: Settings, task: Task) -> None:
        self.run, self.cfg, self.task = run, cfg, task
        self.ckpt = run.out / "checkpoint"
        self.state = self._resume()
        # each process its own torch RNG stream (dropout), reproducible from the step it starts at
        seeds = np.random.SeedSequence((draw_seed(cfg), self.state["step"], run.rank))
        torch.manual_seed(int(seeds.generate_state(1)[0]))
        self.stepper = _stepper(run, task)
        self.rows = run.rows(cfg.batch_size)
        self.accumulate = getattr(cfg, "accumulate", 1)  # micro-batches of batch_size per optimiser step
        self.first_step = self.state["step"]
        self.prefetch = Prefetcher(task.sampler, draw_seed(cfg), getattr(cfg, "data_workers", 0), self._key_at)
        self.t_start = time.time() - self.state["elapsed_s"]
        self.progress = Progress()
        self.t_since = time.time()
        self.bar = tqdm(
            total=cfg.max_steps,
            initial=self.state["step"],
            desc=task.description,
            dynamic_ncols=True,
            mininterval=5,
            disable=not run.main,
        )
        self.summary: dict = self.state["history"][-1] if self.state["history"] else {}

    def _resume(self) -> dict:
        """The state saved in out_dir's checkpoint (model and optimiser loaded with it), or a fresh one."""
        task = self.task
        loaded = load_training_state(self.ckpt, task.model_name, task.model, task.optimizer)
        state = {"step": 0, "elapsed_s": 0.0, "best": None, "history": []}
        if loaded:  # older checkpoints also hold sampler and RNG states: the data now follow from the step alone
            state.update({k: loaded[k] for k in state if k in loaded})
            if self.run.main:
                log.info("resumed at step %d", state["step"])
        return state

    def _key_at(self, pos: int) -> tuple[int, int, int]:
        # micro-batch j of a step holds the global rows j*batch_size.. of it: one process with
        # accumulation, or several without, draw the same rows
        step, j = divmod(pos, self.accumulate)
        shift = j * self.cfg.batch_size
        return self.first_step + step, self.rows.start + shift, self.rows.stop + shift

    def train(self, stop: _StopOnSignal) -> None:
        """Steps until the step or time budget is spent or a signal asks to stop, validating and checkpointing."""
        run, cfg, state = self.run, self.cfg, self.state
        last_checkpoint = (
            self.t_start + state["elapsed_s"]
        )  # the loop reads the clock once a step (tests count the readings)
        while state["step"] < cfg.max_steps and not stop.signum:
            now = time.time()
            elapsed = run.agree(now - self.t_start)
            if cfg.max_minutes and elapsed > cfg.max_minutes * 60:
                if run.main:
                    log.info("time budget of %.0f min reached", cfg.max_minutes)
                break
            self.step(elapsed)
            if state["step"] % cfg.validate_every == 0 or state["step"] == cfg.max_steps:
                self.summary = self.validation()
                last_checkpoint = now
            elif run.main and now - last_checkpoint > CHECKPOINT_MINUTES * 60:
                state["elapsed_s"] = now - self.t_start
                self.checkpoint()
                last_checkpoint = now

    def step(self, elapsed: float) -> None:
        """One optimiser step over `accumulate` micro-batches, at the schedule's learning rate."""
        task, progress = self.task, self.progress
        progress.lr = task.lr(self.state["step"], elapsed)
        for g in task.optimizer.param_groups:
            g["lr"] = progress.lr
        task.optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for j in range(self.accumulate):
            loss += self._micro_batch(j)
        torch.nn.utils.clip_grad_norm_(task.model.parameters(), self.cfg.clip_grad_norm)
        task.optimizer.step()
        self.state["step"] += 1
        progress.last_loss = loss
        progress.steps += 1
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{progress.last_loss:.3f}", refresh=False)

    def _micro_batch(self, j: int) -> float:
        """Forward and backward of micro-batch j of this step; its loss, mean over the processes and micro-batches."""
        run = self.run
        batch = to_device(self.prefetch.get((self.state["step"] - self.first_step) * self.accumulate + j), run.device)
        # under DDP, gradients are averaged over the processes once, at the last micro-batch
        sync = self.stepper.no_sync() if run.world > 1 and j < self.accumulate - 1 else contextlib.nullcontext()
        with sync:
            loss, figures = self.stepper(batch)
            (loss / self.accumulate).backward()
        names = list(figures)
        totals = run.sum([loss, *(figures[k] for k in names)])
        for k, v in zip(names, totals[1:]):
            self.progress.sums[k] = self.progress.sums.get(k, 0.0) + v
        return totals[0] / run.world / self.accumulate

    def validation(self) -> dict:
        """Rank 0: log a row (training since the last one, then validation), keep the best weights, checkpoint."""
        run, task, state = self.run, self.task, self.state
        row: dict = {}
        if run.main:
            self.progress.seconds = time.time() - self.t_since
            state["elapsed_s"] = time.time() - self.t_start
            row = {"step": state["step"], "elapsed_s": round(state["elapsed_s"], 1), **task.train_log(self.progress)}
            task.model.eval()
            row.update(task.validate(task.model))
            task.model.train()
            state["history"].append(row)
            with open(run.out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            self.bar.write(json.dumps(row))
            score, best = task.score(row), state["best"]
            if best is None or (score > best if task.maximize else score < best):
                state["best"] = score
                self.export(run.out / "best.safetensors", row)
            self.checkpoint()
        self.progress = Progress(lr=self.progress.lr)
        self.t_since = time.time()
        return row

    def wrap_up(self, signum: int) -> None:
        """Rank 0, after the loop: a stopped run keeps its steps for the resumed one to validate; a finished run
        scores its last weights (unless the last step was just validated) and exports them as last.safetensors."""
        run, state = self.run, self.state
        if run.main and signum:  # asked to stop: keep the steps, leave validation to the resumed run
            state["elapsed_s"] = time.time() - self.t_start
            self.checkpoint()
            log.info("stopped by signal %d at step %d; rerun the same command to resume", signum, state["step"])
        elif run.main:
            if state["step"] and (not state["history"] or state["history"][-1]["step"] != state["step"]):
                self.summary = self.validation()  # stopped by the time budget between validations
            state["elapsed_s"] = time.time() - self.t_start
            self.checkpoint()
            self.export(run.out / "last.safetensors", self.summary)

    def checkpoint(self) -> None:
        task = self.task
        save_training_state(self.ckpt, task.model_name, task.model, asdict(self.cfg.model), task.optimizer, self.state)

    def export(self, path: Path, row: dict) -> None:
        extra = dict(self.task.export_extra)
        if self.run.world > 1:
            extra["processes"] = self.run.world
        export_trained(path, self.task.model_name, self.task.model, self.cfg, row, **extra)


def _stepper(run: Run, task: Task) -> nn.Module:
    """The model and its batch step as one module, wrapped in DDP when the run has several processes."""
    stepper: nn.Module = _StepModule(task.model, task.step)
    if run.world > 1:
        cuda = torch.device(run.device).type == "cuda"
        stepper = torch.nn.parallel.DistributedDataParallel(
            stepper, device_ids=[torch.device(run.device).index] if cuda else None
        )
    return stepper


class _StopOnSignal:
    """SIGTERM, SIGINT and SIGHUP set `signum` instead of killing the run, so the loop can end its step and
    checkpoint (a signal the process ignores stays ignored); the previous handlers come back with restore(). Off (nothing installed) when `enabled` is
    false (torchrun's processes, which torchrun itself stops) or outside the main thread."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, enabled: bool):
        self.signum = 0
        self.previous: dict[int, Any] = {}
        if not enabled:
            return
        try:
            for s in self.SIGNALS:
                if signal.getsignal(s) is not signal.SIG_IGN:  # an ignored signal (nohup, `cmd &`) stays ignored
                    self.previous[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread: signals stay as they were
            self.restore()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum:  # a second signal: stop now, as the signal would have without us
            self.restore()
            signal.raise_signal(signum)
        self.signum = signum

    def restore(self) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)
        self.previous = {}


def finish(run: Run, summary: dict) -> dict:
    """Every rank returns rank 0's summary; the process group ends here if this run began it."""
    if run.world > 1:
        box = [summary]
        torch.distributed.broadcast_object_list(box, 0)
        summary = box[0]
        if run.owns_group:
            run.barrier()  # no rank ends the group while another still has a collective in flight
            torch.distributed.destroy_process_group()
    return summary
