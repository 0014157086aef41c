"""A WaveNet (van den Oord et al. 2016) conditioned on a piano roll, as Wave2Midi2Wave used one.

16 kHz audio as 8-bit mu-law classes. A stack of dilated causal convolutions
(kernel 2) with gated activations, residual and skip connections; every layer
adds its own projection of the local conditioning (per key onset, sustain and
velocity, see features.conditioning_roll) to its gate inputs. The roll lives at
a frame rate (100 Hz): a small non-causal convolutional network at that rate
turns it into one bias per layer and frame, and each frame's bias is repeated
over its hop of samples. Repetition instead of a learned transposed
convolution keeps the conditioning cost per frame, not per sample: in
generation it is computed once per 160 samples, outside the sequential loop.

Output: a 256-way softmax over mu-law classes. Not a mixture of logistics:
at this size and training budget (a couple of CPU hours) the categorical
output trains faster and more stably, its inverse-CDF sampling is simple to
make identical in torch and numba, and a mixture's advantage (16-bit output,
smoother spectra) shows only after long training; we have not measured it
sounding better for the same compute, so we keep the published choice.

Three ways to run it, which the tests hold to the same logits:
- forward(): teacher forcing over a whole segment (training);
- IncrementalState/step(): fast WaveNet (Paine et al. 2016), one queue of past
  activations per layer, one step per layer per sample, batched (CPU or GPU);
- models.wavenet_numba: the same step as a compiled CPU kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..midi import N_KEYS

N_ROLL = 3 * N_KEYS  # onset, frame, velocity per key
SILENCE = 128  # mu_law_encode(0.0): the input before the first sample


@dataclass
class WaveNetConfig:
    residual_channels: int = 32
    skip_channels: int = 64
    output_channels: int = 128  # hidden width of the output head
    layers: int = 14
    dilation_cycle: int = 10  # dilations 1, 2, ..., 2**(cycle-1), then again from 1
    cond_channels: int = 64  # width of the frame-rate conditioning network
    cond_layers: int = 2
    cond_kernel: int = 3  # odd; each layer sees (kernel-1)/2 frames either side
    hop_length: int = 160  # samples per conditioning frame (100 Hz at 16 kHz)
    sample_rate: int = 16000
    n_classes: int = 256


class WaveNet(nn.Module):
    """Piano-roll-conditioned WaveNet over mu-law classes."""

    def __init__(self, cfg: WaveNetConfig = WaveNetConfig()):
        super().__init__()
        if cfg.cond_kernel % 2 != 1:
            raise ValueError("cond_kernel must be odd")
        self.cfg = cfg
        R, S, C = cfg.residual_channels, cfg.skip_channels, cfg.cond_channels
        self.dilations = [2 ** (i % cfg.dilation_cycle) for i in range(cfg.layers)]
        self.embed = nn.Embedding(cfg.n_classes, R)
        cond = []
        for i in range(cfg.cond_layers):
            cond += [nn.Conv1d(N_ROLL if i == 0 else C, C, cfg.cond_kernel), nn.ReLU()]
        self.cond_net = nn.Sequential(*cond)
        # one projection of the conditioning per layer, all layers in one matrix
        self.cond_proj = nn.Conv1d(C, cfg.layers * 2 * R, 1)
        # Audio-rate layers work on (batch, time, channels) with Linear layers: the kernel-2
        # dilated conv is one matmul of [x(t-d), x(t)], 1x1 convs are plain matmuls. On CPU
        # this runs as sgemm, about twice as fast as torch's conv1d for these channel counts.
        self.dilated = nn.ModuleList(nn.Linear(2 * R, 2 * R) for _ in self.dilations)
        # residual and skip outputs of a layer in one matmul (the last layer's residual half is unused)
        self.res_skip = nn.ModuleList(nn.Linear(R, R + S) for _ in self.dilations)
        self.head1 = nn.Linear(S, cfg.output_channels)
        self.head2 = nn.Linear(cfg.output_channels, cfg.n_classes)

    @property
    def receptive_field(self) -> int:
        """Samples of audio history a prediction depends on (including the previous sample)."""
        return sum(self.dilations) + 1

    @property
    def cond_margin(self) -> int:
        """Frames of roll context needed on each side of the frames being conditioned."""
        return self.cfg.cond_layers * (self.cfg.cond_kernel - 1) // 2

    def conditioning(self, roll: torch.Tensor) -> torch.Tensor:
        """Per-layer gate biases at the frame rate.

        roll: (batch, frames + 2 * cond_margin, 264), margin frames on both sides.
        Returns (batch, frames, layers, 2 * residual_channels).
        """
        h = self.cond_proj(self.cond_net(roll.transpose(1, 2)))  # (b, L*2R, frames)
        b, _, f = h.shape
        return h.transpose(1, 2).reshape(b, f, self.cfg.layers, 2 * self.cfg.residual_channels)

    def forward(self, x: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits.

        x: (batch, T) mu-law classes of the audio, T a multiple of hop_length;
        the logits at t predict x[:, t] from x[:, :t] (x[:, -1] is taken as silence).
        roll: (batch, T / hop + 2 * cond_margin, 264). Returns (batch, T, 256).
        """
        cfg = self.cfg
        B, T = x.shape
        R, hop = cfg.residual_channels, cfg.hop_length
        if T % hop:
            raise ValueError(f"segment length {T} is not a multiple of hop_length {hop}")
        n_fr = T // hop
        cond = self.conditioning(roll)  # (B, n_fr, L, 2R)
        if cond.shape[1] != n_fr:
            raise ValueError(f"roll gives {cond.shape[1]} frames, audio needs {n_fr}")
        prev = F.pad(x[:, :-1], (1, 0), value=SILENCE)
        h = self.embed(prev)  # (B, T, R)
        skip = 0.0
        last = len(self.dilated) - 1
        for i, (dil, rs) in enumerate(zip(self.dilated, self.res_skip)):
            d = self.dilations[i]
            past = F.pad(h, (0, 0, d, 0))[:, :T]  # x(t-d); zeros before the segment, as the incremental queues start
            a = dil(torch.cat([past, h], -1))
            # add frame f's bias to its hop of samples without materialising the repeated tensor
            a = (a.view(B, n_fr, hop, 2 * R) + cond[:, :, i].unsqueeze(2)).view(B, T, 2 * R)
            z = torch.tanh(a[..., :R]) * torch.sigmoid(a[..., R:])
            if i < last:
                out = rs(z)
                h = h + out[..., :R]
                skip = skip + out[..., R:]
            else:
                skip = skip + F.linear(z, rs.weight[R:], rs.bias[R:])
        return self.head2(F.relu(self.head1(F.relu(skip))))

    def loss(self, x: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per sample) of predicting x under teacher forcing."""
        return F.cross_entropy(self(x, roll).reshape(-1, self.cfg.n_classes), x.reshape(-1))


class IncrementalState:
    """Fast WaveNet generation state for a batch of independent streams (Paine et al. 2016).

    Layer i keeps a circular queue of its last `dilation` inputs, so a step
    reads x[t - d] from the queue and writes x[t] in its place: one step per
    layer per sample instead of a pass over the receptive field. Starts from
    silence with zero queues, exactly as forward() pads a segment.
    """

    def __init__(self, model: WaveNet, batch: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        self.model = model
        device = device or next(model.parameters()).device
        R = model.cfg.residual_channels
        self.queues = [torch.zeros(batch, d, R, device=device, dtype=dtype) for d in model.dilations]
        self.prev = torch.full((batch,), SILENCE, dtype=torch.long, device=device)
        self.t = 0

    @torch.no_grad()
    def step(self, cond_t: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """One sample for every stream.

        cond_t: (batch, layers, 2R) conditioning of the current frame.
        prev: (batch,) classes of the previous sample (default: the last one fed).
        Returns logits (batch, 256); the caller feeds back what it samples via `prev`.
        """
        m = self.model
        R = m.cfg.residual_channels
        if prev is not None:
            self.prev = prev
        x = m.embed(self.prev)  # (B, R)
        skip = 0.0
        last = len(self.queues) - 1
        for i, q in enumerate(self.queues):
            slot = self.t % q.shape[1]
            a = m.dilated[i](torch.cat([q[:, slot], x], 1)) + cond_t[:, i]
            q[:, slot] = x  # after reading x[t - d] from the same slot
            z = torch.tanh(a[:, :R]) * torch.sigmoid(a[:, R:])
            out = m.res_skip[i](z)
            if i < last:
                x = x + out[:, :R]
            skip = skip + out[:, R:]
        self.t += 1
        return m.head2(F.relu(m.head1(F.relu(skip))))


def sample_inverse_cdf(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Draw one class per row: the first k whose cumulative softmax exceeds u * total.

    logits: (batch, classes); u: (batch,) uniform in [0, 1). The numba kernel
    samples the same way, so equal logits and uniforms give equal samples.
    """
    p = torch.exp((logits - logits.max(1, keepdim=True).values) / temperature)
    c = torch.cumsum(p, 1)
    k = torch.searchsorted(c, (u.to(c.dtype) * c[:, -1]).unsqueeze(1), right=True).squeeze(1)
    return k.clamp_(max=logits.shape[1] - 1)


