"""Simulated rooms for augmentation: a piano and two microphones in a shoebox room (pyroomacoustics).

Each room has a close microphone (0.3-1.5 m from the piano) and a distant/ambient one. Impulse
responses come from pyroomacoustics' hybrid simulator (image sources for the early reflections,
ray tracing for the tail), with the wall absorption that gives a drawn RT60 (Sabine's formula,
pra.inverse_sabine). Both responses of a room are shifted by the same amount so that the close
microphone's direct path lies at sample 0: convolving with them and keeping the first len(y)
samples never moves a note onset relative to its label.

Computing a response takes ~0.5 s, so rooms come in banks: RoomBank builds N rooms from a seed
once and caches them in one .npz file. Training and validation draw from disjoint banks
(TRAIN_ROOMS, VALIDATION_ROOMS: other seeds and harder ranges for validation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from w2m2w.constants import SAMPLE_RATE

log = logging.getLogger("w2m2w")

# bump when the simulation or the file layout changes: older cache files are then ignored, not misread
BANK_FORMAT = 1
SPEED_OF_SOUND = 343.0  # m/s, pyroomacoustics' default (pra.constants.get("c"))
WALL_MARGIN = 0.3  # m: piano and microphones stay this far from any wall


@dataclass(frozen=True)
class RoomRanges:
    """The ranges rooms are drawn from (metres, seconds); the bank's cache file is keyed by them."""

    size_min: tuple[float, float, float] = (3.0, 3.0, 2.4)
    size_max: tuple[float, float, float] = (20.0, 15.0, 8.0)
    rt60: tuple[float, float] = (0.15, 1.4)
    close_distance: tuple[float, float] = (0.3, 1.5)
    far_distance: tuple[float, float] = (2.0, 8.0)  # capped by what the room allows
    source_height: tuple[float, float] = (0.8, 1.3)  # a piano's soundboard and lid
    max_ir_seconds: float = 2.0  # responses are cut where their tail is 60 dB down, at most here

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


# validation is harder than training: longer reverberation and a more distant ambient microphone
TRAIN_ROOMS = RoomRanges()
VALIDATION_ROOMS = RoomRanges(rt60=(0.2, 1.8), far_distance=(3.0, 15.0))
TRAIN_SEED = 1
VALIDATION_SEED = 2


@dataclass(frozen=True)
class RoomSpec:
    """One drawn room: its size, target RT60 and the positions of the piano and the two microphones."""

    size: np.ndarray  # (3,) m
    rt60: float
    source: np.ndarray  # (3,) m
    close: np.ndarray  # (3,) m
    far: np.ndarray  # (3,) m


def _inside(p: np.ndarray, size: np.ndarray) -> bool:
    return bool(np.all(p >= WALL_MARGIN) and np.all(p <= size - WALL_MARGIN))


def _whole_samples(d: float, sr: int) -> float:
    """`d` rounded to a whole number of samples of travel: the direct path is then an integer delay,
    a single tap rather than a fractional-delay sinc whose pre-ringing would be cut by the alignment."""
    return max(1, round(d * sr / SPEED_OF_SOUND)) * SPEED_OF_SOUND / sr


def _place_mic(
    rng: np.random.Generator,
    src: np.ndarray,
    size: np.ndarray,
    dist: tuple[float, float],
    elevation: tuple[float, float],
    sr: int,
) -> np.ndarray | None:
    """A point at a drawn distance and direction from `src` inside the room, or None after 200 tries.

    The distance range shrinks towards its lower end when the room is too small for the far end.
    """
    lo, hi = dist
    for attempt in range(200):
        top = hi - (hi - lo) * min(attempt / 150, 1.0)
        d = _whole_samples(rng.uniform(lo, max(lo, top)), sr)
        az = rng.uniform(0, 2 * np.pi)
        el = np.deg2rad(rng.uniform(*elevation))
        p = src + d * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        if _inside(p, size):
            return p
    return None


def _place_ambient_mic(
    rng: np.random.Generator, src: np.ndarray, size: np.ndarray, dist: tuple[float, float], sr: int
) -> np.ndarray | None:
    """A uniformly random point of the room (1-4 m high) within `dist` of `src`: in a hall most of the
    room is far away, so distant placements are as common as the room makes them. None when 400
    draws miss (a room too small for the range); the caller then tries the direction method."""
    top = min(4.0, size[2] - WALL_MARGIN)
    for _ in range(400):
        p = np.array(
            [
                rng.uniform(WALL_MARGIN, size[0] - WALL_MARGIN),
                rng.uniform(WALL_MARGIN, size[1] - WALL_MARGIN),
                rng.uniform(1.0, top),
            ]
        )
        d = float(np.linalg.norm(p - src))
        if dist[0] <= d <= dist[1]:
            p = src + (p - src) * (_whole_samples(d, sr) / d)
            if _inside(p, size):
                return p
    return None


