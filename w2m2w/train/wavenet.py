"""Training loop for the piano-roll-conditioned WaveNet (plain dataclass config, no Hydra).

Audio comes from MIDI rendered with ONE soundfont (so the model learns one
instrument well), through the same FLAC + TSV render cache the transcriber
uses, and/or from folders of audio with same-named .tsv/.mid notes. Whole
files are held out for validation; their MIDI paths are written to
out_dir/validation_midi.txt so evaluation can use music the model never heard.
"""
from __future__ import annotations

import glob
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..audio import AUDIO_EXTENSIONS, load_audio, mu_law_encode
from ..checkpoint import load_training_state, save_training_state
from .export import export_trained
from ..data.transcription import Example, rendered_examples
from ..features import conditioning_roll, excitation
from ..midi import load_notes
from ..models.wavenet import SILENCE, WaveNet, WaveNetConfig
from ..synthesis import MODEL_NAME

log = logging.getLogger(__name__)


@dataclass
class WaveNetTrainConfig:
    out_dir: str = "runs/train_wavenet"
    model: WaveNetConfig = field(default_factory=WaveNetConfig)
    # data: MIDI rendered with one soundfont, and/or folders of audio + same-named .tsv/.mid
    midi_globs: list[str] = field(default_factory=list)
    midi_max_files: int = 0  # 0 = all
    soundfont: str = "fluidr3"
    render_seconds: float = 60.0
    render_cache: str = "cache/renders"
    audio_dirs: list[str] = field(default_factory=list)
    holdout_files: int = 6  # per source, whole files kept for validation
    # optimisation
    batch_size: int = 8
    segment_seconds: float = 0.4
    learning_rate: float = 1e-3
    lr_decay: float = 0.9  # every lr_decay_steps
    lr_decay_steps: int = 1000
    clip_grad_norm: float = 1.0
    max_steps: int = 100000
    max_minutes: float = 0.0  # 0 = no time limit
    validate_every: int = 500
    validation_segments: int = 32
    seed: int = 0
    threads: int = 0  # 0 = torch default
    device: str = "cpu"
    bf16: bool = False  # autocast convs to bfloat16 (faster on AVX512-BF16 CPUs and GPUs)


def _glob_all(patterns: list[str]) -> list[str]:
    return sorted({f for g in patterns for f in glob.glob(g, recursive=True)})


def audio_dir_examples(folder: str | Path) -> list[Example]:
    """Audio files under `folder` that have a same-named .tsv, .mid or .midi beside them."""
    out = []
    for p in sorted(Path(folder).rglob("*")):
        if p.suffix.lower() not in AUDIO_EXTENSIONS or p.name.startswith("."):
            continue
        notes = next((p.with_suffix(e) for e in (".tsv", ".mid", ".midi") if p.with_suffix(e).is_file()), None)
        if notes is not None:
            out.append(Example(str(p), str(notes), p.stem, "audio_dir"))
    return out


def build_datasets(cfg: WaveNetTrainConfig) -> tuple[list[Example], list[Example], list[str]]:
    """(training examples, validation examples, held-out MIDI paths); held out by whole file."""
    rng = np.random.default_rng(cfg.seed)
    train: list[Example] = []
    val: list[Example] = []
    held_midi: list[str] = []
    midi = _glob_all(cfg.midi_globs)
    if midi:
        midi = [str(m) for m in rng.permutation(midi)]
        held_midi = midi[: cfg.holdout_files]
        rest = midi[cfg.holdout_files:]
        if cfg.midi_max_files:
            rest = rest[: cfg.midi_max_files]
        train += rendered_examples(rest, [cfg.soundfont], cfg.render_cache, cfg.render_seconds)
        val += rendered_examples(held_midi, [cfg.soundfont], cfg.render_cache, cfg.render_seconds)
    for d in cfg.audio_dirs:
        ex = audio_dir_examples(d)
        ex = [ex[i] for i in rng.permutation(len(ex))]
        val += ex[: cfg.holdout_files]
        train += ex[cfg.holdout_files:]
    if not train:
        raise ValueError("no training data: set midi_globs (rendered with the soundfont) or audio_dirs")
    if not val:
        raise ValueError("no validation data: holdout_files must leave at least one file out")
    return train, val, held_midi


