"""Training data and settings of the source-filter WaveNet; the loop is loop.py's.

    python -m w2m2w.train train=source_filter [train.KEY=VALUE ...]

One target piano with aligned notes: by default the MAPS software piano
SptkBGCl (a multi-sampled Steinway D, close microphones) from
`../shared/data/audio/maps_synth` (flac/ + tsv/), and/or folders of audio with
same-named .tsv/.mid notes. Whole pieces are held out (`holdout_pieces`);
their note files are written to out_dir/validation_notes.txt so evaluation
renders music the model never heard, against that piano's own recordings.

Each step draws random windows, computes the source (w2m2w.models.source) and
the piano roll over the window plus half the receptive field on each side,
runs the model and scores the centre with a multi-resolution STFT
loss (auraloss; models/source_filter.py: stft_loss).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from w2m2w.data.synthesis import SourceWindowSampler
from w2m2w.data.transcription import Example, audio_dir_examples, maps_examples, maps_piece
from w2m2w.models.source import source_config_from
from w2m2w.models.source_filter import MODEL_NAME, SourceFilterConfig, SourceFilterWaveNet, central, stft_loss
from w2m2w.render.source_filter import context
from w2m2w.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range, setting
from w2m2w.train.loop import Task, TrainingError, fit, init_unless_resuming, loss_log, start

log = logging.getLogger(__name__)

__all__ = ["SourceFilterTrainConfig", "split_examples", "validate_model", "train_source_filter", "stft_loss"]


@dataclass
class SourceFilterTrainConfig:
    """Every default of `train=source_filter`; conf/train/source_filter.yaml adds only where the team's MAPS copy is."""

    out_dir: str = setting("runs/train_source_filter", affects_output=False)
    model: SourceFilterConfig = field(default_factory=SourceFilterConfig)
    # data: one piano of a MAPS-layout folder, and/or folders of audio + same-named .tsv/.mid (your own piano)
    maps_root: str = setting("")
    piano: str = setting(
        "SptkBGCl"
    )  # The Grand's Steinway D, close microphones: the cleanest, most piano-like recording in the data
    audio_dirs: list[str] = setting(default_factory=list)
    holdout_pieces: list[str] = setting(default_factory=lambda: ["grieg_walzer", "scn15_2", "chpn-p7"])
    # optimisation
    batch_size: int = setting(8, range=AT_LEAST_ONE)  # global: split over the processes under torchrun
    segment_seconds: float = setting(0.5, range=POSITIVE)
    learning_rate: float = setting(2e-3, range=POSITIVE)
    final_lr_fraction: float = setting(
        0.05, range=Range(0, 1)
    )  # cosine from learning_rate to this fraction of it over max_steps
    warmup_steps: int = setting(100, range=NON_NEGATIVE)
    clip_grad_norm: float = setting(1.0, range=POSITIVE)
    fft_sizes: list[int] = setting(default_factory=lambda: [2048, 1024, 512, 256])
    # weight of a mel-scaled STFT loss (auraloss, 2048-point, 128 bands) added to the MR-STFT loss (measured: closer to the target)
    mel_weight: float = setting(1.0, range=NON_NEGATIVE)
    # weight of an L1 loss on log-mel spectrograms of unit-RMS segments, what evaluate's distance measures
    # (measured: nearer the held-out piano with it, weights/README.md "Model variants measured";
    # models/source_filter.py: log_mel_l1)
    log_mel_weight: float = setting(1.0, range=NON_NEGATIVE)
    # start from these weights (say the shipped real-piano model, to fine-tune it with another source law); every
    # tensor whose name and shape fit is copied; ignored once out_dir holds a checkpoint (the run resumes from that)
    init_weights: str | None = setting(None)
    max_steps: int = setting(12000, range=AT_LEAST_ONE)
    max_minutes: float = setting(0.0, range=NON_NEGATIVE)  # 0 = no time limit
    validate_every: int = setting(250, range=AT_LEAST_ONE)
    validation_segments: int = setting(48, range=AT_LEAST_ONE)
    seed: int = setting(0, range=NON_NEGATIVE)
    threads: int = setting(0, range=NON_NEGATIVE, affects_output=False)
    device: str = setting("cpu", affects_output=False)


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
        raise TrainingError("no training data: set train.maps_root (with train.piano) or train.audio_dirs")
    if not val:
        raise TrainingError(f"no validation data: none of train.holdout_pieces {sorted(held)} is in the data")
    return train, val


