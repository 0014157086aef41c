"""Training data and settings of the Music Transformer on folders of MIDI; the loop is loop.py's.

    python -m w2m2w.train train=music_transformer [train.model.position=learned] [train.KEY=VALUE ...]

Writes out_dir/checkpoint/ (resumable), out_dir/log.jsonl (one line per validation),
out_dir/best.safetensors (lowest validation NLL per event), out_dir/last.safetensors, and the split:
out_dir/split.json and out_dir/val_files.txt (the held-out files, one per line). Validation pieces are never trained on: the split
is by piece (composition), not by file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from w2m2w.data.midi_corpus import WindowSampler, load_corpus, piece_names, split_by_piece
from w2m2w.finding import MIDI_EXTENSIONS, InputError, find_corpus
from w2m2w.generation import piece_tokens
from w2m2w.models.music_transformer import (
    MODEL_NAME,
    MusicTransformer,
    MusicTransformerConfig,
    relative_embeddings,
    sequence_nll,
)
from w2m2w.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range, setting
from w2m2w.train.loop import Progress, Task, TrainingError, fit, init_unless_resuming, start

log = logging.getLogger(__name__)


@dataclass
class MusicTransformerTrainConfig:
    """Every default of `train=music_transformer`; conf/train/music_transformer.yaml adds only where the team's MIDI is.

    The model's defaults (models/music_transformer.py) are sized for about an hour on 2 CPU cores;
    that budget is bound by compute, not data, so every window is new (no dropout)."""

    out_dir: str = setting("runs/train_music_transformer", affects_output=False)
    model: MusicTransformerConfig = field(default_factory=MusicTransformerConfig)
    # data: folders (recursive) or globs of MIDI files
    midi_dirs: list[str] = setting(default_factory=list)
    max_files: int = setting(0, range=NON_NEGATIVE)  # 0: all; else a fixed subset (quick runs)
    # each midi_dirs entry's share of the training windows (one per entry); empty: in proportion to
    # their notes (every note start equally likely), which lets POP909's many short songs weigh in
    midi_dir_shares: list[float] = setting(default_factory=list)
    val_fraction: float = setting(
        0.05, range=Range(0, 1, hi_open=True)
    )  # of pieces (ASAP: composer + title from metadata.csv), never files
    split_seed: int = setting(0, range=NON_NEGATIVE)
    val_pieces: int = setting(24, range=AT_LEAST_ONE)  # validation reads at most this many pieces...
    val_events: int = setting(
        1024, range=AT_LEAST_ONE
    )  # ...and the first this-many events of each, so it takes bounded time on CPU
    # the paper's augmentation: +-max_transpose semitones, time stretched by stretch_min..stretch_max
    max_transpose: int = setting(3, range=NON_NEGATIVE)
    stretch_min: float = setting(0.95, range=POSITIVE)
    stretch_max: float = setting(1.05, range=POSITIVE)
    # optimisation
    batch_size: int = setting(8, range=AT_LEAST_ONE)  # global: split over the processes under torchrun
    accumulate: int = setting(
        1, range=AT_LEAST_ONE
    )  # micro-batches of batch_size per optimiser step (a larger effective batch)
    bf16: bool = setting(False)  # bfloat16 autocast of the network (the loss stays float32)
    learning_rate: float = setting(1e-3, range=POSITIVE)
    warmup_steps: int = setting(100, range=NON_NEGATIVE)
    min_lr_ratio: float = setting(
        0.1, range=Range(0, 1)
    )  # cosine decay to learning_rate * this at the end of the budget
    weight_decay: float = setting(0.01, range=NON_NEGATIVE)
    clip_grad_norm: float = setting(1.0, range=POSITIVE)
    max_steps: int = setting(100000, range=AT_LEAST_ONE)
    max_minutes: float = setting(
        60.0, range=NON_NEGATIVE
    )  # 0: no time limit; else the schedule ends with whichever budget runs out first
    validate_every: int = setting(100, range=AT_LEAST_ONE)
    seed: int = setting(0, range=NON_NEGATIVE)
    # start from these weights (a fresh run only; a checkpoint in out_dir wins). A longer max_len than
    # theirs is allowed: the relative table grows by repeating its farthest distance, which is what the
    # shorter model already used for those distances, so training starts from the same function
    init_weights: str | None = setting(None)
    threads: int = setting(0, range=NON_NEGATIVE, affects_output=False)  # 0: torch's default
    device: str = setting("cpu", affects_output=False)


def _subset(files: list[Path], n: int) -> list[Path]:
    key = lambda f: hashlib.sha1(str(f).encode()).hexdigest()  # noqa: E731
    return sorted(sorted(files, key=key)[:n]) if n else files


def build_data(
    cfg: MusicTransformerTrainConfig, out: Path, write: bool = True
) -> tuple[list[np.ndarray], list[torch.Tensor], dict, list[int]]:
    """Training pieces (note lists), validation sequences (BOS + events), a description and the
    midi_dirs entry each training piece came from; with `write`, the split as out/split.json and
    out/val_files.txt."""
    if cfg.midi_dir_shares and len(cfg.midi_dir_shares) != len(cfg.midi_dirs):
        raise TrainingError(
            f"train.midi_dir_shares has {len(cfg.midi_dir_shares)} entries for {len(cfg.midi_dirs)} train.midi_dirs: give one per entry, or none"
        )
    try:
        found = find_corpus(list(cfg.midi_dirs), MIDI_EXTENSIONS, "MIDI")
        entry_of: dict[Path, int] = {}
        for i, spec in enumerate(cfg.midi_dirs):
            for f in find_corpus([spec], MIDI_EXTENSIONS, "MIDI"):
                entry_of.setdefault(f, i)
    except InputError as e:
        raise TrainingError(f"train.midi_dirs: {e}") from None
    if not found:
        raise TrainingError("no MIDI files: train.midi_dirs is empty")
    keep = set(_subset(list(found), cfg.max_files))
    pieces = piece_names({f: r for f, r in found.items() if f in keep})
    train_files, val_files = split_by_piece(pieces, cfg.val_fraction, cfg.split_seed)
    if not train_files:
        raise TrainingError("no training files left after the validation split: lower train.val_fraction")
    if write:
        # the held-out files, for `python -m w2m2w.evaluate task=generation input=OUT_DIR/val_files.txt`
        (out / "val_files.txt").write_text("".join(f"{f}\n" for f in val_files))
        (out / "split.json").write_text(
            json.dumps(
                {
                    "val_fraction": cfg.val_fraction,
                    "split_seed": cfg.split_seed,
                    "train": [str(f) for f in train_files],
                    "val": [str(f) for f in val_files],
                },
                indent=1,
            )
        )
    loaded = load_corpus(train_files, out / "cache")
    train = [n for _, n in loaded]
    corpus = [entry_of.get(f, 0) for f, _ in loaded]
    # one performance per validation piece first, in a fixed order, so the cap keeps variety
    order = sorted(val_files, key=lambda f: (hashlib.sha1(pieces[f].encode()).hexdigest(), str(f)))
    firsts = list({pieces[f]: f for f in reversed(order)}.values())[::-1]
    chosen = (firsts + [f for f in order if f not in set(firsts)])[: cfg.val_pieces]
    val = [
        torch.from_numpy(piece_tokens(n)[: cfg.val_events + 1])
        for _, n in load_corpus(chosen, out / "cache", progress=False)
    ]
    desc = {
        "files": len(pieces),
        "pieces": len(set(pieces.values())),
        "train_files": len(train_files),
        "val_files": len(val_files),
        "val_pieces": len({pieces[f] for f in val_files}),
        "val_scored_files": len(val),
        "train_notes": int(sum(len(n) for n in train)),
    }
    return train, val, desc, corpus


def validate(model: MusicTransformer, val: list[torch.Tensor], device: str) -> float:
    """Mean NLL per event (nats) over the validation sequences."""
    total, count = 0.0, 0
    for toks in val:
        nll, n = sequence_nll(model, toks.to(device), model.cfg.max_len)
        total, count = total + nll, count + n
    return total / max(count, 1)


def learning_rate(cfg: MusicTransformerTrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, then cosine decay over the step or time budget, whichever is nearer its end."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.max_steps - cfg.warmup_steps, 1)
    if cfg.max_minutes:
        progress = max(progress, elapsed_s / (cfg.max_minutes * 60))
    progress = min(progress, 1.0)
    floor = cfg.learning_rate * cfg.min_lr_ratio
    return floor + (cfg.learning_rate - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def longer_relative_table(name: str, saved: torch.Tensor, own: torch.Tensor) -> torch.Tensor | None:
    """A saved (H, R, Dh) relative table grown to own's (H, R', Dh), R' > R, by clipping distances as the model does."""
    if (
        name.endswith(".rel")
        and saved.dim() == 3
        and saved.shape[::2] == own.shape[::2]
        and saved.shape[1] < own.shape[1]
    ):
        return relative_embeddings(saved, own.shape[1])
    return None