def min_rt60(size: np.ndarray) -> float:
    """The shortest RT60 Sabine's formula allows in this room (all walls fully absorbing)."""
    volume = float(np.prod(size))
    surface = 2 * float(size[0] * size[1] + size[0] * size[2] + size[1] * size[2])
    return 24 * np.log(10) * volume / (SPEED_OF_SOUND * surface)


def draw_room(rng: np.random.Generator, ranges: RoomRanges, sr: int = SAMPLE_RATE) -> RoomSpec:
    """A random room that satisfies `ranges` (redrawn until the microphones fit)."""
    lo, hi = np.log(ranges.size_min), np.log(ranges.size_max)
    while True:
        size = np.exp(rng.uniform(lo, hi))  # log-uniform: small rooms as likely as halls
        # a short RT60 in a large hall needs walls absorbing more than everything: draw from what is possible
        rt_lo = max(ranges.rt60[0], 1.1 * min_rt60(size))
        if rt_lo >= ranges.rt60[1]:
            continue
        rt60 = float(np.exp(rng.uniform(np.log(rt_lo), np.log(ranges.rt60[1]))))
        source = np.array(
            [
                rng.uniform(WALL_MARGIN + 0.5, size[0] - WALL_MARGIN - 0.5),
                rng.uniform(WALL_MARGIN + 0.5, size[1] - WALL_MARGIN - 0.5),
                rng.uniform(*ranges.source_height),
            ]
        )
        close = _place_mic(rng, source, size, ranges.close_distance, (0.0, 60.0), sr)  # above the piano, looking down
        far = _place_ambient_mic(rng, source, size, ranges.far_distance, sr)
        if far is None:
            far = _place_mic(rng, source, size, ranges.far_distance, (-5.0, 30.0), sr)
        if close is None or far is None:
            continue
        if np.linalg.norm(far - source) <= np.linalg.norm(close - source):
            continue
        return RoomSpec(size, rt60, source, close, far)


def _decay_end(ir: np.ndarray, floor_db: float = -60.0) -> int:
    """Index after which the remaining energy (Schroeder's backward integral) is below `floor_db`."""
    tail = np.cumsum((ir.astype(np.float64) ** 2)[::-1])[::-1]
    above = np.nonzero(tail > tail[0] * 10 ** (floor_db / 10))[0]
    return int(above[-1]) + 1 if len(above) else len(ir)


