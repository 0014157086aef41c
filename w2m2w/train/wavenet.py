"""Training data and settings of the piano-roll-conditioned (autoregressive) WaveNet; the loop is loop.py's.

    python -m w2m2w.train train=wavenet [train.KEY=VALUE ...]

Audio comes from MIDI rendered with ONE soundfont (so the model learns one
instrument well), through the same FLAC + TSV render cache the transcriber
uses, and/or from folders of audio with same-named .tsv/.mid notes. Whole
files are held out for validation; their MIDI paths are written to
out_dir/validation_midi.txt so evaluation can use music the model never heard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from w2m2w.data.synthesis import MuLawSampler
from w2m2w.data.transcription import Example, audio_dir_examples, rendered_examples
from w2m2w.models.wavenet import MODEL_NAME, WaveNet, WaveNetConfig
from w2m2w.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, PROBABILITY_UPPER, setting
from w2m2w.train.corpora import midi_files
from w2m2w.train.loop import Task, TrainingError, fit, loss_log, start

log = logging.getLogger(__name__)


@dataclass
class WaveNetTrainConfig:
    """Every default of `train=wavenet`; conf/train/wavenet.yaml adds only where the team's MIDI is."""

    out_dir: str = setting("runs/train_wavenet", affects_output=False)
    model: WaveNetConfig = field(default_factory=WaveNetConfig)
    # data: MIDI rendered with one soundfont, and/or folders of audio + same-named .tsv/.mid
    midi_globs: list[str] = setting(default_factory=list)
    midi_max_files: int = setting(120, range=NON_NEGATIVE)  # 0 = all
    soundfont: str = setting(
        "fluidr3"
    )  # FluidR3_GM's grand piano: the transcriber knows it, and it is the fluidsynth stage's default
    render_seconds: float = setting(60.0, range=POSITIVE)
    render_cache: str = setting("cache/renders")
    audio_dirs: list[str] = setting(default_factory=list)
    holdout_files: int = setting(6, range=AT_LEAST_ONE)  # per source, whole files kept for validation
    # optimisation
    batch_size: int = setting(8, range=AT_LEAST_ONE)  # global: split over the processes under torchrun
    segment_seconds: float = setting(0.4, range=POSITIVE)
    learning_rate: float = setting(1e-3, range=POSITIVE)
    lr_decay: float = setting(0.9, range=PROBABILITY_UPPER)  # every lr_decay_steps
    lr_decay_steps: int = setting(1000, range=AT_LEAST_ONE)
    clip_grad_norm: float = setting(1.0, range=POSITIVE)
    max_steps: int = setting(100000, range=AT_LEAST_ONE)
    max_minutes: float = setting(0.0, range=NON_NEGATIVE)  # 0 = no time limit
    validate_every: int = setting(500, range=AT_LEAST_ONE)
    validation_segments: int = setting(32, range=AT_LEAST_ONE)
    seed: int = setting(0, range=NON_NEGATIVE)
    threads: int = setting(0, range=NON_NEGATIVE, affects_output=False)  # 0 = torch default
    device: str = setting("cpu", affects_output=False)
    # autocast convs to bfloat16: faster steps at the same validation loss as float32 (measured: weights/README.md,
    # wavenet, "Figures behind the code's choices"); set false on CPUs without AVX512-BF16, where it is slow
    bf16: bool = setting(True)


