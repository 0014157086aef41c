"""Training loop for the source-filter WaveNet (plain dataclass config, no Hydra).

One target piano with aligned notes: by default the MAPS software piano
SptkBGCl (a multi-sampled Steinway D, close microphones) from
`../shared/data/audio/maps_synth` (flac/ + tsv/), and/or folders of audio with
same-named .tsv/.mid notes. Whole pieces are held out (`holdout_pieces`);
their note files are written to out_dir/validation_notes.txt so evaluation
renders music the model never heard, against that piano's own recordings.

Each step draws random 1 s windows, computes the source (w2m2w.source) and
the piano roll over the window plus half the receptive field on each side,
runs the model and scores the central second with a multi-resolution STFT
loss (auraloss). Resumable: checkpoint/ is rewritten at every validation.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..audio import load_audio
from ..checkpoint import load_training_state, save_training_state
from ..data.transcription import Example, maps_examples, maps_piece
from ..midi import load_notes
from ..models.source_filter import SourceFilterConfig, SourceFilterWaveNet
from ..source import source_config_from
from ..synthesis_source_filter import MODEL_NAME, context, window
from .export import export_trained
from .wavenet import audio_dir_examples

log = logging.getLogger(__name__)


@dataclass
class SourceFilterTrainConfig:
    out_dir: str = "runs/train_source_filter"
    model: SourceFilterConfig = field(default_factory=SourceFilterConfig)
    # data: one piano of a MAPS-layout folder, and/or folders of audio + same-named .tsv/.mid
    maps_root: str = ""
    piano: str = "SptkBGCl"
    audio_dirs: list[str] = field(default_factory=list)
    holdout_pieces: list[str] = field(default_factory=lambda: ["grieg_walzer", "scn15_2", "chpn-p7"])
    # optimisation
    batch_size: int = 8
    segment_seconds: float = 0.5
    learning_rate: float = 2e-3
    final_lr_fraction: float = 0.05  # cosine from learning_rate to this fraction of it over max_steps
    warmup_steps: int = 100
    clip_grad_norm: float = 1.0
    fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256])
    mel_weight: float = 1.0  # weight of a mel-scaled STFT loss (auraloss, 2048-point, 128 bands) added to the MR-STFT loss
    log_mel_weight: float = 1.0  # weight of an L1 loss on log-mel spectrograms of unit-RMS segments (what evaluate's distance measures)
    max_steps: int = 12000
    max_minutes: float = 0.0  # 0 = no time limit
    validate_every: int = 250
    validation_segments: int = 48
    seed: int = 0
    threads: int = 0
    device: str = "cpu"


def split_examples(cfg: SourceFilterTrainConfig) -> tuple[list[Example], list[Example]]:
    """(training, validation) examples; validation = the held-out pieces, whole."""
    ex: list[Example] = []
    if cfg.maps_root:
        ex += maps_examples(cfg.maps_root, include=[cfg.piano])
    for d in cfg.audio_dirs:
        ex += audio_dir_examples(d)
    held = set(cfg.holdout_pieces)

    def piece(e: Example) -> str:
        return maps_piece(e.name) if e.name.startswith("MAPS_") else e.name

    train = [e for e in ex if piece(e) not in held]
    val = [e for e in ex if piece(e) in held]
    if not train:
        raise ValueError("no training data: set maps_root (with piano) or audio_dirs")
    if not val:
        raise ValueError(f"no validation data: none of holdout_pieces {sorted(held)} is in the data")
    return train, val


class WindowSampler:
    """Random hop-aligned training windows from whole pieces held in memory (audio float32, notes)."""

    def __init__(self, examples: list[Example], model: SourceFilterWaveNet, segment: int, seed: int = 0):
        sr = model.cfg.sample_rate
        self.items = [(load_audio(e.audio, sr=sr), load_notes(e.notes)) for e in examples]
        self.model, self.segment = model, segment
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(a) for a, _ in self.items], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        hop = self.model.cfg.hop_length
        rows = []
        for _ in range(batch):
            for _ in range(4):  # windows where no note sounds teach nothing (the gate zeroes them): mostly redraw
                audio, notes = self.items[self.rng.choice(len(self.items), p=self.weights)]
                f0 = int(self.rng.integers(0, max(1, (len(audio) - self.segment) // hop + 1)))
                w = window(self.model, notes, audio, f0 * hop, self.segment)
                if w["gate"].any():
                    break
            rows.append(w)
        return {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}


def log_mel_l1(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean |log mel(y) - log mel(t)| of (batch, 1, n) segments, each scaled to unit RMS first: the log-mel
    distance that evaluate reports (229 bands, 2048-point STFT, log floor 1e-5; features.log_mel), as a loss.
    MR-STFT's log term floors magnitudes at 1e-8, so it spends effort on valleys far below what the ear (and the
    distance) registers; this term weighs the spectrum as evaluate does (as HiFi-GAN's mel L1 loss)."""
    from ..features import log_mel

    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x[:, 0]
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-8)

    return (log_mel(unit(y)) - log_mel(unit(t))).abs().mean()


