"""Source-filter WaveNet: the WaveNet's dilated, gated, residual stack filtering a source computed from the MIDI.

After neural source-filter vocoders (Wang, Takaki and Yamagishi 2019) and
DDSP-Piano (Renault et al. 2022). The source (w2m2w.models.source.piano_source) is a
crude additive piano: inharmonic partials with decays, a hammer burst and
note-following noise, in a few channels. This network turns it into the
target piano's sound. It is the WaveNet of models.wavenet with three changes
that let it learn on a CPU budget:

- its input is the source, not the previous audio sample, so it is not
  autoregressive: every sample is computed in parallel, in training and in
  rendering;
- its convolutions are non-causal (kernel 3, dilation d: x[t-d], x[t], x[t+d]),
  since nothing has to be generated before it is read;
- it outputs the waveform directly and is trained with a multi-resolution
  STFT loss (auraloss), not a softmax over mu-law classes.

What stays: the dilation cycle, the gate tanh(a) * sigmoid(b), residual and
skip connections, and the local conditioning: the piano roll (per key onset,
sustain, velocity at 100 Hz, features.conditioning_roll) goes through a small
non-causal frame-rate network into one bias per layer and frame, repeated
over the frame's hop of samples.

The output is a learned mix of the skip sum (through a small head) plus a
learned linear mix of the source channels, multiplied by the source's gate,
so where no note sounds the audio is exactly zero.

Layout: audio-rate layers work on (batch, time, channels) with Linear layers
(a kernel-3 dilated conv is one matmul of [x(t-d), x(t), x(t+d)]), which on a
CPU runs as one sgemm and is faster than conv1d at these widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from w2m2w.features import N_ROLL
from w2m2w.models.source import N_CHANNELS, SourceConfig, source_config_from
from w2m2w.models.wavenet import RollConditioning, gated_residual_skip

MODEL_NAME = "source_filter_wavenet"  # in its weights files' metadata


@dataclass
class SourceFilterConfig:
    residual_channels: int = 16
    skip_channels: int = 32
    layers: int = 8
    dilation_cycle: int = 8  # dilations 1, 2, ..., 2**(cycle-1), then again from 1
    cond_channels: int = 64  # width of the frame-rate conditioning network
    cond_layers: int = 2
    cond_kernel: int = 3  # odd
    hop_length: int = 160  # samples per conditioning frame (100 Hz at 16 kHz)
    sample_rate: int = 16000
    source_gain: float = 0.3  # the source is scaled by this before the first layer (keeps activations near unit size)
    source: dict = field(default_factory=dict)  # SourceConfig fields; missing ones take SourceConfig's defaults

    def __post_init__(self) -> None:
        # every source setting spelled out, so weights record what they were trained with even if a default moves
        self.source = asdict(source_config_from(self.source))


class SourceFilterWaveNet(RollConditioning, nn.Module):
    """Non-causal WaveNet stack that maps source (batch, T, channels) + piano roll to audio (batch, T)."""

    def __init__(self, cfg: SourceFilterConfig = SourceFilterConfig()):
        super().__init__()
        self.cfg = cfg
        self.source_cfg: SourceConfig = source_config_from(cfg.source)
        R, S = cfg.residual_channels, cfg.skip_channels
        self.dilations = [2 ** (i % cfg.dilation_cycle) for i in range(cfg.layers)]
        self.input = nn.Linear(N_CHANNELS, R)
        self._add_conditioning()
        self.dilated = nn.ModuleList(nn.Linear(3 * R, 2 * R) for _ in self.dilations)
        self.res_skip = nn.ModuleList(nn.Linear(R, R + S) for _ in self.dilations)
        self.head1 = nn.Linear(S, S)
        self.head2 = nn.Linear(S, 1)
        self.direct = nn.Linear(N_CHANNELS, 1, bias=False)  # the source itself, mixed: where learning starts from
        nn.init.zeros_(self.head2.weight)
        nn.init.zeros_(self.head2.bias)

    @property
    def half_receptive_field(self) -> int:
        """Samples of source on each side that an output sample depends on."""
        return sum(self.dilations)

    def forward(self, source: torch.Tensor, gate: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
        """Audio (batch, T).

        source: (batch, T, N_CHANNELS) from piano_source; gate: (batch, T);
        roll: (batch, T / hop + 2 * cond_margin, 264). T is a multiple of hop.
        The edges see zeros beyond the segment (as 'same' padding), so callers
        that cut a long piece into windows add half_receptive_field of context.
        """
        B, T, _ = source.shape
        R, hop = self.cfg.residual_channels, self.cfg.hop_length
        if T % hop:
            raise ValueError(f"segment length {T} is not a multiple of hop_length {hop}")
        n_fr = T // hop
        cond = self.conditioning(roll)
        if cond.shape[1] != n_fr:
            raise ValueError(f"roll gives {cond.shape[1]} frames, audio needs {n_fr}")
        x = source * self.cfg.source_gain
        h = self.input(x)
        skip = 0.0
        last = len(self.dilated) - 1
        for i, (dil, rs) in enumerate(zip(self.dilated, self.res_skip)):
            d = self.dilations[i]
            p = F.pad(h, (0, 0, d, d))
            a = dil(torch.cat([p[:, :T], h, p[:, 2 * d :]], -1))
            a = (a.view(B, n_fr, hop, 2 * R) + cond[:, :, i].unsqueeze(2)).view(B, T, 2 * R)
            h, skip = gated_residual_skip(a, rs, h, skip, i == last)
        y = self.head2(F.relu(self.head1(F.relu(skip)))) + self.direct(x)
        return y.squeeze(-1) * gate

    def training_step(
        self,
        batch: dict[str, torch.Tensor],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        context: int,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Spectral loss (loss_fn, e.g. stft_loss's) of one batch of windows, and no extra figures.

        batch: source (batch, T, N_CHANNELS), gate (batch, T), roll (batch, T / hop + 2 * cond_margin, 264)
        and target audio (batch, T). Only the central T - 2 * context samples are scored: the edges saw
        zeros instead of the source around them.
        """
        y = central(self(batch["source"], batch["gate"], batch["roll"]), context)
        return loss_fn(y.unsqueeze(1), central(batch["target"], context).unsqueeze(1)), {}

    @torch.no_grad()
    def render(self, source: torch.Tensor, gate: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
        """forward() for inference, the same numbers with less memory traffic.

        source (T, N_CHANNELS), gate (T,), roll (T / hop + 2 * cond_margin, 264) -> audio (T,).
        Rendering is bound by memory passes, not multiply-adds: here each layer
        accumulates its three taps straight into one preallocated gate buffer
        (no concatenation, no new tensors) and adds its residual and skip outputs
        in place. The gate uses tanh(x) = 2 sigmoid(2x) - 1 with the tanh half's
        weights doubled, so one sigmoid runs over the whole contiguous buffer and
        an addcmul and a subtraction make z, instead of two passes over strided
        halves and a product (1.3x here). tests/unit/test_source_filter.py holds it to forward().
        """
        T = source.shape[0]
        R, hop = self.cfg.residual_channels, self.cfg.hop_length
        n_fr = T // hop
        D = max(self.dilations)
        cond = self.conditioning(roll[None])[0]  # (n_fr, L, 2R)
        x = source * self.cfg.source_gain
        buf = torch.zeros(T + 2 * D, R, dtype=source.dtype)  # h with D rows of zeros either side: the taps are views
        h = buf[D : D + T]
        torch.addmm(self.input.bias, x, self.input.weight.t(), out=h)
        skip = torch.zeros(T, self.cfg.skip_channels, dtype=source.dtype)
        skip_bias = 0.0
        a = torch.empty(T, 2 * R, dtype=source.dtype)
        last = len(self.dilated) - 1
        z = torch.empty(T, R, dtype=source.dtype)
        scale = torch.cat([torch.full((R,), 2.0), torch.ones(R)]).to(source.dtype)  # doubles the tanh half
        for i, (dil, rs) in enumerate(zip(self.dilated, self.res_skip)):
            d = self.dilations[i]
            w = dil.weight.t() * scale  # (3R, 2R): rows for x(t-d), x(t), x(t+d)
            a.view(n_fr, hop, 2 * R).copy_(((cond[:, i] + dil.bias) * scale).unsqueeze(1).expand(n_fr, hop, 2 * R))
            a.addmm_(buf[D - d : D - d + T], w[:R])
            a.addmm_(h, w[R : 2 * R])
            a.addmm_(buf[D + d : D + d + T], w[2 * R :])
            a.sigmoid_()
            g = a[:, R:]
            torch.addcmul(g, a[:, :R], g, value=2.0, out=z).sub_(
                g, alpha=2.0
            )  # (2 sigmoid(2x) - 1) sigmoid(y) = tanh(x) sigmoid(y)
            if i < last:
                h.addmm_(z, rs.weight[:R].t())
                h.add_(rs.bias[:R])
            skip.addmm_(z, rs.weight[R:].t())
            skip_bias = skip_bias + rs.bias[R:]
        skip.add_(skip_bias).relu_()
        y = self.head2(torch.relu_(self.head1(skip))) + self.direct(x)
        return y.squeeze(-1) * gate


def central(x: torch.Tensor, c: int) -> torch.Tensor:
    """x (batch, T, ...) without c samples at each end."""
    return x[:, c : x.shape[1] - c] if c else x


def log_mel_l1(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean |log mel(y) - log mel(t)| of (batch, 1, T) segments, each scaled to unit RMS first: the log-mel
    distance that evaluate reports (229 bands, 2048-point STFT, log floor 1e-5; features.log_mel), as a loss.
    MR-STFT's log term floors magnitudes at 1e-8, so it spends effort on valleys far below what the ear (and
    the distance) registers; this term weighs the spectrum as evaluate does (as HiFi-GAN's mel L1 loss)."""
    from w2m2w.features import log_mel

    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x[:, 0]
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-8)

    return (log_mel(unit(y)) - log_mel(unit(t))).abs().mean()


def stft_loss(
    fft_sizes: list[int], mel_weight: float = 0.0, sample_rate: int = 16000, log_mel_weight: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """auraloss's multi-resolution STFT loss (spectral convergence + log magnitude), hop = fft / 4, of
    (output, target), each (batch, 1, T); with mel_weight, plus that weight times auraloss's STFT loss on
    128 mel bands of a 2048-point STFT (the ear's frequency scale: high partials and noise weigh less, the
    low register more); with log_mel_weight, plus that weight times log_mel_l1."""
    import auraloss

    terms: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = [
        auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=list(fft_sizes), hop_sizes=[f // 4 for f in fft_sizes], win_lengths=list(fft_sizes)
        )
    ]
    if mel_weight:
        mel = auraloss.freq.STFTLoss(
            fft_size=2048, hop_size=256, win_length=2048, scale="mel", n_bins=128, sample_rate=sample_rate
        )
        terms.append(lambda y, t: mel_weight * mel(y, t))
    if log_mel_weight:
        terms.append(lambda y, t: log_mel_weight * log_mel_l1(y, t))
    return terms[0] if len(terms) == 1 else (lambda y, t: sum(term(y, t) for term in terms))


def source_filter_from_config(config: dict) -> SourceFilterWaveNet:
    """A model built from the config dict stored in a weights file."""
    unknown = set(config) - set(SourceFilterConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown source-filter WaveNet config keys {sorted(unknown)}")
    return SourceFilterWaveNet(SourceFilterConfig(**config))


__all__ = [
    "MODEL_NAME",
    "SourceFilterConfig",
    "SourceFilterWaveNet",
    "source_filter_from_config",
    "stft_loss",
    "N_ROLL",
]