class SegmentSampler:
    """Random hop-aligned training segments: mu-law classes (batch, T), rolls (batch, T/hop + 2m, 264)
    and, for models that take it, excitation (batch, T, 2 * harmonics); None otherwise.

    Audio is held in memory as 8-bit mu-law (a quarter of float32). Segments
    that are silent with no note sounding are mostly redrawn: they teach little.
    """

    def __init__(self, examples: list[Example], segment_samples: int, hop: int, margin: int, sr: int, seed: int = 0, harmonics: int = 0):
        self.items = []
        for ex in examples:
            y = load_audio(ex.audio, sr=sr)
            self.items.append((mu_law_encode(y).astype(np.uint8), load_notes(ex.notes)))
        if not self.items:
            raise ValueError("no examples")
        self.T, self.hop, self.margin, self.rate, self.sr, self.harmonics = segment_samples, hop, margin, sr / hop, sr, harmonics
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(q) for q, _ in self.items], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def _one(self) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray, int]:
        """(classes, roll, busy, the piece's notes, the segment's first sample)."""
        q, notes = self.items[self.rng.choice(len(self.items), p=self.weights)]
        frames = self.T // self.hop
        f0 = int(self.rng.integers(0, max(1, (len(q) - self.T) // self.hop + 1)))
        x = np.full(self.T, SILENCE, np.uint8)
        seg = q[f0 * self.hop: f0 * self.hop + self.T]
        x[: len(seg)] = seg
        roll = conditioning_roll(notes, frames + 2 * self.margin, self.rate, f0 - self.margin)
        busy = bool(roll.any()) or int(np.abs(x.astype(np.int16) - SILENCE).max()) > 2
        return x, roll, busy, notes, f0 * self.hop

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        xs, rolls, excs = [], [], []
        for _ in range(batch_size):
            for _ in range(4):
                x, roll, busy, notes, start = self._one()
                if busy:
                    break
            xs.append(x)
            rolls.append(roll)
            if self.harmonics:  # for the kept segment only
                excs.append(excitation(notes, self.T, self.sr, start, self.harmonics))
        return np.stack(xs).astype(np.int64), np.stack(rolls), (np.stack(excs) if self.harmonics else None)


def _tensors(x: np.ndarray, roll: np.ndarray, exc: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return torch.from_numpy(x), torch.from_numpy(roll), None if exc is None else torch.from_numpy(exc)


def validation_batches(examples: list[Example], cfg: WaveNetTrainConfig, hop: int, margin: int, sr: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """A fixed set of held-out segments (the same every validation and every resume, and for every model config)."""
    sampler = SegmentSampler(examples, _segment_samples(cfg, hop, sr), hop, margin, sr, seed=12345, harmonics=cfg.model.excitation_harmonics)
    out = []
    left = cfg.validation_segments
    while left > 0:
        n = min(cfg.batch_size, left)
        out.append(_tensors(*sampler.sample(n)))
        left -= n
    return out


def _segment_samples(cfg: WaveNetTrainConfig, hop: int, sr: int) -> int:
    return max(1, int(round(cfg.segment_seconds * sr / hop))) * hop


@torch.no_grad()
def validation_loss(model: WaveNet, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], device: str) -> float:
    """Mean cross-entropy in nats per sample over the validation segments."""
    was = model.training
    model.eval()
    total, n = 0.0, 0
    for x, roll, exc in batches:
        loss = model.loss(x.to(device), roll.to(device), None if exc is None else exc.to(device))
        total += float(loss) * x.numel()
        n += x.numel()
    model.train(was)
    return total / max(n, 1)


def train_wavenet(cfg: WaveNetTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir if it holds a checkpoint); returns the last validation summary.

    Writes out_dir/checkpoint/ (resumable), out_dir/log.jsonl (one line per
    validation), out_dir/best.safetensors (lowest validation loss) and
    out_dir/last.safetensors.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_ex, val_ex, held_midi = build_datasets(cfg)
    (out / "validation_midi.txt").write_text("".join(f"{m}\n" for m in held_midi))
    model = WaveNet(cfg.model).to(cfg.device)
    hop, sr = cfg.model.hop_length, cfg.model.sample_rate
    log.info("training on %d files, validating on %d; %d parameters, receptive field %d samples",
             len(train_ex), len(val_ex), sum(p.numel() for p in model.parameters()), model.receptive_field)
    sampler = SegmentSampler(train_ex, _segment_samples(cfg, hop, sr), hop, model.cond_margin, sr, seed=cfg.seed, harmonics=cfg.model.excitation_harmonics)
    val_batches = validation_batches(val_ex, cfg, hop, model.cond_margin, sr)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    state = load_training_state(out / "checkpoint", MODEL_NAME, model, opt) or {"step": 0, "elapsed_s": 0.0, "best": float("inf"), "history": []}
    if state["step"]:
        sampler.load_state(state["sampler"])
        log.info("resumed at step %d", state["step"])

    def checkpoint() -> None:
        state["sampler"] = sampler.state()
        save_training_state(out / "checkpoint", MODEL_NAME, model, asdict(cfg.model), opt, state)

    def validate(train_loss: float | None) -> dict:
        """Validation loss now: logged, checkpointed, exported as best.safetensors when it is the lowest so far."""
        state["elapsed_s"] = time.time() - t_start
        vl = validation_loss(model, val_batches, cfg.device)
        row = {"step": state["step"], "elapsed_s": round(state["elapsed_s"], 1), "loss": None if train_loss is None else round(train_loss, 4),
               "val_loss": round(vl, 4), "val_bits_per_sample": round(vl / np.log(2), 4)}
        state["history"].append(row)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        bar.write(json.dumps(row))
        if vl < state["best"]:
            state["best"] = vl
            export(model, cfg, out / "best.safetensors", row)
        checkpoint()
        return row

    t_start = time.time() - state["elapsed_s"]
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc="train wavenet", dynamic_ncols=True, mininterval=5)
    summary: dict = state["history"][-1] if state["history"] else {}
    dev_type = torch.device(cfg.device).type
    last_loss = None
    while state["step"] < cfg.max_steps:
        if cfg.max_minutes and time.time() - t_start > cfg.max_minutes * 60:
            log.info("time budget of %.0f min reached", cfg.max_minutes)
            break
        x_t, roll_t, exc_t = (None if t is None else t.to(cfg.device) for t in _tensors(*sampler.sample(cfg.batch_size)))
        with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(x_t, roll_t, exc_t)
        loss = model.nll(logits, x_t)
        for g in opt.param_groups:
            g["lr"] = cfg.learning_rate * cfg.lr_decay ** (state["step"] / cfg.lr_decay_steps)
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
    if state["step"] and (not state["history"] or state["history"][-1]["step"] != state["step"]):
        summary = validate(last_loss)  # stopped by the time budget between validations: the last weights count too
    state["elapsed_s"] = time.time() - t_start
    checkpoint()
    export(model, cfg, out / "last.safetensors", summary)
    return summary


def export(model: WaveNet, cfg: WaveNetTrainConfig, path: Path, summary: dict) -> None:
    export_trained(path, MODEL_NAME, model, cfg, summary)


CONFIG = WaveNetTrainConfig
train = train_wavenet
