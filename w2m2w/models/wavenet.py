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

Optionally (excitation_harmonics > 0) every layer also adds a projection of a
per-sample harmonic excitation, sinusoids at the sounding notes' first few
harmonics (features.excitation, as the source signal of neural source-filter
vocoders). Wave2Midi2Wave had only the roll; the roll says which keys sound but
not the period of the waveform, which a sample-level model is slow to learn on
a CPU budget. The excitation is a fixed function of the MIDI, so the model is
still a WaveNet conditioned on the MIDI; weights/README.md has the comparison.

The previous sample enters through an embedding of its class, as in WaveNet;
with scalar_input its mu-law value and linear amplitude also enter through a
linear layer (the embedding then starts at zero), so linear extrapolation of
the waveform is there from the first step instead of being learned class by
class.

Output over the 256 mu-law classes, either a softmax (one logit per class, as
WaveNet) or a mixture of logistics in the mu-law domain, discretised to the
classes (PixelCNN++). A softmax has to grow large logits to be sharp, which
Adam does a step at a time; a mixture moves a mean and shrinks a scale, so it
gets sharp, low-noise predictions far sooner. Which one the shipped model
uses, and what was measured, is in weights/README.md. Both sample one class
per step from one uniform, the same way in torch and numba.

Three ways to run it, which the tests hold to the same logits:
- forward(): teacher forcing over a whole segment (training);
- IncrementalState/step(): fast WaveNet (Paine et al. 2016), one queue of past
  activations per layer, one step per layer per sample, batched (CPU or GPU);
- models.wavenet_numba: the same step as a compiled CPU kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from w2m2w.audio import mu_law_decode
from w2m2w.features import N_ROLL
from w2m2w.settings import setting

MODEL_NAME = "wavenet"  # in its weights files' metadata

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
    # harmonics of the excitation (features.excitation: sin and cos each) added in every layer; 0 = piano roll only, as Wave2Midi2Wave
    excitation_harmonics: int = 0
    # the previous sample also enters as numbers (mu-law value and linear amplitude) through a linear layer,
    # so the first layers can predict by linear extrapolation from the start; False = embedding only, as WaveNet
    scalar_input: bool = False
    # output distribution over the 256 mu-law classes: "softmax" (one logit per class, as WaveNet) or
    # "logistic_mixture" (a mixture of `mixtures` logistics in the mu-law domain, discretised to the classes)
    output: str = setting("softmax", choices=("softmax", "logistic_mixture"))
    mixtures: int = 10


