"""Onsets and Frames (Hawthorne et al. 2018; MAESTRO version, Hawthorne et al. 2019).

Input: log-mel frames (batch, frames, n_mels). Each of the four heads
(onset, offset, frame, velocity) has its own convolutional acoustic stack
followed by a bidirectional LSTM; the frame head's LSTM also sees the onset
and offset predictions (gradient stopped), as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from w2m2w.audio import level_gain
from w2m2w.features import MelConfig, log_mel
from w2m2w.midi import N_KEYS
from w2m2w.settings import Range, setting

MODEL_NAME = "onsets_frames"  # in its weights files' metadata
LOSS_HEADS = ("onset", "offset", "frame", "velocity", "pedal")  # the terms of OnsetsFrames.loss
PEDAL_HEADS = ("pedal_onset", "pedal_offset", "pedal_frame")  # the pedal head's three outputs, in order


@dataclass
class OnsetsFramesConfig:
    n_mels: int = 229
    model_size: int = 256  # paper: 768 (conv channels model_size/16, model_size/8)
    lstm_units: int = 128  # per direction
    dropout: float = setting(0.25, range=Range(0, 1, hi_open=True))
    # A sustain-pedal head (onset, offset, down) as Kong et al. 2021 have: its own, half-width
    # conv stack and BiLSTM, since the pedal is one signal for the whole piano, not one per key.
    pedal: bool = setting(False)
    # predict() first brings a recording to this level (audio.level_db: dBFS of its loud frames), so
    # a quiet recording reaches the model as loud as the training audio; None: as given
    input_level_db: float | None = setting(None, range=Range(-60.0, 0.0))


class ConvStack(nn.Module):
    """Acoustic model: 3 conv layers with batch norm, frequency max-pooling, then a dense layer.

    (batch, frames, n_mels) -> (batch, frames, model_size)
    """

    def __init__(self, n_mels: int, model_size: int, dropout: float):
        super().__init__()
        c1, c2 = model_size // 16, model_size // 8
        self.cnn = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d((1, 2)),
            nn.Dropout(dropout),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d((1, 2)),
            nn.Dropout(dropout),
        )
        self.fc = nn.Sequential(nn.Linear(c2 * (n_mels // 4), model_size), nn.Dropout(2 * dropout))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # channels-last lets oneDNN pick its fast convolution kernels (how much faster: weights/README.md)
        x = self.cnn(mel.unsqueeze(1).contiguous(memory_format=torch.channels_last))  # (b, c, t, f)
        b, c, t, f = x.shape
        return self.fc(x.transpose(1, 2).reshape(b, t, c * f))


class BiLSTM(nn.Module):
    """Bidirectional LSTM over frames: (batch, frames, in) -> (batch, frames, 2 * units)."""

    def __init__(self, n_in: int, units: int):
        super().__init__()
        self.rnn = nn.LSTM(n_in, units, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class OnsetsFrames(nn.Module):
    def __init__(self, cfg: OnsetsFramesConfig = OnsetsFramesConfig()):
        super().__init__()
        self.cfg = cfg
        self.mel_cfg = MelConfig(n_mels=cfg.n_mels)
        m, u = cfg.model_size, cfg.lstm_units

        def head_stack() -> nn.Sequential:
            return nn.Sequential(ConvStack(cfg.n_mels, m, cfg.dropout), BiLSTM(m, u), nn.Linear(2 * u, N_KEYS))

        self.onset_stack = head_stack()
        self.offset_stack = head_stack()
        self.velocity_stack = head_stack()
        self.frame_acoustic = nn.Sequential(ConvStack(cfg.n_mels, m, cfg.dropout), nn.Linear(m, N_KEYS))
        self.frame_combined = nn.Sequential(BiLSTM(3 * N_KEYS, u), nn.Linear(2 * u, N_KEYS))
        if cfg.pedal:
            self.pedal_stack = nn.Sequential(
                ConvStack(cfg.n_mels, m // 2, cfg.dropout), BiLSTM(m // 2, u // 2), nn.Linear(u, len(PEDAL_HEADS))
            )
        self.to(memory_format=torch.channels_last)  # conv weights in the layout the inputs use
        # Start the sigmoid outputs at the label priors (about 0.25% of key-frames hold an onset or
        # offset, 3% sound) instead of 0.5: without it the heads spend their first few thousand
        # steps unlearning the initial 0.5 and onsets stay silent far longer (measured here).
        with torch.no_grad():
            for head, prior in (
                (self.onset_stack, 0.0025),
                (self.offset_stack, 0.0025),
                (self.frame_acoustic, 0.03),
                (self.frame_combined, 0.03),
            ):
                head[-1].bias.fill_(float(np.log(prior / (1 - prior))))
            if cfg.pedal:  # onset and offset rare (~0.5% of frames), the pedal down about half the time
                self.pedal_stack[-1].bias.copy_(torch.tensor([np.log(0.005 / 0.995), np.log(0.005 / 0.995), 0.0]))

    @property
    def frame_rate(self) -> float:
        return self.mel_cfg.sample_rate / self.mel_cfg.hop_length

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """mel: (batch, frames, n_mels) log-mel. Returns logits, each (batch, frames, 88);
        'velocity' is a regression output (about 0..1), not a logit. With the pedal head, also
        'pedal': logits (batch, frames, 3) of pedal onset, offset and down (PEDAL_HEADS)."""
        onset = self.onset_stack(mel)
        offset = self.offset_stack(mel)
        act = torch.sigmoid(self.frame_acoustic(mel))
        combined = torch.cat([torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach(), act], dim=-1)
        frame = self.frame_combined(combined)
        velocity = self.velocity_stack(mel)
        out = {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}
        if self.cfg.pedal:
            out["pedal"] = self.pedal_stack(mel)
        return out

    def loss(
        self, out: dict[str, torch.Tensor], target: dict[str, torch.Tensor], soft_onset_boost: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """Binary cross-entropy for onset, offset and frame; velocity MSE on onset frames only (MAESTRO paper).

        `soft_onset_boost` b weighs each onset frame of a note by 1 + b * (1 - velocity/127), the rest
        by 1: soft notes, whose onsets are the ones missed on real pianos, count up to 1 + b times.
        With the pedal head, binary cross-entropy of its three outputs against target 'pedal'
        (batch, frames, 3), each row weighted by 'pedal_known' (batch,) in [0, 1] (the mean over the rows'
        weights): audio whose labels say nothing about the pedal (MAPS's note lists, weight 0) must not
        teach "never pressed", and a teacher's press-free labels may weigh less (train.audio_pedal_weight).
        """
        losses = {k: F.binary_cross_entropy_with_logits(out[k], target[k]) for k in ("offset", "frame")}
        weight = 1.0 + soft_onset_boost * target["onset"] * (1.0 - target["velocity"]) if soft_onset_boost else None
        losses["onset"] = F.binary_cross_entropy_with_logits(out["onset"], target["onset"], weight=weight)
        w = target["onset"]
        losses["velocity"] = (w * (out["velocity"] - target["velocity"]) ** 2).sum() / w.sum().clamp(min=1.0)
        if "pedal" in out:
            per = F.binary_cross_entropy_with_logits(out["pedal"], target["pedal"], reduction="none").mean(
                dim=(1, 2)
            )  # (batch,)
            known = target["pedal_known"]
            losses["pedal"] = (per * known).sum() / known.sum().clamp(min=1.0)
        return losses

    def training_step(
        self,
        batch: tuple[torch.Tensor, dict[str, torch.Tensor]],
        bf16: bool = False,
        weights: Mapping[str, float] | None = None,
        soft_onset_boost: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one batch (the heads' losses summed, each times weights[head], default 1) and each head's unweighted loss.

        batch: audio (batch, samples) and targets onset/offset/frame/velocity, each (batch, frames, 88).
        bf16 runs the network under bfloat16 autocast; the losses are computed in float32 whatever it ran in.
        soft_onset_boost: see loss().
        """
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(LOSS_HEADS))
        if unknown:
            raise ValueError(f"loss weights for unknown heads {unknown}; the heads are {list(LOSS_HEADS)}")
        audio, target = batch
        mel = log_mel(audio, self.mel_cfg)
        n = min(mel.shape[1], target["onset"].shape[1])
        with torch.autocast(device_type=audio.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = self(mel[:, :n])
        losses = self.loss(
            {k: v.float() for k, v in out.items()},
            {k: v if v.dim() == 1 else v[:, :n] for k, v in target.items()},
            soft_onset_boost,
        )
        total = sum(weights.get(k, 1.0) * v for k, v in losses.items())
        return total, {f"loss_{k}": v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def predict(
        self, audio: np.ndarray, chunk_seconds: float = 20.0, overlap_seconds: float = 2.0, batch_size: int = 4
    ) -> dict[str, np.ndarray]:
        """Probabilities for a whole recording of any length with bounded memory.

        audio: (samples,) 16 kHz mono. The recording is cut into chunks of
        `chunk_seconds` with `overlap_seconds` of context on each side; each
        chunk's centre frames are kept, so the BiLSTMs see context at every seam.
        Returns onset/offset/frame probabilities and velocity, each (frames, 88), and with the
        pedal head pedal_onset/pedal_offset/pedal_frame probabilities, each (frames,).
        """
        self.eval()
        device = next(self.parameters()).device
        hop = self.mel_cfg.hop_length
        total = len(audio) // hop + 1
        core = max(1, int(round(chunk_seconds * self.frame_rate)))
        ctx = int(round(overlap_seconds * self.frame_rate))
        out = {k: np.zeros((total, N_KEYS), dtype=np.float32) for k in ("onset", "offset", "frame", "velocity")}
        if self.cfg.pedal:
            out.update({k: np.zeros(total, dtype=np.float32) for k in PEDAL_HEADS})
        starts = list(range(0, total, core))
        audio_t = torch.from_numpy(np.asarray(audio, dtype=np.float32))
        gain = level_gain(audio, self.cfg.input_level_db)  # applied chunk by chunk: no second copy of an hour of audio
        for i in range(0, len(starts), batch_size):
            group = starts[i : i + batch_size]
            # every chunk in a group gets the same padded length so they batch
            width = core + 2 * ctx
            segs = []
            for s in group:
                a = (s - ctx) * hop
                seg = torch.zeros(width * hop - 1 if width > 1 else 1)
                lo, hi = max(a, 0), min(a + len(seg), len(audio_t))
                if hi > lo:
                    seg[lo - a : hi - a] = audio_t[lo:hi] * gain
                segs.append(seg)
            mel = log_mel(torch.stack(segs).to(device), self.mel_cfg)
            res = self.forward(mel)
            probs = {
                "onset": torch.sigmoid(res["onset"]),
                "offset": torch.sigmoid(res["offset"]),
                "frame": torch.sigmoid(res["frame"]),
                "velocity": res["velocity"].clamp(0, 1),
            }
            if self.cfg.pedal:
                pedal = torch.sigmoid(res["pedal"])
                probs.update({k: pedal[..., i] for i, k in enumerate(PEDAL_HEADS)})
            for j, s in enumerate(group):
                n = min(core, total - s)
                for k, v in probs.items():
                    out[k][s : s + n] = v[j, ctx : ctx + n].float().cpu().numpy()
        return out