def simulate(
    spec: RoomSpec, seed: int, max_ir_seconds: float = 2.0, sr: int = SAMPLE_RATE
) -> tuple[np.ndarray, np.ndarray, int]:
    """(close_ir, far_ir, far_delay) of a room: float32 (n_close,), (n_far,), and the far microphone's
    direct-path delay in samples after the close one's; the close direct path is at sample 0."""
    import pyroomacoustics as pra

    # pyroomacoustics draws the ray-tracing rays from its own global generators: seed both per room
    pra.random.seed(numpy=seed, libroom=seed)
    absorption, _ = pra.inverse_sabine(spec.rt60, spec.size, c=SPEED_OF_SOUND)
    room = pra.ShoeBox(
        spec.size, fs=sr, materials=pra.Material(absorption), max_order=3, ray_tracing=True, air_absorption=True
    )
    if room.c != SPEED_OF_SOUND:  # the microphones were placed at whole samples of travel at this speed
        raise RuntimeError(f"pyroomacoustics' speed of sound is {room.c} m/s, rooms.py assumes {SPEED_OF_SOUND}")
    # rays stop after the longest response we keep (plus the far path): they cost time and nothing else
    room.set_ray_tracing(time_thres=max_ir_seconds + 0.1)
    room.add_source(spec.source)
    room.add_microphone_array(np.stack([spec.close, spec.far], axis=1))
    room.compute_rir()
    # pra puts a path of length d at d / c * sr + frac_delay_length // 2 samples (the centre of its
    # fractional-delay filter); the close one is a whole number of samples (see _whole_samples)
    lag = [round(np.linalg.norm(m - spec.source) * sr / SPEED_OF_SOUND) for m in (spec.close, spec.far)]
    shift = lag[0] + pra.constants.get("frac_delay_length") // 2
    n_max = int(max_ir_seconds * sr)
    irs = []
    for m in range(2):
        ir = np.asarray(room.rir[m][0], dtype=np.float64)[shift:]
        ir = ir[: min(_decay_end(ir), n_max)].copy()
        fade = min(len(ir) // 4, sr // 100)  # 10 ms fade: a cut tail must not click
        ir[len(ir) - fade :] *= np.linspace(1.0, 0.0, fade)
        irs.append(ir.astype(np.float32))
    return irs[0], irs[1], lag[1] - lag[0]


_KEYS = {"close", "far", "lengths", "far_delay", "rt60", "size", "positions"}


class RoomBank:
    """N simulated rooms drawn from `ranges` with `seed`, built once and cached as one .npz in `cache_dir`.

    draw(rng) -> (close_ir, far_ir) of a random room; pick/irs/far_delays for the index and the
    far microphone's delay. The same (ranges, seed, n) always gives the same responses; a bank
    built with other ranges or another seed has other rooms.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        ranges: RoomRanges = TRAIN_ROOMS,
        cache_dir: str | os.PathLike | None = None,
        sr: int = SAMPLE_RATE,
    ):
        self.n, self.seed, self.ranges, self.sr = n, seed, ranges, sr
        self.path = (
            Path(cache_dir) / f"rooms-{ranges.key()}-seed{seed}-n{n}-sr{sr}-v{BANK_FORMAT}.npz"
            if cache_dir is not None
            else None
        )
        data = self._load() if self.path is not None and self.path.is_file() else None
        if data is None:
            t0 = time.perf_counter()
            data = self._build()
            self.build_seconds = time.perf_counter() - t0
            log.info("room bank: %d rooms built in %.1f s", n, self.build_seconds)
            if self.path is not None:
                self._save(data)
        else:
            self.build_seconds = 0.0
        self._data = data
        lengths = data["lengths"]
        self._irs = [(data["close"][i, : lengths[i, 0]], data["far"][i, : lengths[i, 1]]) for i in range(n)]
        self.far_delays: np.ndarray = data["far_delay"]  # (n,) samples
        self.rt60: np.ndarray = data["rt60"]  # (n,) s, the drawn target
        self.sizes: np.ndarray = data["size"]  # (n, 3) m
        self.positions: np.ndarray = data["positions"]  # (n, 3, 3) m: source, close, far

    @classmethod
    def training(
        cls, n: int, cache_dir: str | os.PathLike | None, seed: int = TRAIN_SEED, ranges: RoomRanges = TRAIN_ROOMS
    ) -> RoomBank:
        """n rooms from `ranges` (TRAIN_ROOMS by default); never the validation rooms, whatever the seed
        (the ranges' key seeds the draw, so only ranges equal to VALIDATION_ROOMS with its seed could meet them)."""
        if ranges == VALIDATION_ROOMS and seed == VALIDATION_SEED:
            raise ValueError(
                "training rooms drawn with the validation bank's ranges and seed would be the validation rooms"
            )
        return cls(n, seed, ranges, cache_dir)

    @classmethod
    def validation(cls, n: int, cache_dir: str | os.PathLike | None, seed: int = VALIDATION_SEED) -> RoomBank:
        """n rooms from VALIDATION_ROOMS: longer reverberation and a farther ambient microphone than training's."""
        return cls(n, seed, VALIDATION_ROOMS, cache_dir)

    def _build(self) -> dict[str, np.ndarray]:
        # the ranges' key is part of the seed: banks with other ranges never share rooms, even with equal seeds
        seq = np.random.SeedSequence([self.seed, zlib.crc32(self.ranges.key().encode())])
        rng = np.random.default_rng(seq)
        specs = [draw_room(rng, self.ranges, self.sr) for _ in range(self.n)]
        sim_seeds = rng.integers(0, 2**32, size=self.n)
        out = [simulate(s, int(k), self.ranges.max_ir_seconds, self.sr) for s, k in zip(specs, sim_seeds)]
        lengths = np.array([[len(c), len(f)] for c, f, _ in out], dtype=np.int64).reshape(self.n, 2)
        close = np.zeros((self.n, lengths[:, 0].max(initial=1)), np.float32)
        far = np.zeros((self.n, lengths[:, 1].max(initial=1)), np.float32)
        for i, (c, f, _) in enumerate(out):
            close[i, : len(c)], far[i, : len(f)] = c, f
        return {
            "close": close,
            "far": far,
            "lengths": lengths,
            "far_delay": np.array([d for _, _, d in out], dtype=np.int64),
            "rt60": np.array([s.rt60 for s in specs]),
            "size": np.array([s.size for s in specs]).reshape(self.n, 3),
            "positions": np.array([[s.source, s.close, s.far] for s in specs]).reshape(self.n, 3, 3),
        }

    def _load(self) -> dict[str, np.ndarray] | None:
        try:
            with np.load(self.path) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # a damaged cache is rebuilt, not trusted
            log.warning("room bank %s: unreadable (%s); rebuilding", self.path, exc)
            return None
        if not _KEYS <= data.keys() or len(data["lengths"]) != self.n:
            log.warning("room bank %s: not a bank of %d rooms; rebuilding", self.path, self.n)
            return None
        return data

    def _save(self, data: dict[str, np.ndarray]) -> None:
        from w2m2w.files import atomic_path

        with atomic_path(self.path, root=None) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare temporary name
                np.savez(f, **data)

    def __len__(self) -> int:
        return self.n

    def pick(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.n))

    def irs(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(close_ir, far_ir) of room i: float32 (n_close,), (n_far,); close direct path at sample 0."""
        return self._irs[i]

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(close_ir, far_ir) of a random room."""
        return self.irs(self.pick(rng))
