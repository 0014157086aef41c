"""Training loop for the Music Transformer on folders of MIDI (plain dataclass config, no Hydra).

    python -m w2m2w.train train=music_transformer [train.model.position=learned] [train.KEY=VALUE ...]

Writes out_dir/checkpoint/ (resumable: model, optimizer, sampler and RNG
states), out_dir/log.jsonl (one line per validation), out_dir/best.safetensors
(lowest validation NLL per event), out_dir/last.safetensors, and the split:
out_dir/split.json and out_dir/val_files.txt (the held-out files, one per line). Validation pieces are never trained on: the split
is by piece (composition), not by file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import load_training_state, load_weights, save_training_state
from .export import export_trained
from ..data.midi_corpus import WindowSampler, find_midi_files, load_corpus, piece_names, split_by_piece
from ..generation import piece_tokens
from ..models.music_transformer import MODEL_NAME, MusicTransformer, MusicTransformerConfig, sequence_nll

log = logging.getLogger(__name__)


@dataclass
class MusicTransformerTrainConfig:
    out_dir: str = "runs/train_music_transformer"
    model: MusicTransformerConfig = field(default_factory=MusicTransformerConfig)
    # data: folders (recursive) or globs of MIDI files
    midi_dirs: list[str] = field(default_factory=list)
    max_files: int = 0  # 0: all; else a fixed subset (quick runs)
    val_fraction: float = 0.05  # of pieces, not files
    split_seed: int = 0
    val_pieces: int = 32  # validation reads at most this many pieces...
    val_events: int = 2048  # ...and the first this-many events of each, so it takes bounded time
    # the paper's augmentation
    max_transpose: int = 3
    stretch_min: float = 0.95
    stretch_max: float = 1.05
    # optimisation
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay to learning_rate * this at the end of the budget
    weight_decay: float = 0.01
    clip_grad_norm: float = 1.0
    max_steps: int = 1000
    max_minutes: float = 0.0  # 0: no time limit; else the schedule ends at whichever comes first
    validate_every: int = 100
    seed: int = 0
    threads: int = 0  # 0: torch's default
    device: str = "cpu"


def _subset(files: list[Path], n: int) -> list[Path]:
    key = lambda f: hashlib.sha1(str(f).encode()).hexdigest()  # noqa: E731
    return sorted(sorted(files, key=key)[:n]) if n else files


def build_data(cfg: MusicTransformerTrainConfig, out: Path) -> tuple[list[np.ndarray], list[torch.Tensor], dict]:
    """Training pieces (note lists), validation sequences (BOS + events) and a description."""
    found = find_midi_files(list(cfg.midi_dirs))
    if not found:
        raise ValueError(f"no MIDI files under {list(cfg.midi_dirs)}")
    keep = set(_subset(list(found), cfg.max_files))
    pieces = piece_names({f: r for f, r in found.items() if f in keep})
    train_files, val_files = split_by_piece(pieces, cfg.val_fraction, cfg.split_seed)
    if not train_files:
        raise ValueError("no training files left after the validation split")
    # the held-out files, for `python -m w2m2w.evaluate task=generation input=OUT_DIR/val_files.txt`
    (out / "val_files.txt").write_text("".join(f"{f}\n" for f in val_files))
    (out / "split.json").write_text(json.dumps({"val_fraction": cfg.val_fraction, "split_seed": cfg.split_seed, "train": [str(f) for f in train_files], "val": [str(f) for f in val_files]}, indent=1))
    train = [n for _, n in load_corpus(train_files, out / "cache")]
    # one performance per validation piece first, in a fixed order, so the cap keeps variety
    order = sorted(val_files, key=lambda f: (hashlib.sha1(pieces[f].encode()).hexdigest(), str(f)))
    firsts = list({pieces[f]: f for f in reversed(order)}.values())[::-1]
    chosen = (firsts + [f for f in order if f not in set(firsts)])[: cfg.val_pieces]
    val = [torch.from_numpy(piece_tokens(n)[: cfg.val_events + 1]) for _, n in load_corpus(chosen, out / "cache", progress=False)]
    desc = {
        "files": len(pieces), "pieces": len(set(pieces.values())),
        "train_files": len(train_files), "val_files": len(val_files),
        "val_pieces": len({pieces[f] for f in val_files}), "val_scored_files": len(val),
        "train_notes": int(sum(len(n) for n in train)),
    }
    return train, val, desc


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


def train(cfg: MusicTransformerTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir when it holds a checkpoint); returns the last validation row."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    if (ckpt / "state.json").is_file():
        _, saved, _ = load_weights(ckpt / "model.safetensors", MODEL_NAME)
        if saved != asdict(cfg.model):
            raise ValueError(f"{ckpt}: holds a checkpoint of another model config {saved}; use a new out_dir or the same model settings")
    train_pieces, val, data_desc = build_data(cfg, out)
    log.info("data: %s", data_desc)
    model = MusicTransformer(cfg.model).to(cfg.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.endswith(".rel")]
    other = [p for n, p in model.named_parameters() if p.dim() < 2 or n.endswith(".rel")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.98))
    sampler = WindowSampler(train_pieces, cfg.model.max_len + 1, seed=cfg.seed, max_transpose=cfg.max_transpose, stretch=(cfg.stretch_min, cfg.stretch_max))

    state = load_training_state(ckpt, MODEL_NAME, model, opt) or {"step": 0, "elapsed_s": 0.0, "best": None, "history": []}
    if state["step"]:
        sampler.load_state(state["sampler"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        log.info("resumed at step %d", state["step"])

    def checkpoint() -> None:
        state["sampler"] = sampler.state()
        state["torch_rng"] = torch.get_rng_state().tolist()
        save_training_state(ckpt, MODEL_NAME, model, asdict(cfg.model), opt, state)

    n_params = sum(p.numel() for p in model.parameters())
    t_start = time.time() - state["elapsed_s"]
    run = {"nll": 0.0, "events": 0, "t": time.time()}  # training NLL and time since the last validation

    def validation() -> dict:
        state["elapsed_s"] = time.time() - t_start
        steps_since = state["step"] - (state["history"][-1]["step"] if state["history"] else 0)
        row = {
            "step": state["step"], "elapsed_s": round(state["elapsed_s"], 1),
            "train_nll": round(run["nll"] / max(run["events"], 1), 4),
            "s_per_step": round((time.time() - run["t"]) / max(steps_since, 1), 3),  # training only: taken before validating
            "lr": round(opt.param_groups[0]["lr"], 7),
        }
        row["val_nll"] = round(validate(model, val, cfg.device), 4) if val else None
        state["history"].append(row)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        bar.write(json.dumps(row))
        score = row["val_nll"] if row["val_nll"] is not None else row["train_nll"]
        if state["best"] is None or score < state["best"]:
            state["best"] = score
            export(model, cfg, out / "best.safetensors", row, data_desc, n_params)
        checkpoint()
        run.update(nll=0.0, events=0, t=time.time())
        return row

    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=f"train music transformer ({cfg.model.position})", dynamic_ncols=True, mininterval=5)
    summary: dict = state["history"][-1] if state["history"] else {}
    model.train()
    while state["step"] < cfg.max_steps:
        elapsed = time.time() - t_start
        if cfg.max_minutes and elapsed > cfg.max_minutes * 60:
            log.info("time budget of %.0f min reached", cfg.max_minutes)
            break
        batch = torch.from_numpy(sampler.sample(cfg.batch_size)).to(cfg.device)
        nll, n = model.loss(batch)
        loss = nll / n.clamp(min=1)
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, state["step"], elapsed)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        opt.step()
        state["step"] += 1
        run["nll"] += float(nll.detach())
        run["events"] += int(n)
        bar.update(1)
        bar.set_postfix(nll=f"{float(loss.detach()):.3f}", refresh=False)
        if state["step"] % cfg.validate_every == 0 or state["step"] == cfg.max_steps:
            summary = validation()
    if state["step"] and summary.get("step") != state["step"]:
        summary = validation()  # stopped by the time budget between validations: the last model is scored too
    bar.close()
    state["elapsed_s"] = time.time() - t_start
    checkpoint()
    export(model, cfg, out / "last.safetensors", summary, data_desc, n_params)
    return summary


CONFIG = MusicTransformerTrainConfig


def export(model: MusicTransformer, cfg: MusicTransformerTrainConfig, path: Path, summary: dict, data: dict, n_params: int) -> None:
    export_trained(path, MODEL_NAME, model, cfg, summary, data=data, parameters=n_params)
