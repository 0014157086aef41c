"""The source of the source-filter WaveNet: a crude piano computed from the MIDI alone.

Neural source-filter vocoders (Wang, Takaki and Yamagishi 2019) and
DDSP-Piano (Renault et al. 2022) let a network shape a signal that already
has the right periods, instead of making the waveform up sample by sample.
Here the source is, for every note (onset s, offset s, MIDI pitch, velocity;
sustain pedal already applied):

- inharmonic partials f_k = k f0 sqrt(1 + B k^2), B rising with pitch (piano
  strings are stiff, more so the short treble ones), phase 0 at the onset
  sample, amplitude scaled by velocity, rolling off with k (less for loud
  notes: a harder hammer is brighter), decaying exponentially from the onset
  (faster for high notes and high partials) and damped at release;
- a short noise burst at the onset (the hammer);
- broadband noise that follows the notes' envelope (soundboard, strings).

The partials go to a few channels by harmonic number ([1], [2], [3-4], [5-8],
[9 and up]) so the filter can weigh them per pitch and velocity through its
conditioning. One more channel is the summed envelope itself.

`gate` is 1 wherever some note sounds (from onset to release tail, widened by
`gate_margin` samples, with short ramps) and 0 elsewhere: the filter's output
is multiplied by it, so where no note sounds the audio is exactly silent
(an ungated noise channel leaks hiss into silence otherwise).

Every value depends on the absolute sample index, never on where a window
starts: noise is a hash of the index, and each note's phase and decay are
computed from its onset. A window of a long piece is therefore exactly those
samples of the whole piece's source, so chunked rendering joins seamlessly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from w2m2w.constants import SAMPLE_RATE

# channels of the source signal
GROUPS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 1 << 30))  # partial numbers per harmonic channel (inclusive)
CHANNEL_NAMES = ("h1", "h2", "h3-4", "h5-8", "h9+", "hammer", "noise", "envelope")
N_CHANNELS = len(CHANNEL_NAMES)
_HAMMER, _NOISE, _ENV = len(GROUPS), len(GROUPS) + 1, len(GROUPS) + 2


@dataclass(frozen=True)
class SourceConfig:
    """Fixed physics-flavoured settings of the source (stored with the model's weights)."""

    partials: int = 32  # per note, up to max_freq (32 measured closer to the target piano than 16: weights/README.md)
    max_freq: float = 7600.0  # partials at or above this are left out (below Nyquist at 16 kHz)
    log10_b_low: float = -4.0  # inharmonicity B at A0 (MIDI 21) ...
    log10_b_high: float = -2.2  # ... and at C8 (MIDI 108), log-linear in between
    tau_low: float = 3.0  # amplitude e-folding time (s) of the fundamental at A0 ...
    tau_octave: float = 0.63  # ... multiplied by this per octave up
    tau_partial: float = 0.15  # partial k decays (1 + tau_partial (k - 1)) times faster
    rolloff_soft: float = 1.6  # amplitude of partial k ~ k^-rolloff, from velocity 0 ...
    rolloff_loud: float = 0.8  # ... to velocity 127
    velocity_power: float = 2.0  # note amplitude ~ (velocity / 127) ** velocity_power
    release_tau: float = 0.06  # damper: e-folding time (s) after the offset, at middle C (MIDI 60) ...
    release_taus: float = 6.0  # a note is cut this many release_tau after its offset
    hammer_tau: float = 0.004  # noise burst at the onset: e-folding time (s)
    hammer_seconds: float = 0.03
    gate_margin: int = 256  # samples the gate is widened on each side of a note (the filter's reach)
    gate_ramp: int = 160  # samples of linear ramp at the gate's edges
    release_tau_octave: float = 1.0  # ... multiplied by this per octave up (1: the same for every key, as trained)


# The release of the real piano (../shared's CC0 Bosendorfer, as recorded, its room included), measured on its training
# pieces with the teacher's labels by scripts/measure_release.py: amplitude e-folding time after the damper falls, median
# per octave 0.134 s (MIDI 36-47), 0.178 (48-59), 0.193 (60-71), 0.244 (72-83): 0.18 s at middle C, x1.22 per octave.
# Cut at 10.4 e-foldings: -90 dB, where a render ends (w2m2w.render.finish).
MEASURED_RELEASE = {"release_tau": 0.18, "release_tau_octave": 1.22, "release_taus": 10.4}


def release_seconds(pitch: float | np.ndarray, cfg: SourceConfig = SourceConfig()) -> float | np.ndarray:
    """The damper's e-folding time (s) for MIDI pitch(es): release_tau at middle C, x release_tau_octave per octave."""
    return cfg.release_tau * cfg.release_tau_octave ** ((np.asarray(pitch, dtype=np.float64) - 60.0) / 12.0)


def longest_release(cfg: SourceConfig = SourceConfig()) -> float:
    """Seconds from the latest offset to where the last note of any key is cut."""
    return float(np.max(release_seconds(np.array([21.0, 108.0]), cfg))) * cfg.release_taus


def inharmonicity(pitch: float | np.ndarray, cfg: SourceConfig = SourceConfig()) -> float | np.ndarray:
    """B of a string of MIDI pitch (log-linear from A0 to C8)."""
    frac = (np.asarray(pitch, dtype=np.float64) - 21.0) / 87.0
    return 10.0 ** (cfg.log10_b_low + (cfg.log10_b_high - cfg.log10_b_low) * frac)


def partial_frequencies(pitch: float, cfg: SourceConfig = SourceConfig()) -> np.ndarray:
    """Frequencies (Hz) of the partials the source plays for one pitch: f_k = k f0 sqrt(1 + B k^2), below max_freq."""
    f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
    k = np.arange(1, cfg.partials + 1, dtype=np.float64)
    f = k * f0 * np.sqrt(1.0 + inharmonicity(pitch, cfg) * k * k)
    return f[f < cfg.max_freq]


@numba.njit(cache=True, inline="always")
def _noise(i: int, salt: int) -> float:
    """Uniform in [-1, 1) from a hash of the absolute sample index (splitmix64)."""
    z = np.uint64(i) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt) * np.uint64(0xD1B54A32D192ED69)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (2.0 / 9007199254740992.0) - 1.0