@torch.no_grad()
def validate_model(
    model: SourceFilterWaveNet, batches: list[dict[str, torch.Tensor]], loss_fn, device: str
) -> dict[str, float]:
    """MR-STFT loss and log-mel distance (unit RMS, as evaluate) of the model over fixed held-out windows."""
    from w2m2w.evaluate.synthesis import log_mel_distance

    was = model.training
    model.eval()
    c = context(model)
    losses, dists = [], []
    for b in batches:
        y = central(model(b["source"].to(device), b["gate"].to(device), b["roll"].to(device)), c).float().cpu()
        t = central(b["target"], c)
        losses.append(float(loss_fn(y.unsqueeze(1), t.unsqueeze(1))))
        dists += [
            log_mel_distance(y[i].numpy(), t[i].numpy())
            for i in range(len(y))
            if t[i].abs().max() > 0 and y[i].abs().max() > 0
        ]
    model.train(was)
    return {
        "val_loss": float(np.mean(losses)),
        "val_log_mel_distance": float(np.mean(dists)) if dists else float("nan"),
    }


def train_source_filter(cfg: SourceFilterTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir if it holds a checkpoint); returns the last validation row.

    Writes out_dir/validation_notes.txt, validation_audio.txt and (loop.fit) out_dir/checkpoint/,
    out_dir/log.jsonl (from step 0: the untrained model is the source's direct mix),
    out_dir/best.safetensors (lowest validation loss) and out_dir/last.safetensors.
    """
    # the weights carry the whole source config, so a later change of SourceConfig's defaults cannot change their sound
    cfg.model.source = asdict(source_config_from(cfg.model.source))
    run = start(cfg, MODEL_NAME)
    train_ex, val_ex = split_examples(cfg)
    if run.main:
        (run.out / "validation_notes.txt").write_text("".join(f"{Path(e.notes).resolve()}\n" for e in val_ex))
        (run.out / "validation_audio.txt").write_text("".join(f"{Path(e.audio).resolve()}\n" for e in val_ex))
    model = SourceFilterWaveNet(cfg.model)
    init_unless_resuming(model, run, cfg.init_weights, MODEL_NAME)
    model = model.to(run.device)
    sr, hop = cfg.model.sample_rate, cfg.model.hop_length
    segment = max(1, round(cfg.segment_seconds * sr / hop)) * hop
    if run.main:
        log.info(
            "training on %d files, validating on %d; %d parameters, receptive field +-%d samples",
            len(train_ex),
            len(val_ex),
            sum(p.numel() for p in model.parameters()),
            model.half_receptive_field,
        )
    sampler = SourceWindowSampler(train_ex, model, segment)
    val_batches = []
    if run.main:
        vs = SourceWindowSampler(
            val_ex, model, segment, seed=12345
        )  # the same held-out windows every time, for every config
        val_batches = [
            vs.sample(min(cfg.batch_size, cfg.validation_segments - i))
            for i in range(0, cfg.validation_segments, cfg.batch_size)
        ]
    loss_fn = stft_loss(cfg.fft_sizes, cfg.mel_weight, cfg.model.sample_rate, cfg.log_mel_weight)
    c = context(model)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        lo = cfg.learning_rate * cfg.final_lr_fraction
        return lo + 0.5 * (cfg.learning_rate - lo) * (1 + math.cos(math.pi * p))

    def validation(m: SourceFilterWaveNet) -> dict:
        return {k: round(x, 4) for k, x in validate_model(m, val_batches, loss_fn, run.device).items()}

    task = Task(
        model_name=MODEL_NAME,
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.learning_rate),
        sampler=sampler,
        step=lambda m, batch: m.training_step(batch, loss_fn, c),
        lr=lambda step, _: lr_at(step),
        validate=validation,
        train_log=partial(loss_log, digits=4),
        score=lambda row: row["val_loss"],
        description="train source-filter wavenet",
        validate_first=True,
    )
    return fit(run, cfg, task)


train = train_source_filter
