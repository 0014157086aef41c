"""Training of the learned beat and downbeat tracker on ASAP performances; the loop is loop.py's.

    python -m w2m2w.train train=beat_tracker [train.KEY=VALUE ...]

Data: every annotated performance of the ASAP pieces under `asap_root` except the evaluation's pieces
(data/beats.py eval_pieces: scripts/eval_beats.py's tuning and held-out subsets, every performance of
them left out). A seeded `val_fraction` of the remaining pieces is held out whole for validation, which
decodes the first `val_seconds` of each of their performances (one per piece) and scores beats and
downbeats with mir_eval's F-measure. Writes out_dir/checkpoint/ (resumable), out_dir/log.jsonl,
out_dir/best.safetensors (the best mean of beat and downbeat F) and out_dir/last.safetensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from w2m2w.data.beats import Augment, BeatSampler, Performance, load_performances, split_pieces, training_pieces
from w2m2w.models.beat_tracker import MODEL_NAME, BeatTracker, BeatTrackerConfig
from w2m2w.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range, SettingsError, setting
from w2m2w.train.loop import Task, TrainingError, fit, init_unless_resuming, loss_log, start

log = logging.getLogger(__name__)


@dataclass
class BeatTrackerTrainConfig:
    """Every default of `train=beat_tracker`; conf/train/beat_tracker.yaml adds where ASAP is."""

    out_dir: str = setting("runs/train_beat_tracker", affects_output=False)
    model: BeatTrackerConfig = field(default_factory=BeatTrackerConfig)
    asap_root: str = setting(
        ""
    )  # ASAP's folder (piece folders with midi_score.mid, performances with _annotations.txt)
    cache: str = setting("cache/beats_asap.npz", affects_output=False)  # the parsed performances, kept once read
    max_pieces: int = setting(0, range=NON_NEGATIVE)  # 0: all training pieces; else the first this-many (quick runs)
    val_fraction: float = setting(0.06, range=Range(0, 1, hi_open=True))  # of the training pieces, held out whole
    split_seed: int = setting(0, range=NON_NEGATIVE)
    val_seconds: float = setting(60.0, range=POSITIVE)  # of each validation performance
    segment_seconds: float = setting(24.0, range=POSITIVE)
    # augmentation: time stretch, transposition (semitones either way), velocity scale
    stretch: list[float] = setting(default_factory=lambda: [0.8, 1.25])
    transpose: int = setting(6, range=NON_NEGATIVE)
    velocity_scale: list[float] = setting(default_factory=lambda: [0.6, 1.4])
    batch_size: int = setting(8, range=AT_LEAST_ONE)
    learning_rate: float = setting(2e-3, range=POSITIVE)
    min_lr_ratio: float = setting(0.05, range=Range(0, 1))  # cosine decay to learning_rate * this at max_steps
    clip_grad_norm: float = setting(1.0, range=POSITIVE)
    init_weights: str | None = setting(
        None
    )  # start from these weights (say the shipped tracker, to train it further); ignored once a checkpoint exists
    max_steps: int = setting(3500, range=AT_LEAST_ONE)
    max_minutes: float = setting(0.0, range=NON_NEGATIVE)
    validate_every: int = setting(250, range=AT_LEAST_ONE)
    seed: int = setting(0, range=NON_NEGATIVE)
    threads: int = setting(0, range=NON_NEGATIVE, affects_output=False)
    device: str = setting("cpu", affects_output=False)


def build_datasets(cfg: BeatTrackerTrainConfig) -> tuple[list[Performance], list[Performance]]:
    """(training, validation) performances: the training pieces of ASAP, split by piece."""
    asap = Path(cfg.asap_root).expanduser()
    if not cfg.asap_root or not asap.is_dir():
        raise TrainingError(
            f"train.asap_root={cfg.asap_root!r}: not a folder; point it at ASAP (piece folders with midi_score.mid)"
        )
    pieces = training_pieces(asap)
    if cfg.max_pieces:
        pieces = pieces[: cfg.max_pieces]
    train, val = split_pieces(pieces, cfg.val_fraction, cfg.split_seed)
    cache = Path(cfg.cache) if cfg.cache else None
    perfs = load_performances(asap, sorted(train + val), cache)
    val_names = {str(p.relative_to(asap)) for p in val}
    train_p = [p for p in perfs if p.piece not in val_names]
    # validation: one performance per piece (the first by name), its first val_seconds
    val_p: dict[str, Performance] = {}
    for p in perfs:
        if p.piece in val_names and p.piece not in val_p:
            val_p[p.piece] = p
    if not train_p:
        raise TrainingError(f"{asap}: no annotated performance to train on")
    return train_p, list(val_p.values())


def validation_scores(model: BeatTracker, perfs: list[Performance], seconds: float) -> dict[str, float]:
    """Mean beat and downbeat F-measure (mir_eval, first 5 s trimmed) over `perfs`' first `seconds`."""
    import mir_eval

    from w2m2w.beats import decode_activations

    trim = mir_eval.beat.trim_beats
    fb, fd = [], []
    for p in perfs:
        notes = p.notes[p.notes[:, 0] < seconds]
        est = decode_activations(model.predict(notes), notes=notes)
        keep = p.beats < seconds
        ref, ref_db = p.beats[keep], p.is_downbeat[keep]
        fb.append(mir_eval.beat.f_measure(trim(ref), trim(est.times)))
        fd.append(mir_eval.beat.f_measure(trim(ref[ref_db]), trim(est.downbeats)))
    return {"val/beat_f": round(float(np.mean(fb)), 4), "val/downbeat_f": round(float(np.mean(fd)), 4)} if perfs else {}


def train_beat_tracker(cfg: BeatTrackerTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir if it holds a checkpoint); returns the last validation row."""
    for key, pair in (("train.stretch", cfg.stretch), ("train.velocity_scale", cfg.velocity_scale)):
        if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
            raise SettingsError(key, list(pair), "[low, high] with 0 < low <= high")
    run = start(cfg, MODEL_NAME)
    train_p, val_p = build_datasets(cfg)
    if run.main:
        log.info("training on %d performances; validating on %d pieces", len(train_p), len(val_p))
    aug = Augment(
        stretch=(cfg.stretch[0], cfg.stretch[1]),
        transpose=cfg.transpose,
        velocity=(cfg.velocity_scale[0], cfg.velocity_scale[1]),
    )
    model = BeatTracker(cfg.model)
    init_unless_resuming(model, run, cfg.init_weights, MODEL_NAME)
    model = model.to(run.device)
    sampler = BeatSampler(train_p, cfg.segment_seconds, aug)

    def lr(step: int, _elapsed: float) -> float:
        progress = min(step / cfg.max_steps, 1.0)
        return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * progress)))

    def validate(m: BeatTracker) -> dict:
        return validation_scores(m, val_p, cfg.val_seconds)

    task = Task(
        model_name=MODEL_NAME,
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=1e-4),
        sampler=sampler,
        step=lambda m, batch: m.training_step(batch),
        lr=lr,
        validate=validate,
        train_log=loss_log,
        score=lambda row: (row["val/beat_f"] + row["val/downbeat_f"]) / 2 if "val/beat_f" in row else -row["loss"],
        maximize=True,
        description="train beat tracker",
        export_extra={
            "data": "ASAP performances minus scripts/eval_beats.py's tuning and held-out pieces",
            "train_performances": len(train_p),
        },
    )
    return fit(run, cfg, task)


train = train_beat_tracker