_PARTIAL_FLOOR = 1e-5  # a partial 100 dB under its note's start (gain) is no longer computed


@numba.njit(cache=True, nogil=True)
def _render(on_i, off_i, pitch, vel, start, n, sr, params, group_lo, group_hi, out, gate):  # pragma: no cover - numba
    (
        partials,
        max_freq,
        b_lo,
        b_hi,
        tau_low,
        tau_oct,
        tau_part,
        roll_soft,
        roll_loud,
        vpow,
        rel_tau,
        rel_taus,
        ham_tau,
        ham_s,
        margin,
        ramp,
        rel_oct,
    ) = params
    partials = int(partials)
    n_groups = len(group_lo)
    margin = int(margin)
    ramp = int(ramp)
    ham_env = np.zeros(n)
    for j in range(len(on_i)):
        on, off = on_i[j], off_i[j]
        p = pitch[j]
        v = vel[j] / 127.0
        gain = v**vpow
        f0 = 440.0 * 2.0 ** ((p - 69.0) / 12.0)
        b = 10.0 ** (b_lo + (b_hi - b_lo) * (p - 21.0) / 87.0)
        tau0 = tau_low * tau_oct ** ((p - 21.0) / 12.0) * sr  # in samples
        rel = rel_tau * rel_oct ** ((p - 60.0) / 12.0) * sr
        end = off + int(rel_taus * rel)
        # gate: a trapezoid around [on, end), max over notes
        g0, g1 = on - margin, end + margin
        for i in range(max(g0 - ramp, start), min(g1 + ramp, start + n)):
            if i < g0:
                g = (i - (g0 - ramp)) / ramp
            elif i >= g1:
                g = ((g1 + ramp) - i) / ramp
            else:
                g = 1.0
            if g > gate[i - start]:
                gate[i - start] = g
        a = max(on, start)
        e = min(end, start + n)
        if e <= a:
            continue
        # release envelope: 1 until the offset, then exp(-(t - off) / rel)
        env_rel = np.ones(e - a)
        for i in range(max(off, a), e):
            env_rel[i - a] = math.exp(-(i - off) / rel)
        # slow envelope of the note (fundamental decay and release) for the noise and envelope channels
        r0 = math.exp(-1.0 / tau0)
        amp = gain * r0 ** (a - on)
        for i in range(a, e):
            out[i - start, _ENV] += amp * env_rel[i - a]
            amp *= r0
        roll = roll_soft + (roll_loud - roll_soft) * v
        # partials below max_freq, as arrays: the sample loop then updates all of them at once (independent
        # recursions pipeline and vectorise; one recursion per partial would wait on itself every sample)
        K = 0
        while K < partials and (K + 1) * f0 * math.sqrt(1.0 + b * (K + 1) * (K + 1)) < max_freq:
            K += 1
        if K == 0:
            continue
        ss, cc, aa = np.empty(K), np.empty(K), np.empty(K)
        cwv, swv, rkv = np.empty(K), np.empty(K), np.empty(K)
        m = a - on
        for q in range(K):
            k = q + 1
            w = 2.0 * math.pi * k * f0 * math.sqrt(1.0 + b * k * k) / sr
            rkv[q] = math.exp(-(1.0 + tau_part * (k - 1)) / tau0)
            aa[q] = gain * k ** (-roll) * rkv[q] ** m
            ss[q], cc[q] = math.sin(w * m), math.cos(w * m)
            cwv[q], swv[q] = math.cos(w), math.sin(w)
        floor = gain * _PARTIAL_FLOOR
        for i in range(a, e):
            er = env_rel[i - a]
            # a partial's level only falls (its decay, then the release), and falls faster the higher it is: once the
            # highest still played is 100 dB under the note's start it is left out for good (a long release's tail
            # costs the few partials still sounding, not all 32)
            while K > 0 and aa[K - 1] * er < floor:
                K -= 1
            if K == 0:
                break
            row = i - start
            for g in range(n_groups):
                lo, hi = group_lo[g] - 1, min(group_hi[g], K)
                acc = 0.0
                for q in range(lo, hi):
                    acc += aa[q] * ss[q]
                out[row, g] += acc * er
            for q in range(K):
                s_, c_ = ss[q], cc[q]
                ss[q] = s_ * cwv[q] + c_ * swv[q]
                cc[q] = c_ * cwv[q] - s_ * swv[q]
                aa[q] *= rkv[q]
        # hammer burst envelope
        he = min(on + int(ham_s * sr), start + n)
        for i in range(max(on, start), he):
            ham_env[i - start] += gain * math.exp(-(i - on) / (ham_tau * sr))
    for i in range(n):
        out[i, _HAMMER] = ham_env[i] * _noise(start + i, 1)
        out[i, _NOISE] = out[i, _ENV] * _noise(start + i, 2)


