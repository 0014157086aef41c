"""Audio augmentation for transcriber training: room, EQ, compression, reverb, codec, noise, level.

A real piano recording passes through a room (to a close and a distant microphone), a console
(EQ, compression, sometimes artificial reverb), often a lossy codec, picks up noise and lands at
some level. Augmenter draws one such chain per call and applies it to float32 (samples,) audio at
16 kHz; rooms come from a pyroomacoustics RoomBank (rooms.py), effects from pedalboard.

No stage moves a note onset relative to its label: the rooms' close direct path is at sample 0
(and the ambient microphone is time-aligned to it when it dominates), pedalboard compensates its
codecs' and resamplers' latency (measured at 16 kHz: MP3 and resampling move a click by 0 samples), and every
stage keeps the first len(y) samples.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from w2m2w.constants import SAMPLE_RATE
from w2m2w.data.rooms import RoomBank

STAGES = ("room", "eq", "compression", "reverb", "codec", "noise", "gain")  # signal-chain order
GAIN_DB = (-18.0, 6.0)
SNR_DB = (15.0, 50.0)
_NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f**exponent


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def room_ir(bank: RoomBank, rng: np.random.Generator, room: int | None = None) -> np.ndarray:
    """One room's response as a mix of its close and ambient microphones: float32 (n,), direct sound at 0.

    The ambient share of the energy is drawn uniformly. When the ambient microphone dominates it is
    time-aligned to the close one (as engineers align room mics to spot mics): otherwise the first
    sound of every note would arrive up to ~40 ms after its label. In close-dominated mixes it keeps
    its delay half the time (the comb filtering of an unaligned mix is part of real recordings).
    """
    i = bank.pick(rng) if room is None else room
    close, far = bank.irs(i)
    share = rng.uniform(0.0, 1.0)
    if share > 0.5 or rng.random() < 0.5:
        far = far[int(bank.far_delays[i]) :]
    n = max(len(close), len(far))
    ir = np.zeros(n, np.float32)
    # each microphone normalised to unit energy, so `share` is the ambient fraction of the mix's energy
    ir[: len(close)] += np.sqrt(1.0 - share) * close / np.sqrt(np.sum(close**2))
    ir[: len(far)] += np.sqrt(share) * far / np.sqrt(np.sum(far**2))
    return ir


def apply_room(y: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """y convolved with ir, the first len(y) samples (an ir with its direct sound at 0 moves nothing)."""
    return signal.fftconvolve(y, ir)[: len(y)].astype(np.float32)


def random_eq(rng: np.random.Generator) -> list:
    """pedalboard filters of a random microphone/console EQ: 1-3 peaks (+-9 dB), sometimes shelves, a low and a high cut."""
    import pedalboard as pb

    fx: list = [
        pb.PeakFilter(_log_uniform(rng, 60, 6000), rng.uniform(-9, 9), rng.uniform(0.5, 3.0))
        for _ in range(rng.integers(1, 4))
    ]
    if rng.random() < 0.5:
        fx.append(pb.LowShelfFilter(_log_uniform(rng, 80, 400), rng.uniform(-8, 8), 0.707))
    if rng.random() < 0.5:
        fx.append(pb.HighShelfFilter(_log_uniform(rng, 2000, 6000), rng.uniform(-8, 8), 0.707))
    if rng.random() < 0.3:  # rumble filter
        fx.append(pb.HighpassFilter(_log_uniform(rng, 20, 200)))
    if rng.random() < 0.3:  # dull microphone or recorder
        fx.append(pb.LowpassFilter(_log_uniform(rng, 2500, 7500)))
    return fx


def random_compressor(rng: np.random.Generator, peak: float) -> list:
    """A pedalboard Compressor whose threshold lies 3-24 dB under the signal's peak (so it acts at any level)."""
    import pedalboard as pb

    peak_db = 20 * np.log10(max(peak, 1e-6))
    return [
        pb.Compressor(
            threshold_db=peak_db - rng.uniform(3, 24),
            ratio=rng.uniform(1.5, 8.0),
            attack_ms=rng.uniform(1, 30),
            release_ms=rng.uniform(50, 400),
        )
    ]


def random_reverb(rng: np.random.Generator) -> list:
    """pedalboard's Freeverb, mostly dry: an artificial reverb added at mixing."""
    import pedalboard as pb

    wet = rng.uniform(0.05, 0.3)
    return [
        pb.Reverb(
            room_size=rng.uniform(0.1, 0.8),
            damping=rng.uniform(0.2, 0.8),
            wet_level=wet,
            dry_level=1.0 - wet,
            width=0.0,
        )
    ]


def random_codec(rng: np.random.Generator) -> list:
    """A lossy stage: MP3 at a random VBR quality (3 in 4) or a cheap resampler to a lower rate.

    GSM (pedalboard.GSMFullRateCompressor) is left out: telephone band and quality are far from a
    piano recording, and at the start of a signal it smears a click's energy ~60 samples earlier.
    """
    import pedalboard as pb

    if rng.random() < 0.75:
        return [pb.MP3Compressor(vbr_quality=rng.uniform(0.0, 9.5))]
    Q = pb.Resample.Quality
    # the cheap interpolators alias like cheap recorders do; longer windowed sincs cost more (weights/README.md)
    quality = [Q.CatmullRom, Q.Lagrange, Q.WindowedSinc8][rng.integers(3)]
    return [pb.Resample(target_sample_rate=float(rng.choice([8000, 11025, 12000])), quality=quality)]