def build_datasets(cfg: WaveNetTrainConfig) -> tuple[list[Example], list[Example], list[str]]:
    """(training examples, validation examples, held-out MIDI paths); held out by whole file."""
    rng = np.random.default_rng(cfg.seed)
    train: list[Example] = []
    val: list[Example] = []
    held_midi: list[str] = []
    midi = midi_files(cfg.midi_globs, "train.midi_globs")
    if midi:
        midi = [str(m) for m in rng.permutation(midi)]
        held_midi = midi[: cfg.holdout_files]
        rest = midi[cfg.holdout_files :]
        if cfg.midi_max_files:
            rest = rest[: cfg.midi_max_files]
        train += rendered_examples(rest, [cfg.soundfont], cfg.render_cache, cfg.render_seconds)
        val += rendered_examples(held_midi, [cfg.soundfont], cfg.render_cache, cfg.render_seconds)
    for d in cfg.audio_dirs:
        ex = audio_dir_examples(d)
        ex = [ex[i] for i in rng.permutation(len(ex))]
        val += ex[: cfg.holdout_files]
        train += ex[cfg.holdout_files :]
    if not train:
        raise TrainingError("no training data: set train.midi_globs (rendered with the soundfont) or train.audio_dirs")
    if not val:
        raise TrainingError("no validation data: train.holdout_files must leave at least one file out")
    return train, val, held_midi


def _segment_samples(cfg: WaveNetTrainConfig, hop: int, sr: int) -> int:
    return max(1, int(round(cfg.segment_seconds * sr / hop))) * hop


def validation_batches(
    examples: list[Example], cfg: WaveNetTrainConfig, hop: int, margin: int, sr: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """A fixed set of held-out segments (the same every validation and every resume, and for every model config)."""
    sampler = MuLawSampler(
        examples, _segment_samples(cfg, hop, sr), hop, margin, sr, seed=12345, harmonics=cfg.model.excitation_harmonics
    )
    out = []
    left = cfg.validation_segments
    while left > 0:
        n = min(cfg.batch_size, left)
        x, roll, exc = sampler.sample(n)
        out.append((torch.from_numpy(x), torch.from_numpy(roll), None if exc is None else torch.from_numpy(exc)))
        left -= n
    return out


@torch.no_grad()
def validation_loss(
    model: WaveNet, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], device: str
) -> float:
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
    """Train (resuming from cfg.out_dir if it holds a checkpoint); returns the last validation row.

    Writes out_dir/validation_midi.txt, and (loop.fit) out_dir/checkpoint/, out_dir/log.jsonl,
    out_dir/best.safetensors (lowest validation loss) and out_dir/last.safetensors.
    """
    run = start(cfg, MODEL_NAME)
    with run.main_first():  # rank 0 renders MIDI into the cache, the others then read it
        train_ex, val_ex, held_midi = build_datasets(cfg)
    if run.main:
        (run.out / "validation_midi.txt").write_text("".join(f"{m}\n" for m in held_midi))
    model = WaveNet(cfg.model).to(run.device)
    hop, sr = cfg.model.hop_length, cfg.model.sample_rate
    if run.main:
        log.info(
            "training on %d files, validating on %d; %d parameters, receptive field %d samples",
            len(train_ex),
            len(val_ex),
            sum(p.numel() for p in model.parameters()),
            model.receptive_field,
        )
    sampler = MuLawSampler(
        train_ex,
        _segment_samples(cfg, hop, sr),
        hop,
        model.cond_margin,
        sr,
        seed=cfg.seed,
        harmonics=cfg.model.excitation_harmonics,
    )
    val_batches = validation_batches(val_ex, cfg, hop, model.cond_margin, sr) if run.main else []

    def validation(m: WaveNet) -> dict:
        vl = validation_loss(m, val_batches, run.device)
        return {"val_loss": round(vl, 4), "val_bits_per_sample": round(vl / np.log(2), 4)}

    task = Task(
        model_name=MODEL_NAME,
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.learning_rate),
        sampler=sampler,
        step=lambda m, batch: m.training_step(batch, cfg.bf16),
        lr=lambda step, _: cfg.learning_rate * cfg.lr_decay ** (step / cfg.lr_decay_steps),
        validate=validation,
        train_log=partial(loss_log, digits=4),
        score=lambda row: row["val_loss"],
        description="train wavenet",
    )
    return fit(run, cfg, task)


train = train_wavenet