def train(cfg: MusicTransformerTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir when it holds a checkpoint); returns the last validation row."""
    run = start(cfg, MODEL_NAME)
    with run.main_first():  # rank 0 parses the MIDI into out_dir/cache and writes the split, the others read the cache
        train_pieces, val, data_desc, corpus = build_data(cfg, run.out, write=run.main)
    if run.main:
        log.info("data: %s", data_desc)
    model = MusicTransformer(cfg.model).to(run.device)
    init_unless_resuming(model, run, cfg.init_weights, MODEL_NAME, adapt=longer_relative_table)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.endswith(".rel")]
    other = [p for n, p in model.named_parameters() if p.dim() < 2 or n.endswith(".rel")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(0.9, 0.98),
    )
    sampler = WindowSampler(
        train_pieces,
        cfg.model.max_len + 1,
        seed=cfg.seed,
        max_transpose=cfg.max_transpose,
        stretch=(cfg.stretch_min, cfg.stretch_max),
        corpus=corpus,
        corpus_shares=list(cfg.midi_dir_shares) or None,
    )

    def train_log(p: Progress) -> dict:
        return {
            "train_nll": round(p.sums.get("nll", 0.0) / max(p.sums.get("events", 0.0), 1), 4),
            "s_per_step": round(p.seconds / max(p.steps, 1), 3),  # training only: taken before validating
            "lr": round(p.lr, 7),
        }

    task = Task(
        model_name=MODEL_NAME,
        model=model,
        optimizer=opt,
        sampler=sampler,
        step=lambda m, tokens: m.training_step(tokens, cfg.bf16),
        lr=lambda step, elapsed: learning_rate(cfg, step, elapsed),
        validate=lambda m: {"val_nll": round(validate(m, val, run.device), 4) if val else None},
        train_log=train_log,
        score=lambda row: row["val_nll"] if row["val_nll"] is not None else row["train_nll"],
        description=f"train music transformer ({cfg.model.position})",
        export_extra={"data": data_desc, "parameters": sum(p.numel() for p in model.parameters())},
    )
    return fit(run, cfg, task)