def gated_residual_skip(
    a: torch.Tensor, res_skip: nn.Linear, h: torch.Tensor, skip: torch.Tensor | float, last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's gate tanh(a) * sigmoid(b) over (..., 2R) inputs `a`, then its residual and skip outputs in one
    matmul: the new (h, skip). The last layer's residual is never read, so only its skip half is computed."""
    R = h.shape[-1]
    z = torch.tanh(a[..., :R]) * torch.sigmoid(a[..., R:])
    if last:
        return h, skip + F.linear(z, res_skip.weight[R:], res_skip.bias[R:])
    out = res_skip(z)
    return h + out[..., :R], skip + out[..., R:]


class RollConditioning:
    """The local conditioning this WaveNet and the source-filter one (models.source_filter) share: `cond_layers`
    non-causal convolutions over the piano roll's frames, then one projection to every layer's gate biases.

    A base of the nn.Module: cond_net and cond_proj are the model's own attributes, so the weights' names
    (cond_net.0.weight, cond_proj.bias, ...) are those the shipped files hold."""

    cfg: Any  # cond_layers, cond_kernel, cond_channels, layers, residual_channels
    cond_net: nn.Sequential
    cond_proj: nn.Conv1d

    def _add_conditioning(self) -> None:
        """cond_net and cond_proj for self.cfg (call where the model registers them: the weights' order)."""
        cfg = self.cfg
        if cfg.cond_kernel % 2 != 1:  # the network is centred on its frame: an even kernel has no centre
            raise ValueError("cond_kernel must be odd")
        C, R = cfg.cond_channels, cfg.residual_channels
        cond = []
        for i in range(cfg.cond_layers):
            cond += [nn.Conv1d(N_ROLL if i == 0 else C, C, cfg.cond_kernel), nn.ReLU()]
        self.cond_net = nn.Sequential(*cond)
        # one projection of the conditioning per layer, all layers in one matrix
        self.cond_proj = nn.Conv1d(C, cfg.layers * 2 * R, 1)

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


class WaveNet(RollConditioning, nn.Module):
    """Piano-roll-conditioned WaveNet over mu-law classes."""

    def __init__(self, cfg: WaveNetConfig = WaveNetConfig()):
        super().__init__()
        self.cfg = cfg
        R, S = cfg.residual_channels, cfg.skip_channels
        self.dilations = [2 ** (i % cfg.dilation_cycle) for i in range(cfg.layers)]
        self.embed = nn.Embedding(cfg.n_classes, R)
        self.input_proj = None
        if cfg.scalar_input:
            self.input_proj = nn.Linear(2, R)
            nn.init.zeros_(self.embed.weight)  # start from the linear input; the table learns what it cannot say
            k = np.arange(cfg.n_classes)
            feats = np.stack([2 * k / (cfg.n_classes - 1) - 1, mu_law_decode(k, cfg.n_classes - 1)], 1)
            self.register_buffer("_input_feats", torch.tensor(feats, dtype=torch.float32), persistent=False)
        self._add_conditioning()
        # per-sample excitation -> gate inputs of every layer, all layers in one matrix (no bias: cond_proj has it)
        E = 2 * cfg.excitation_harmonics
        self.exc_proj = nn.Linear(E, cfg.layers * 2 * R, bias=False) if E else None
        # Audio-rate layers work on (batch, time, channels) with Linear layers: the kernel-2
        # dilated conv is one matmul of [x(t-d), x(t)], 1x1 convs are plain matmuls. On CPU
        # this runs as sgemm, about twice as fast as torch's conv1d for these channel counts.
        self.dilated = nn.ModuleList(nn.Linear(2 * R, 2 * R) for _ in self.dilations)
        # residual and skip outputs of a layer in one matmul (the last layer's residual half is unused)
        self.res_skip = nn.ModuleList(nn.Linear(R, R + S) for _ in self.dilations)
        self.head1 = nn.Linear(S, cfg.output_channels)
        if cfg.output not in ("softmax", "logistic_mixture"):
            raise ValueError(f"unknown WaveNet output {cfg.output!r}: softmax or logistic_mixture")
        self.head2 = nn.Linear(cfg.output_channels, self.out_size)

    @property
    def out_size(self) -> int:
        """Width of the head's output: logits per class, or (weight logit, mean, log scale) per mixture component."""
        return self.cfg.n_classes if self.cfg.output == "softmax" else 3 * self.cfg.mixtures

    def input_table(self) -> torch.Tensor:
        """(256, R): what each previous-sample class feeds the first layer (the embedding, plus the scalar input's projection)."""
        if self.input_proj is None:
            return self.embed.weight
        return self.embed.weight + self.input_proj(self._input_feats)

    @property
    def receptive_field(self) -> int:
        """Samples of audio history a prediction depends on (including the previous sample)."""
        return sum(self.dilations) + 1

    def exc_weight(self, layer: int) -> torch.Tensor:
        """(2R, 2 * harmonics) projection of the excitation into one layer's gate inputs."""
        return self.exc_proj.weight.view(self.cfg.layers, 2 * self.cfg.residual_channels, -1)[layer]

    def _check_exc(self, exc: torch.Tensor | None) -> None:
        if (exc is None) != (self.exc_proj is None):
            raise ValueError(
                "this WaveNet needs an excitation input" if exc is None else "this WaveNet takes no excitation input"
            )

    def forward(self, x: torch.Tensor, roll: torch.Tensor, exc: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits.

        x: (batch, T) mu-law classes of the audio, T a multiple of hop_length;
        the logits at t predict x[:, t] from x[:, :t] (x[:, -1] is taken as silence).
        roll: (batch, T / hop + 2 * cond_margin, 264). exc: (batch, T, 2 * harmonics)
        from features.excitation when the model has excitation_harmonics.
        Returns the head's output (batch, T, out_size): class logits, or mixture parameters.
        """
        self._check_exc(exc)
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
        h = F.embedding(prev, self.input_table())  # (B, T, R)
        skip = 0.0
        last = len(self.dilated) - 1
        for i, (dil, rs) in enumerate(zip(self.dilated, self.res_skip)):
            d = self.dilations[i]
            past = F.pad(h, (0, 0, d, 0))[:, :T]  # x(t-d); zeros before the segment, as the incremental queues start
            a = dil(torch.cat([past, h], -1))
            # add frame f's bias to its hop of samples without materialising the repeated tensor
            a = (a.view(B, n_fr, hop, 2 * R) + cond[:, :, i].unsqueeze(2)).view(B, T, 2 * R)
            if exc is not None:
                a = a + F.linear(exc, self.exc_weight(i))
            h, skip = gated_residual_skip(a, rs, h, skip, i == last)
        return self.head2(F.relu(self.head1(F.relu(skip))))

    def loss(self, x: torch.Tensor, roll: torch.Tensor, exc: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy (nats per sample) of predicting x under teacher forcing."""
        return self.nll(self(x, roll, exc), x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None], bf16: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean cross-entropy (nats per sample) of one batch under teacher forcing, and no extra figures.

        batch: mu-law classes (batch, T), rolls (batch, T/hop + 2 * cond_margin, 264) and excitation
        (batch, T, 2 * harmonics) or None. bf16 runs the network under bfloat16 autocast; the loss is float32.
        """
        x, roll, exc = batch
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = self(x, roll, exc)
        return self.nll(out, x), {}

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood (nats per sample) of classes x (batch, T) under head outputs (batch, T, out_size)."""
        out = out.float()
        if self.cfg.output == "softmax":
            return F.cross_entropy(out.reshape(-1, self.cfg.n_classes), x.reshape(-1))
        return -mixture_log_prob(out, x, self.cfg.n_classes).mean()

    def sample(self, out: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Classes (batch,) drawn from head outputs (batch, out_size) with uniforms u (batch,)."""
        if self.cfg.output == "softmax":
            return sample_inverse_cdf(out, u, temperature)
        return sample_mixture(out, u, temperature, self.cfg.n_classes)


class IncrementalState:
    """Fast WaveNet generation state for a batch of independent streams (Paine et al. 2016).

    Layer i keeps a circular queue of its last `dilation` inputs, so a step
    reads x[t - d] from the queue and writes x[t] in its place: one step per
    layer per sample instead of a pass over the receptive field. Starts from
    silence with zero queues, exactly as forward() pads a segment.
    """

    def __init__(
        self, model: WaveNet, batch: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ):
        self.model = model
        device = device or next(model.parameters()).device
        R = model.cfg.residual_channels
        self.queues = [torch.zeros(batch, d, R, device=device, dtype=dtype) for d in model.dilations]
        self.prev = torch.full((batch,), SILENCE, dtype=torch.long, device=device)
        self.t = 0

    @torch.no_grad()
    def step(
        self, cond_t: torch.Tensor, prev: torch.Tensor | None = None, exc_t: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One sample for every stream.

        cond_t: (batch, layers, 2R) conditioning of the current frame.
        prev: (batch,) classes of the previous sample (default: the last one fed).
        exc_t: (batch, 2 * harmonics) excitation of the current sample, for models that take it.
        Returns the head's output (batch, out_size); the caller feeds back what it samples via `prev`.
        """
        m = self.model
        R = m.cfg.residual_channels
        if prev is not None:
            self.prev = prev
        x = F.embedding(self.prev, m.input_table())  # (B, R)
        skip = 0.0
        last = len(self.queues) - 1
        for i, q in enumerate(self.queues):
            slot = self.t % q.shape[1]
            a = m.dilated[i](torch.cat([q[:, slot], x], 1)) + cond_t[:, i]
            if exc_t is not None:
                a = a + F.linear(exc_t, m.exc_weight(i))
            q[:, slot] = x  # after reading x[t - d] from the same slot
            z = torch.tanh(a[:, :R]) * torch.sigmoid(a[:, R:])
            out = m.res_skip[i](z)
            if i < last:
                x = x + out[:, :R]
            skip = skip + out[:, R:]
        self.t += 1
        return m.head2(F.relu(m.head1(F.relu(skip))))


def mixture_log_prob(out: torch.Tensor, x: torch.Tensor, n_classes: int = 256) -> torch.Tensor:
    """Log-probability of classes x (...) under a discretised mixture of logistics out (..., 3K).

    out holds K weight logits, K means and K log scales, in the mu-law domain
    [-1, 1] where class k sits at 2k/(n-1) - 1 with bins 2/(n-1) wide; the
    first and last bins take the tails, so the n class probabilities sum to 1
    (PixelCNN++, Salimans et al. 2017, on one channel).
    """
    K = out.shape[-1] // 3
    logit_w, mu, log_s = out[..., :K], out[..., K : 2 * K], out[..., 2 * K :].clamp(min=-7.0)
    c = (2.0 * x.to(out.dtype) / (n_classes - 1) - 1.0).unsqueeze(-1)
    half = 1.0 / (n_classes - 1)
    inv_s = torch.exp(-log_s)
    centered = c - mu
    plus, minus = inv_s * (centered + half), inv_s * (centered - half)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest bin's whole left tail
    log_1m_cdf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)): the highest bin's right tail
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * centered
    log_pdf_mid = (
        mid - log_s - 2.0 * F.softplus(mid) + math.log(2 * half)
    )  # density x bin width, where delta underflows
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
    lp = torch.where(c < -1 + half, log_cdf_plus, torch.where(c > 1 - half, log_1m_cdf_minus, inner))
    return torch.logsumexp(lp + F.log_softmax(logit_w, -1), -1)


def sample_mixture(out: torch.Tensor, u: torch.Tensor, temperature: float = 1.0, n_classes: int = 256) -> torch.Tensor:
    """One class per row from mixture parameters out (batch, 3K) and ONE uniform u (batch,).

    The component is the first whose cumulative weight (softmax of logits /
    temperature) exceeds u * total; where u falls inside that component's share
    is itself uniform and drives the logistic draw, mu + s * temperature *
    logit(v), rounded to the nearest class. The numba kernel does the same.
    """
    K = out.shape[-1] // 3
    w = torch.exp((out[:, :K] - out[:, :K].max(1, keepdim=True).values) / temperature)
    c = torch.cumsum(w, 1)
    target = (u.to(c.dtype) * c[:, -1]).unsqueeze(1)
    j = torch.searchsorted(c, target, right=True).clamp_(max=K - 1)
    lo = torch.where(j > 0, c.gather(1, (j - 1).clamp(min=0)), torch.zeros_like(target))
    v = ((target - lo) / w.gather(1, j)).clamp(1e-5, 1 - 1e-5).squeeze(1)
    j = j.squeeze(1)
    mu = out[:, K : 2 * K].gather(1, j[:, None]).squeeze(1)
    s = torch.exp(out[:, 2 * K :].gather(1, j[:, None]).squeeze(1).clamp(min=-7.0)) * temperature
    y = (mu + s * (torch.log(v) - torch.log1p(-v))).clamp(-1.0, 1.0)
    return torch.floor((y + 1.0) * (0.5 * (n_classes - 1)) + 0.5).long().clamp_(0, n_classes - 1)


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

    def __init__(self, model: WaveNet, cond: torch.Tensor, temperature: float = 1.0, exc: torch.Tensor | None = None):
        model._check_exc(exc)
        self.model = model
        self.cond = cond
        self.exc = exc  # (batch, samples, 2 * harmonics) or None
        self.hop = model.cfg.hop_length
        self.temperature = temperature
        self.state = IncrementalState(model, cond.shape[0], cond.device, cond.dtype)

    @torch.no_grad()
    def advance(
        self,
        n_steps: int,
        uniforms: torch.Tensor | None = None,
        forced: torch.Tensor | None = None,
        return_logits: bool = False,
    ):
        """Classes (batch, n_steps) long, and logits (batch, n_steps, 256) with return_logits.

        uniforms (batch, n_steps) drive the sampling; forced (batch, n_steps)
        classes are fed instead of samples (teacher forcing, for tests).
        """
        st = self.state
        if n_steps > 0 and (st.t + n_steps - 1) // self.hop >= self.cond.shape[1]:
            raise ValueError(f"conditioning has {self.cond.shape[1]} frames, too few for sample {st.t + n_steps - 1}")
        B, dev = self.cond.shape[0], self.cond.device
        out = torch.empty(B, n_steps, dtype=torch.long, device=dev)
        logits_all = torch.empty(B, n_steps, self.model.out_size, device=dev) if return_logits else None
        for s in range(n_steps):
            logits = st.step(self.cond[:, st.t // self.hop], exc_t=None if self.exc is None else self.exc[:, st.t])
            if return_logits:
                logits_all[:, s] = logits
            k = forced[:, s] if forced is not None else self.model.sample(logits, uniforms[:, s], self.temperature)
            out[:, s] = k
            st.prev = k
        return (out, logits_all) if return_logits else out


def generate_torch(
    model: WaveNet,
    cond: torch.Tensor,
    uniforms: torch.Tensor | None = None,
    forced: torch.Tensor | None = None,
    temperature: float = 1.0,
    return_logits: bool = False,
    exc: torch.Tensor | None = None,
):
    """Generate frames * hop samples for every stream of cond (batch, frames, L, 2R) in one go.

    exc: (batch, frames * hop, 2 * harmonics) for models with excitation.
    Returns classes (batch, n) and, with return_logits, logits (batch, n, 256).
    """
    n = cond.shape[1] * model.cfg.hop_length
    return TorchGenerator(model, cond, temperature, exc).advance(n, uniforms, forced, return_logits)


def wavenet_from_config(config: dict) -> WaveNet:
    """A WaveNet built from the config dict stored in a weights file."""
    known = set(WaveNetConfig.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown WaveNet config keys {sorted(unknown)}")
    return WaveNet(WaveNetConfig(**config))


def macs_per_sample(cfg: WaveNetConfig) -> int:
    """Multiply-adds of one generation step (the conditioning is per frame and left out)."""
    R, S, H = cfg.residual_channels, cfg.skip_channels, cfg.output_channels
    per_layer = 2 * R * 2 * R + R * (R + S) + 2 * cfg.excitation_harmonics * 2 * R
    return cfg.layers * per_layer - R * R + S * H + H * (cfg.n_classes if cfg.output == "softmax" else 3 * cfg.mixtures)


__all__ = [
    "WaveNet",
    "WaveNetConfig",
    "IncrementalState",
    "TorchGenerator",
    "generate_torch",
    "sample_inverse_cdf",
    "sample_mixture",
    "mixture_log_prob",
    "SILENCE",
    "N_ROLL",
]