def colored_noise(n: int, rng: np.random.Generator, color: str = "white", sr: int = SAMPLE_RATE) -> np.ndarray:
    """Unit-RMS noise, float32 (n,), with power ~ 1/f**k (white 0, pink 1, brown 2); flat below 20 Hz
    so that brown noise is not all sub-audio drift."""
    white = rng.standard_normal(n)
    k = _NOISE_EXPONENT[color]
    if k:
        spec = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
        white = np.fft.irfft(spec / f ** (k / 2), n=n)
    return (white / max(_rms(white), 1e-12)).astype(np.float32)


def add_noise(y: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float] = SNR_DB) -> np.ndarray:
    """White, pink or brown background noise at a random SNR (dB, against y's RMS)."""
    color = ("white", "pink", "brown")[rng.integers(3)]
    level = _rms(y) * 10 ** (-rng.uniform(*snr_db) / 20)
    return (y + level * colored_noise(len(y), rng, color)).astype(np.float32)


def random_gain(y: np.ndarray, rng: np.random.Generator, gain_db: tuple[float, float] = GAIN_DB) -> np.ndarray:
    return (y * np.float32(10 ** (rng.uniform(*gain_db) / 20))).astype(np.float32)


def peak_safe(y: np.ndarray) -> np.ndarray:
    """Scaled down to a peak of 1 when it is over: a level change, not the distortion of clipping."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return (y / peak).astype(np.float32) if peak > 1.0 else y.astype(np.float32)


class Augmenter:
    """aug(y, rng) -> y': float32 (samples,) at `sr` in and out, same length; one random recording chain per call.

    Stages, each with probability p (reverb with p * reverb_share, the room with room_p, p by default), in signal-chain order: room
    (skipped when rooms is None), EQ, compression, reverb, codec, noise, gain; then peak_safe.
    Room and effects keep the input's RMS (so GAIN_DB is the level change); noise adds at most
    0.14 dB at the lowest SNR; peak_safe only lowers. Deterministic given the rng's state.
    skip: names of STAGES left out (for ablations), each still drawing its random numbers.
    """

    def __init__(
        self,
        p: float = 0.5,
        rooms: RoomBank | None = None,
        sr: int = SAMPLE_RATE,
        reverb_share: float = 0.25,
        room_p: float | None = None,
        skip: tuple[str, ...] | list[str] = (),
    ):
        self.p, self.rooms, self.sr, self.reverb_share = p, rooms, sr, reverb_share
        self.room_p = p if room_p is None else room_p
        for name, v in (("p", self.p), ("room_p", self.room_p)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}={v}: a probability must lie in [0, 1]")
        unknown = sorted(set(skip) - set(STAGES))
        if unknown:
            raise ValueError(f"skip={list(skip)}: unknown stage(s) {unknown}; the stages are {list(STAGES)}")
        self.skip = frozenset(skip)

    def __call__(self, y: np.ndarray, rng: np.random.Generator, room: int | None = None) -> np.ndarray:
        """`room`: force this room of the bank (the validation set spreads its pieces over distinct rooms).

        A skipped stage still makes its random draws and is then left out, so an ablation twin hears
        the same chain as the full one, less that stage, segment for segment.
        """
        if room is not None and self.rooms is None:
            raise ValueError("a room was asked for, but this Augmenter has no RoomBank")
        y = np.asarray(y, dtype=np.float32)
        ref = _rms(y)
        out = y
        if self.rooms is not None and (room is not None or rng.random() < self.room_p):
            ir = room_ir(self.rooms, rng, room)
            if "room" not in self.skip:
                out = apply_room(out, ir)
        fx: list = []
        if rng.random() < self.p:
            fx += self._keep("eq", random_eq(rng))
        if rng.random() < self.p:
            fx += self._keep("compression", random_compressor(rng, float(np.max(np.abs(out))) if out.size else 0.0))
        if rng.random() < self.p * self.reverb_share:
            fx += self._keep("reverb", random_reverb(rng))
        if rng.random() < self.p:
            fx += self._keep("codec", random_codec(rng))
        if fx:
            import pedalboard as pb

            out = pb.Pedalboard(fx)(out, self.sr)
        if out is not y:
            now = _rms(out)
            if now > 1e-9 and ref > 1e-9:
                out = out * np.float32(ref / now)
        if rng.random() < self.p:
            noisy = add_noise(out, rng)
            out = out if "noise" in self.skip else noisy
        if rng.random() < self.p:
            louder = random_gain(out, rng)
            out = out if "gain" in self.skip else louder
        return peak_safe(out)

    def _keep(self, stage: str, fx: list) -> list:
        return [] if stage in self.skip else fx


_DEFAULT: dict[float, Augmenter] = {}


def augment(y: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """The effects chain without rooms (Augmenter(p)); rooms need a RoomBank, built once by the caller."""
    if p not in _DEFAULT:
        _DEFAULT[p] = Augmenter(p)
    return _DEFAULT[p](y, rng)