class TorchGenerator:
    """Batched incremental generation with the torch step (the GPU path; also runs on CPU).

    Same interface as wavenet_numba.NumbaGenerator: cond (batch, frames, L, 2R)
    from model.conditioning (gate biases not folded in); advance() may be
    called repeatedly to generate a long segment in chunks.
    """

    def __init__(self, model: WaveNet, cond: torch.Tensor, temperature: float = 1.0):
        self.model = model
        self.cond = cond
        self.hop = model.cfg.hop_length
        self.temperature = temperature
        self.state = IncrementalState(model, cond.shape[0], cond.device, cond.dtype)

    @torch.no_grad()
    def advance(self, n_steps: int, uniforms: torch.Tensor | None = None, forced: torch.Tensor | None = None, return_logits: bool = False):
        """Classes (batch, n_steps) long, and logits (batch, n_steps, 256) with return_logits.

        uniforms (batch, n_steps) drive the sampling; forced (batch, n_steps)
        classes are fed instead of samples (teacher forcing, for tests).
        """
        st = self.state
        if n_steps > 0 and (st.t + n_steps - 1) // self.hop >= self.cond.shape[1]:
            raise ValueError(f"conditioning has {self.cond.shape[1]} frames, too few for sample {st.t + n_steps - 1}")
        B, dev = self.cond.shape[0], self.cond.device
        out = torch.empty(B, n_steps, dtype=torch.long, device=dev)
        logits_all = torch.empty(B, n_steps, self.model.cfg.n_classes, device=dev) if return_logits else None
        for s in range(n_steps):
            logits = st.step(self.cond[:, st.t // self.hop])
            if return_logits:
                logits_all[:, s] = logits
            k = forced[:, s] if forced is not None else sample_inverse_cdf(logits, uniforms[:, s], self.temperature)
            out[:, s] = k
            st.prev = k
        return (out, logits_all) if return_logits else out


def generate_torch(model: WaveNet, cond: torch.Tensor, uniforms: torch.Tensor | None = None, forced: torch.Tensor | None = None,
                   temperature: float = 1.0, return_logits: bool = False):
    """Generate frames * hop samples for every stream of cond (batch, frames, L, 2R) in one go.

    Returns classes (batch, n) and, with return_logits, logits (batch, n, 256).
    """
    n = cond.shape[1] * model.cfg.hop_length
    return TorchGenerator(model, cond, temperature).advance(n, uniforms, forced, return_logits)


def wavenet_from_config(config: dict) -> WaveNet:
    """A WaveNet built from the config dict stored in a weights file."""
    known = set(WaveNetConfig.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown WaveNet config keys {sorted(unknown)}")
    return WaveNet(WaveNetConfig(**config))


def param_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def macs_per_sample(cfg: WaveNetConfig) -> int:
    """Multiply-adds of one generation step (the conditioning is per frame and left out)."""
    R, S, H = cfg.residual_channels, cfg.skip_channels, cfg.output_channels
    per_layer = 2 * R * 2 * R + R * (R + S)
    return cfg.layers * per_layer - R * R + S * H + H * cfg.n_classes


__all__ = ["WaveNet", "WaveNetConfig", "IncrementalState", "TorchGenerator", "generate_torch", "sample_inverse_cdf", "SILENCE", "N_ROLL"]