_GROUP_LO = np.array([lo for lo, _ in GROUPS], np.int64)
_GROUP_HI = np.array([min(hi, 1 << 20) for _, hi in GROUPS], np.int64)


def piano_source(
    notes: np.ndarray,
    n_samples: int,
    start_sample: int = 0,
    cfg: SourceConfig = SourceConfig(),
    sample_rate: int = SAMPLE_RATE,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The source of samples start_sample .. start_sample + n_samples - 1 of a piece.

    notes: (n, 4) onset s, offset s, MIDI pitch, velocity (sustain pedal applied).
    Returns (source (n_samples, N_CHANNELS) float32, gate (n_samples,) float32 in [0, 1]).
    Samples before 0 or after every note are zeros, so any window is valid. threads > 1 splits
    the window into that many consecutive parts computed side by side (the kernel releases the GIL);
    since any window is exact, the parts join into the same source (to float rounding).
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    n = max(int(n_samples), 0)
    out = np.zeros((n, N_CHANNELS), np.float64)
    gate = np.zeros(n, np.float64)
    if n and len(notes):
        on = np.round(notes[:, 0] * sample_rate).astype(np.int64)
        off = np.maximum(np.round(notes[:, 1] * sample_rate).astype(np.int64), on + 1)
        params = np.array(
            [
                cfg.partials,
                cfg.max_freq,
                cfg.log10_b_low,
                cfg.log10_b_high,
                cfg.tau_low,
                cfg.tau_octave,
                cfg.tau_partial,
                cfg.rolloff_soft,
                cfg.rolloff_loud,
                cfg.velocity_power,
                cfg.release_tau,
                cfg.release_taus,
                cfg.hammer_tau,
                cfg.hammer_seconds,
                cfg.gate_margin,
                max(cfg.gate_ramp, 1),
                cfg.release_tau_octave,
            ],
            dtype=np.float64,
        )
        pitch, vel = notes[:, 2].copy(), notes[:, 3].copy()
        parts = max(1, min(int(threads), n // 8000))
        edges = np.linspace(0, n, parts + 1).astype(np.int64)

        def part(i: int) -> None:
            a, b = edges[i], edges[i + 1]
            _render(
                on,
                off,
                pitch,
                vel,
                int(start_sample) + a,
                b - a,
                float(sample_rate),
                params,
                _GROUP_LO,
                _GROUP_HI,
                out[a:b],
                gate[a:b],
            )

        if parts == 1:
            part(0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(parts) as pool:
                list(pool.map(part, range(parts)))
    return out.astype(np.float32), gate.astype(np.float32)


def source_config_from(d: dict | None) -> SourceConfig:
    """SourceConfig from a stored dict (unknown keys are an error, missing keys take defaults)."""
    d = dict(d or {})
    unknown = set(d) - set(SourceConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown source config keys {sorted(unknown)}")
    return SourceConfig(**d)


__all__ = [
    "MEASURED_RELEASE",
    "release_seconds",
    "longest_release",
    "SourceConfig",
    "piano_source",
    "partial_frequencies",
    "inharmonicity",
    "source_config_from",
    "CHANNEL_NAMES",
    "N_CHANNELS",
    "GROUPS",
]
