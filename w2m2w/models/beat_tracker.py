"""A learned symbolic beat and downbeat tracker: a temporal convolutional network over frames drawn from a note list (issue #32).

After the multi-task TCN of Böck and Davies (ISMIR 2020: beats and downbeats from one dilated
convolution stack) and PM2S (Liu et al., ISMIR 2022: beats from performance-MIDI notes, trained on
ASAP), but over frames, so the decoding (w2m2w.beats) works on a fixed frame grid. Input: a note list
(n, 4) (onset, offset, pitch, velocity; w2m2w.midi's layout) turned into compact per-frame features at
FPS frames per second (note_features): what starts in the frame (pitch classes, registers, count,
loudness, the lowest pitch, note lengths) and what sounds through it (pitch classes, count, the lowest
pitch). Output: beat and downbeat logits per frame.

Network: an input convolution, then `blocks` residual blocks of a dilated convolution (kernel 5,
dilation 1, 2, 4, ...: with 9 blocks each frame sees +-20 s, the bars of harmony and bass a downbeat
needs) and a 1x1 mix, then a 1x1 convolution to the two logits. A TCN rather than the CRNN PM2S uses:
a GRU runs frame after frame, and on this project's CPU budget a training step of the TCN costs a
quarter of a comparable BiGRU's (measured: 0.65 s against 2-3 s per batch of 8 x 20 s on one thread).
Loss: binary cross-entropy per head over the frames the annotations cover, the rare positive frames
weighted up (pos_weight) so the heads do not settle on "never".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from w2m2w.settings import AT_LEAST_ONE, POSITIVE, Range, setting

MODEL_NAME = "beat_tracker"  # in its weights files' metadata
FPS = 50  # frames per second: 20 ms, well inside the 70 ms F-measure window
N_FEATURES = 40
HEADS = ("beat", "downbeat")
_BANDS = np.arange(21, 109, 11)  # 8 register bands of 11 semitones over the piano's keys


@dataclass
class BeatTrackerConfig:
    channels: int = setting(48, range=AT_LEAST_ONE)
    blocks: int = setting(9, range=AT_LEAST_ONE)  # dilations 1, 2, ..., 2^(blocks-1)
    dropout: float = setting(0.1, range=Range(0, 1, hi_open=True))
    # positive frames (a beat, a downbeat) weigh this much more in the loss: about 1 frame in 25 is a beat
    beat_pos_weight: float = setting(4.0, range=POSITIVE)
    downbeat_pos_weight: float = setting(8.0, range=POSITIVE)


def n_frames_of(notes: np.ndarray, fps: int = FPS, tail: float = 1.0) -> int:
    """Frames that cover a note list (n, 4) and `tail` seconds after its last offset."""
    end = float(notes[:, 1].max()) if len(notes) else 0.0
    return int(np.ceil((end + tail) * fps))


def note_features(notes: np.ndarray, n_frames: int, fps: int = FPS) -> np.ndarray:
    """Frame features (n_frames, N_FEATURES) float32 of a note list (n, 4); notes past the end are cut.

    Columns: 0-11 onset pitch classes (velocity/127 summed), 12-19 onsets per register band (same),
    20 log(1 + onsets), 21 loudest onset velocity/127, 22 lowest onset pitch (1 at A0, falling to 0 at C8;
    0 when none), 23 summed log(1 + length s) of the notes starting, 24-35 sounding pitch classes (0/1),
    36 sounding notes / 10, 37 lowest sounding pitch (as 22), 38 onsets' velocity sum (sqrt), 39 whether
    any note sounds. Onsets carry a beat; the bass, the harmony and the note lengths carry the bar.
    """
    x = np.zeros((n_frames, N_FEATURES), dtype=np.float32)
    if len(notes) == 0 or n_frames == 0:
        return x
    on = np.round(notes[:, 0] * fps).astype(int)
    off = np.maximum(np.round(notes[:, 1] * fps).astype(int), on + 1)
    pitch = np.clip(notes[:, 2].astype(int), 21, 108)
    vel = notes[:, 3].astype(np.float32) / 127.0
    keep = (on >= 0) & (on < n_frames)
    on_k, p_k, v_k = on[keep], pitch[keep], vel[keep]
    low = 1.0 - (p_k - 21) / 88.0
    np.add.at(x, (on_k, p_k % 12), v_k)
    np.add.at(x, (on_k, 12 + np.searchsorted(_BANDS, p_k, side="right") - 1), v_k)
    np.add.at(x[:, 20], on_k, 1.0)
    x[:, 20] = np.log1p(x[:, 20])
    np.maximum.at(x[:, 21], on_k, v_k)
    np.maximum.at(x[:, 22], on_k, low)
    np.add.at(x[:, 23], on_k, np.log1p(notes[keep, 1] - notes[keep, 0]).astype(np.float32))
    np.add.at(x[:, 38], on_k, v_k)
    x[:, 38] = np.sqrt(x[:, 38])
    # sounding notes: +1 at the onset frame and -1 at the offset frame, summed along time per pitch class
    starts, ends = np.clip(on, 0, n_frames), np.clip(off, 0, n_frames)
    delta = np.zeros((n_frames + 1, 12), dtype=np.float32)
    np.add.at(delta, (starts, pitch % 12), 1.0)
    np.add.at(delta, (ends, pitch % 12), -1.0)
    sounding = np.cumsum(delta, axis=0)[:n_frames]
    x[:, 24:36] = sounding > 0.5
    x[:, 36] = sounding.sum(axis=1) / 10.0
    x[:, 39] = sounding.sum(axis=1) > 0.5
    lowest = np.zeros(n_frames + 1, dtype=np.float32)
    for p in np.unique(pitch)[::-1]:  # high to low, so the lowest sounding pitch writes last
        sel = pitch == p
        d = np.zeros(n_frames + 1, dtype=np.int32)
        np.add.at(d, starts[sel], 1)
        np.add.at(d, ends[sel], -1)
        lowest[np.cumsum(d) > 0] = 1.0 - (p - 21) / 88.0
    x[:, 37] = lowest[:n_frames]
    return x


class ResidualBlock(nn.Module):
    """x + mix(dropout(elu(dilated conv(x)))): (batch, channels, frames) -> same."""

    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, padding=2 * dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.drop(F.elu(self.conv(x))))


class BeatTracker(nn.Module):
    """(batch, frames, N_FEATURES) -> beat and downbeat logits (batch, frames, 2)."""

    def __init__(self, cfg: BeatTrackerConfig = BeatTrackerConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.inp = nn.Conv1d(N_FEATURES, c, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(c, 2**i, cfg.dropout) for i in range(cfg.blocks)])
        self.out = nn.Conv1d(c, len(HEADS), 1)
        with torch.no_grad():  # start at the label priors (about 4% and 1% of frames), not at 0.5
            self.out.bias.copy_(torch.tensor([np.log(0.04 / 0.96), np.log(0.01 / 0.99)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(F.elu(self.inp(x.transpose(1, 2))))
        return self.out(h).transpose(1, 2)

    def loss(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked, positively weighted BCE per head; target (b, t, 2) in [0, 1], mask (b, t) 1 where annotated."""
        pos = torch.tensor([self.cfg.beat_pos_weight, self.cfg.downbeat_pos_weight], device=logits.device)
        per = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos, reduction="none")  # (b, t, 2)
        m = mask.unsqueeze(-1)
        heads = (per * m).sum(dim=(0, 1)) / m.sum().clamp(min=1.0)
        return heads.sum(), {f"loss_{h}": heads[i].detach() for i, h in enumerate(HEADS)}

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """batch: features (b, t, N_FEATURES), target (b, t, 2), mask (b, t)."""
        return self.loss(self(batch["features"].float()), batch["target"].float(), batch["mask"].float())

    @torch.no_grad()
    def predict(self, notes: np.ndarray, n_frames: int | None = None) -> np.ndarray:
        """Beat and downbeat activations (frames, 2) in [0, 1] of a note list (n, 4), at FPS."""
        n = n_frames_of(notes) if n_frames is None else n_frames
        x = torch.from_numpy(note_features(notes, n)).unsqueeze(0)
        device = next(self.parameters()).device
        return torch.sigmoid(self(x.to(device)))[0].cpu().numpy()
