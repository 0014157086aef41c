"""Training data of the beat tracker: ASAP performances (notes + annotated beats) as frame features and targets.

ASAP (Foscarin et al. 2020) holds, per piece folder, a score (midi_score.mid) and performances
`<perf>.mid` with `<perf>_annotations.txt` (lines 'time<TAB>time<TAB>b|db[,...]'). The evaluation
pieces (eval_pieces: the tuning and held-out subsets of scripts/eval_beats.py) are defined here once, so
training can leave out every performance of them and the evaluation picks the same ones.
Times in seconds; a note list is (n, 4): onset, offset, pitch, velocity.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2m2w.models.beat_tracker import FPS, note_features

log = logging.getLogger(__name__)

EVAL_SEED = "w2m2w-beats-32"
N_TUNING, N_HELDOUT = 6, 25


def _h(s: str) -> str:
    return hashlib.sha1((EVAL_SEED + s).encode()).hexdigest()


def asap_pieces(asap: Path) -> list[Path]:
    """Piece folders (those with a midi_score.mid), ordered by sha1(EVAL_SEED + folder relative to `asap`)."""
    return sorted((p.parent for p in Path(asap).rglob("midi_score.mid")), key=lambda p: _h(str(p.relative_to(asap))))


def eval_pieces(asap: Path, subset: str) -> list[Path]:
    """The evaluation's piece folders: the first N_TUNING of asap_pieces are 'tuning', the next N_HELDOUT 'heldout'."""
    pieces = asap_pieces(asap)
    return pieces[:N_TUNING] if subset == "tuning" else pieces[N_TUNING : N_TUNING + N_HELDOUT]


def performances(folder: Path) -> list[Path]:
    """A piece folder's annotated performance MIDI files, ordered by sha1(EVAL_SEED + file name)."""
    return sorted(
        (
            m
            for m in folder.glob("*.mid")
            if m.name != "midi_score.mid" and (folder / f"{m.stem}_annotations.txt").exists()
        ),
        key=lambda m: _h(m.name),
    )


def pick_performances(asap: Path, subset: str) -> list[Path]:
    """One performance per evaluation piece: the first of performances()."""
    return [perfs[0] for perfs in (performances(f) for f in eval_pieces(asap, subset)) if perfs]


def training_pieces(asap: Path) -> list[Path]:
    """Every piece folder but the evaluation's (tuning and held-out): no performance of those is trained on."""
    return asap_pieces(asap)[N_TUNING + N_HELDOUT :]