def stft_loss(fft_sizes: list[int], mel_weight: float = 0.0, sample_rate: int = 16000, log_mel_weight: float = 0.0):
    """auraloss's multi-resolution STFT loss (spectral convergence + log magnitude), hop = fft / 4;
    with mel_weight, plus that weight times auraloss's STFT loss on 128 mel bands of a 2048-point STFT
    (the ear's frequency scale: high partials and noise weigh less, the low register more)."""
    import auraloss

    mr = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=list(fft_sizes), hop_sizes=[f // 4 for f in fft_sizes], win_lengths=list(fft_sizes))
    terms = [mr]
    if mel_weight:
        mel = auraloss.freq.STFTLoss(fft_size=2048, hop_size=256, win_length=2048, scale="mel", n_bins=128, sample_rate=sample_rate)
        terms.append(lambda y, t: mel_weight * mel(y, t))
    if log_mel_weight:
        terms.append(lambda y, t: log_mel_weight * log_mel_l1(y, t))
    return terms[0] if len(terms) == 1 else (lambda y, t: sum(term(y, t) for term in terms))


def central(x: torch.Tensor, c: int) -> torch.Tensor:
    return x[:, c:x.shape[1] - c] if c else x


@torch.no_grad()
def validate_model(model: SourceFilterWaveNet, batches: list[dict[str, torch.Tensor]], loss_fn, device: str) -> dict[str, float]:
    """MR-STFT loss and log-mel distance (unit RMS, as evaluate) of the model and of the source's direct mix alone."""
    from ..synthesis_eval import log_mel_distance

    was = model.training
    model.eval()
    c = context(model)
    losses, dists = [], []
    for b in batches:
        y = central(model(b["source"].to(device), b["gate"].to(device), b["roll"].to(device)), c).float().cpu()
        t = central(b["target"], c)
        losses.append(float(loss_fn(y.unsqueeze(1), t.unsqueeze(1))))
        dists += [log_mel_distance(y[i].numpy(), t[i].numpy()) for i in range(len(y)) if t[i].abs().max() > 0 and y[i].abs().max() > 0]
    model.train(was)
    return {"val_loss": float(np.mean(losses)), "val_log_mel_distance": float(np.mean(dists)) if dists else float("nan")}


def train_source_filter(cfg: SourceFilterTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir if it holds a checkpoint); returns the last validation summary.

    Writes out_dir/checkpoint/ (resumable), out_dir/log.jsonl, out_dir/best.safetensors
    (lowest validation loss), out_dir/last.safetensors, out_dir/validation_notes.txt.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the weights carry the whole source config, so a later change of SourceConfig's defaults cannot change their sound
    cfg.model.source = asdict(source_config_from(cfg.model.source))
    train_ex, val_ex = split_examples(cfg)
    (out / "validation_notes.txt").write_text("".join(f"{Path(e.notes).resolve()}\n" for e in val_ex))
    (out / "validation_audio.txt").write_text("".join(f"{Path(e.audio).resolve()}\n" for e in val_ex))
    model = SourceFilterWaveNet(cfg.model).to(cfg.device)
    sr, hop = cfg.model.sample_rate, cfg.model.hop_length
    segment = max(1, round(cfg.segment_seconds * sr / hop)) * hop
    log.info("training on %d files, validating on %d; %d parameters, receptive field +-%d samples",
             len(train_ex), len(val_ex), sum(p.numel() for p in model.parameters()), model.half_receptive_field)
    sampler = WindowSampler(train_ex, model, segment, seed=cfg.seed)
    vs = WindowSampler(val_ex, model, segment, seed=12345)  # the same held-out windows every time, for every config
    val_batches = [vs.sample(min(cfg.batch_size, cfg.validation_segments - i)) for i in range(0, cfg.validation_segments, cfg.batch_size)]
    loss_fn = stft_loss(cfg.fft_sizes, cfg.mel_weight, cfg.model.sample_rate, cfg.log_mel_weight)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    state = load_training_state(out / "checkpoint", MODEL_NAME, model, opt) or {"step": 0, "elapsed_s": 0.0, "best": float("inf"), "history": []}
    if state["step"]:
        sampler.load_state(state["sampler"])
        log.info("resumed at step %d", state["step"])
    c = context(model)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        lo = cfg.learning_rate * cfg.final_lr_fraction
        return lo + 0.5 * (cfg.learning_rate - lo) * (1 + math.cos(math.pi * p))

    def checkpoint() -> None:
        state["sampler"] = sampler.state()
        save_training_state(out / "checkpoint", MODEL_NAME, model, asdict(cfg.model), opt, state)

    def validate(train_loss: float | None) -> dict:
        state["elapsed_s"] = time.time() - t_start
        v = validate_model(model, val_batches, loss_fn, cfg.device)
        row = {"step": state["step"], "elapsed_s": round(state["elapsed_s"], 1), "loss": None if train_loss is None else round(train_loss, 4),
               **{k: round(x, 4) for k, x in v.items()}}
        state["history"].append(row)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        bar.write(json.dumps(row))
        if v["val_loss"] < state["best"]:
            state["best"] = v["val_loss"]
            export_trained(out / "best.safetensors", MODEL_NAME, model, cfg, row)
        checkpoint()
        return row

    t_start = time.time() - state["elapsed_s"]
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc="train source-filter wavenet", dynamic_ncols=True, mininterval=5)
    summary: dict = state["history"][-1] if state["history"] else {}
    if not state["history"]:
        summary = validate(None)  # step 0: what the untrained model (the source's direct mix) scores
    last_loss = None
    while state["step"] < cfg.max_steps:
        if cfg.max_minutes and time.time() - t_start > cfg.max_minutes * 60:
            log.info("time budget of %.0f min reached", cfg.max_minutes)
            break
        b = {k: v.to(cfg.device) for k, v in sampler.sample(cfg.batch_size).items()}
        y = central(model(b["source"], b["gate"], b["roll"]), c)
        loss = loss_fn(y.unsqueeze(1), central(b["target"], c).unsqueeze(1))
        for g in opt.param_groups:
            g["lr"] = lr_at(state["step"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        opt.step()
        state["step"] += 1
        last_loss = float(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.3f}", refresh=False)
        if state["step"] % cfg.validate_every == 0 or state["step"] == cfg.max_steps:
            summary = validate(last_loss)
    bar.close()
    if state["step"] and state["history"][-1]["step"] != state["step"]:
        summary = validate(last_loss)  # stopped by the time budget between validations: the last weights count too
    state["elapsed_s"] = time.time() - t_start
    checkpoint()
    export_trained(out / "last.safetensors", MODEL_NAME, model, cfg, summary)
    return summary


CONFIG = SourceFilterTrainConfig
train = train_source_filter