def load_annotations(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """ASAP annotations: beat times (n,) and is_downbeat (n,) bool."""
    times, db = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            times.append(float(parts[0]))
            db.append(parts[2].split(",")[0] == "db")
    return np.array(times), np.array(db, dtype=bool)


def target_rolls(
    beats: np.ndarray, is_db: np.ndarray, n_frames: int, fps: int = FPS, widen: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(target (n_frames, 2) float32, mask (n_frames,) float32) of annotated beats (m,) and their downbeat flags.

    Target: 1 at each beat's frame and `widen` at the frames either side (the annotations' own jitter
    is about a frame: the widened target, as Böck et al. use, rewards a peak one frame off). Column 0:
    beats, column 1: downbeats. Mask: 1 from half a beat before the first annotated beat to half a beat
    after the last, where the annotations say what is and is not a beat.
    """
    target = np.zeros((n_frames, 2), dtype=np.float32)
    mask = np.zeros(n_frames, dtype=np.float32)
    if len(beats) == 0 or n_frames == 0:
        return target, mask
    frames = np.round(np.asarray(beats) * fps).astype(int)
    for col, sel in ((0, np.ones(len(frames), dtype=bool)), (1, np.asarray(is_db, dtype=bool))):
        for shift, value in ((-1, widen), (1, widen), (0, 1.0)):
            f = frames[sel] + shift
            f = f[(f >= 0) & (f < n_frames)]
            target[f, col] = np.maximum(target[f, col], value)
    half = 0.5 * float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    lo, hi = int(np.floor((beats[0] - half) * fps)), int(np.ceil((beats[-1] + half) * fps))
    mask[max(lo, 0) : max(min(hi + 1, n_frames), 0)] = 1.0
    return target, mask


@dataclass
class Performance:
    """One annotated performance: notes (n, 4), beat times (m,), downbeat flags (m,), its piece folder."""

    name: str
    piece: str
    notes: np.ndarray
    beats: np.ndarray
    is_downbeat: np.ndarray

    @property
    def duration(self) -> float:
        return float(
            max(self.notes[:, 1].max() if len(self.notes) else 0.0, self.beats[-1] if len(self.beats) else 0.0)
        )


def load_performances(asap: Path, pieces: list[Path], cache: Path | None = None) -> list[Performance]:
    """Every annotated performance of `pieces` (piece folders under `asap`), parsed once and cached in
    `cache` (an .npz; rebuilt when its list of performances differs): parsing ~900 MIDI files takes minutes."""
    from w2m2w.midi import load_midi_notes

    asap = Path(asap)
    files = [m for p in pieces for m in sorted(performances(p), key=lambda m: m.name)]
    names = [str(m.relative_to(asap)) for m in files]
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["names"]) == names:
                return [
                    Performance(n, str(Path(n).parent), z[f"n{i}"], z[f"b{i}"], z[f"d{i}"].astype(bool))
                    for i, n in enumerate(names)
                ]
    out = []
    for m, n in zip(files, names):
        beats, db = load_annotations(m.parent / f"{m.stem}_annotations.txt")
        # the sustain pedal lengthens notes as a listener hears them: the transcriber's notes end there too
        out.append(Performance(n, str(Path(n).parent), load_midi_notes(m, apply_pedal=True), beats, db))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"names": np.array(names)}
        for i, p in enumerate(out):
            arrays.update({f"n{i}": p.notes, f"b{i}": p.beats, f"d{i}": p.is_downbeat})
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    return out


def split_pieces(pieces: list[Path], val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """(training, validation) piece folders: a seeded hash puts `val_fraction` of the pieces aside, whole."""
    key = lambda p: hashlib.sha1(f"{seed}:{p.name}:{p.parent}".encode()).hexdigest()  # noqa: E731
    ordered = sorted(pieces, key=key)
    n_val = max(1, int(round(val_fraction * len(pieces)))) if val_fraction > 0 else 0
    return sorted(ordered[n_val:]), sorted(ordered[:n_val])


@dataclass(frozen=True)
class Augment:
    """Training augmentation ranges: time stretch (factor on every time), transposition, velocity scale."""

    stretch: tuple[float, float] = (0.8, 1.25)
    transpose: int = 6  # semitones, either way
    velocity: tuple[float, float] = (0.6, 1.4)


def augment(
    notes: np.ndarray, beats: np.ndarray, rng: np.random.Generator, aug: Augment
) -> tuple[np.ndarray, np.ndarray]:
    """(notes, beats) with times stretched, pitches shifted (kept on the keyboard) and velocities scaled."""
    s = float(np.exp(rng.uniform(np.log(aug.stretch[0]), np.log(aug.stretch[1]))))
    n = notes.copy()
    n[:, :2] *= s
    n[:, 2] = np.clip(n[:, 2] + rng.integers(-aug.transpose, aug.transpose + 1), 21, 108)
    n[:, 3] = np.clip(np.round(n[:, 3] * rng.uniform(*aug.velocity)), 1, 127)
    return n, beats * s


def segment(
    perf: Performance, start: float, seconds: float, notes: np.ndarray, beats: np.ndarray
) -> dict[str, np.ndarray]:
    """Features (frames, N_FEATURES), target (frames, 2), mask (frames,) of [start, start + seconds) of a
    performance whose (augmented) notes and beats are given; notes that started before `start` and still
    sound are kept (cut at the start), as a listener joining there hears them."""
    n_frames = int(round(seconds * FPS))
    seg = notes[(notes[:, 0] < start + seconds) & (notes[:, 1] > start)].copy()
    seg[:, :2] -= start
    # a note still sounding from before the start: its onset one frame early, so it counts as sounding, not as an onset
    seg[:, 0] = np.where(seg[:, 0] < 0, -1.0 / FPS, seg[:, 0])
    bsel = (beats >= start - 2.0) & (beats < start + seconds + 2.0)
    target, mask = target_rolls(beats[bsel] - start, perf.is_downbeat[bsel], n_frames)
    return {"features": note_features(seg, n_frames), "target": target, "mask": mask}


class BeatSampler:
    """Batches of random segments of training performances, each performance drawn by its length."""

    def __init__(self, perfs: list[Performance], seconds: float, aug: Augment | None = Augment()) -> None:
        self.perfs = [p for p in perfs if len(p.beats) > 4 and len(p.notes)]
        if not self.perfs:
            raise ValueError("no annotated performance to train on")
        w = np.array([p.duration for p in self.perfs])
        self.p = w / w.sum()
        self.seconds = seconds
        self.aug = aug

    def draw_one(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        perf = self.perfs[int(rng.choice(len(self.perfs), p=self.p))]
        notes, beats = (perf.notes, perf.beats) if self.aug is None else augment(perf.notes, perf.beats, rng, self.aug)
        lo, hi = beats[0] - 2.0, max(beats[-1] - self.seconds + 2.0, beats[0] - 2.0)
        start = float(rng.uniform(lo, hi))
        return segment(perf, start, self.seconds, notes, beats)

    def draw(self, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        rows = [self.draw_one(r) for r in rngs]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
