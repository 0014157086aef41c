"""Audio + note datasets: MAPS layout, MAESTRO v3 layout, rendered MIDI, folders of audio with notes.

An Example pairs an audio file with its notes (a .tsv or a .mid); every audio model trains on them.
The transcriber's training draws random fixed-length segments from examples held in memory
(SegmentSampler); the WaveNets' samplers are in data/synthesis.py.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2m2w.audio import load_audio
from w2m2w.constants import SAMPLE_RATE
from w2m2w.midi import apply_sustain, load_notes, notes_to_rolls, save_tsv_notes, sort_notes


@dataclass(frozen=True)
class Example:
    audio: str
    notes: str
    name: str
    group: str  # piano, soundfont or "maestro": what a held-out split is made on


def maps_piece(name: str) -> str:
    """'MAPS_MUS-bach_847_AkPnBcht' -> 'bach_847'."""
    stem = name.removeprefix("MAPS_MUS-")
    return stem.rsplit("_", 1)[0]


def maps_examples(
    root: str | os.PathLike,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    exclude_pieces: set[str] | None = None,
) -> list[Example]:
    """Examples from a MAPS-layout folder (flac/NAME.flac + tsv/NAME.tsv, piano name last in NAME).

    The audio may be in any format load_audio reads (a packed copy's Ogg Vorbis, say), whatever
    the folder's name."""
    from w2m2w.audio import AUDIO_EXTENSIONS

    root = Path(root)
    out = []
    audio_dir = root / "flac"
    files = sorted(p for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS) if audio_dir.is_dir() else []
    for flac in files:
        tsv = root / "tsv" / (flac.stem + ".tsv")
        if not tsv.is_file():
            continue
        piano = flac.stem.rsplit("_", 1)[-1]
        if include and piano not in include:
            continue
        if exclude and piano in exclude:
            continue
        if exclude_pieces and maps_piece(flac.stem) in exclude_pieces:
            continue
        out.append(Example(str(flac), str(tsv), flac.stem, piano))
    return out


def maestro_examples(root: str | os.PathLike, split: str = "train") -> list[Example]:
    """Examples from MAESTRO v3 in its published layout (maestro-v3.0.0.csv beside year folders)."""
    root = Path(root)
    csvs = sorted(root.glob("maestro-v*.csv"))
    if not csvs:
        raise FileNotFoundError(f"{root}: no maestro-v*.csv found")
    out = []
    with open(csvs[-1], newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] != split:
                continue
            audio = root / row["audio_filename"]
            midi = root / row["midi_filename"]
            if audio.is_file() and midi.is_file():
                out.append(Example(str(audio), str(midi), Path(row["audio_filename"]).stem, "maestro"))
    return out


def crop_notes(notes: np.ndarray, start: float, duration: float) -> np.ndarray:
    """Notes that start inside [start, start + duration), shifted to 0 and cut at the end."""
    notes = sort_notes(notes)
    keep = (notes[:, 0] >= start) & (notes[:, 0] < start + duration)
    out = notes[keep].copy()
    out[:, :2] -= start
    out[:, 1] = np.minimum(out[:, 1], duration)
    return out


def rendered_examples(
    midi_paths: list[str],
    soundfonts: list[str],
    cache_dir: str | os.PathLike,
    seconds: float = 60.0,
    offset: float = 0.0,
) -> list[Example]:
    """Render the first `seconds` (after `offset`) of each MIDI file with each soundfont, cached as FLAC + TSV.

    Labels are the notes with the sustain pedal applied, as MAESTRO's are, and the pedal itself
    (NAME.pedal.tsv, for the pedal head).
    """
    import soundfile as sf

    from w2m2w.files import atomic_path
    from w2m2w.pedal import crop_pedal, load_pedal, pedal_tsv_path, save_pedal_tsv
    from w2m2w.render.fluidsynth import render_notes

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for midi in midi_paths:
        key = hashlib.sha1(f"{os.path.abspath(midi)}|{seconds}|{offset}".encode()).hexdigest()[:12]
        notes = None
        for sf_name in soundfonts:
            name = f"{Path(midi).stem}_{key}_{sf_name}"
            flac, tsv = cache / f"{name}.flac", cache / f"{name}.tsv"
            if not (flac.is_file() and tsv.is_file()):
                if notes is None:
                    notes = crop_notes(load_notes(midi), offset, seconds)
                if len(notes) == 0:
                    break
                y = render_notes(notes, sf_name)
                with atomic_path(tsv, root=None) as tmp_tsv, atomic_path(flac, root=None) as tmp_flac:
                    save_tsv_notes(tmp_tsv, notes)
                    sf.write(str(tmp_flac), y, SAMPLE_RATE)
            side = pedal_tsv_path(tsv)
            if not side.is_file():  # renders cached before the pedal head get their pedal too
                with atomic_path(side, root=None) as tmp:
                    save_pedal_tsv(tmp, crop_pedal(load_pedal(midi), offset, seconds))
            out.append(Example(str(flac), str(tsv), name, sf_name))
    return out


def audio_dir_examples(folder: str | os.PathLike) -> list[Example]:
    """Audio files under `folder` that have a same-named .tsv, .mid or .midi beside them."""
    from w2m2w.audio import AUDIO_EXTENSIONS

    out = []
    for p in sorted(Path(folder).rglob("*")):
        if p.suffix.lower() not in AUDIO_EXTENSIONS or p.name.startswith("."):
            continue
        notes = next((p.with_suffix(e) for e in (".tsv", ".mid", ".midi") if p.with_suffix(e).is_file()), None)
        if notes is not None:
            out.append(Example(str(p), str(notes), p.stem, "audio_dir"))
    return out


def draw_weights(lengths: np.ndarray, groups: list[str], shares: dict[str, float] | None = None) -> np.ndarray:
    """Each example's probability of being drawn: by length, except that the examples of a group named in
    `shares` together get that share of the draws (split among them by length) and the other groups the rest.

    lengths: (examples,) samples; returns (examples,) summing to 1. A share for a group with no examples
    is refused, as are shares above 1 in total, or a total of 1 that leaves examples of other groups unreachable.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    shares = {g: float(v) for g, v in (shares or {}).items()}
    missing = sorted(set(shares) - set(groups))
    if missing:
        raise ValueError(f"a training share is set for {missing}, but no example is of that group")
    if any(v < 0 for v in shares.values()) or sum(shares.values()) > 1 + 1e-9:
        raise ValueError(f"training shares must be >= 0 and sum to at most 1: {shares}")
    in_share = np.array([g in shares for g in groups])
    rest = 1.0 - sum(shares.values())
    if (~in_share).any() and rest <= 1e-9:
        raise ValueError(f"the shares {shares} leave nothing for the other examples' groups")
    w = np.zeros_like(lengths)
    for g, share in shares.items():
        m = np.array([x == g for x in groups])
        w[m] = share * lengths[m] / lengths[m].sum()
    if (~in_share).any():
        w[~in_share] = lengths[~in_share] / lengths[~in_share].sum() * (rest if shares else 1.0)
    return w / w.sum()


class SegmentSampler:
    """Random fixed-length transcriber training segments (audio and note targets) from examples held in memory.

    sample() returns audio (batch, samples) and targets dict of (batch, frames, 88); with
    `pedal`, also 'pedal' (batch, frames, 3: onset, offset, down) and 'pedal_known' (batch,): each
    row's weight in the pedal loss, 0 for audio whose labels carry no pedal (pedal.load_pedal gives
    None), `pedal_weights[group]` for a group named there (default 1). Examples are drawn by length,
    or with `shares` by group first (draw_weights).
    """

    def __init__(
        self,
        examples: list[Example],
        segment_seconds: float,
        frame_rate: float,
        hop_length: int,
        seed: int = 0,
        augmenter: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        pedal: bool = False,
        level_db: float | None = None,
        shares: dict[str, float] | None = None,
        pedal_weights: dict[str, float] | None = None,
    ):
        from w2m2w.audio import level_gain
        from w2m2w.pedal import load_pedal

        self.items = []
        self.pedals: list[np.ndarray | None] = []
        # a teacher that found no press in a whole recording says "not pressed" at every frame; a weight below 1
        # keeps such labels from outweighing the renders' real presses
        self.pedal_weights = [(pedal_weights or {}).get(ex.group, 1.0) for ex in examples]
        for ex in examples:
            y = load_audio(ex.audio)
            if level_db is not None:  # each piece at the level the model's predict() brings a recording to
                y = (y * level_gain(y, level_db)).astype(np.float32)
            notes = load_notes(ex.notes)
            self.items.append((y, notes))
            self.pedals.append(load_pedal(ex.notes) if pedal else None)
        self.pedal = pedal
        self.augmenter = augmenter
        if not self.items:
            raise ValueError("no training examples")
        self.seg_frames = int(round(segment_seconds * frame_rate))
        self.hop = hop_length
        self.frame_rate = frame_rate
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(y) for y, _ in self.items], dtype=np.float64)
        self.weights = draw_weights(lengths, [ex.group for ex in examples], shares)

    def sample(self, batch_size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """`batch_size` segments drawn from the sampler's own generator (see draw)."""
        return self.draw([self.rng] * batch_size)

    def draw(self, rngs: list[np.random.Generator]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One segment per generator: audio (batch, samples) and targets, each (batch, frames, 88)."""
        from w2m2w.pedal import pedal_rolls

        batch_size = len(rngs)
        n_samples = (self.seg_frames - 1) * self.hop
        audio = np.zeros((batch_size, n_samples), dtype=np.float32)
        targets = {
            k: np.zeros((batch_size, self.seg_frames, 88), dtype=np.float32)
            for k in ("onset", "offset", "frame", "velocity")
        }
        if self.pedal:
            targets["pedal"] = np.zeros((batch_size, self.seg_frames, 3), dtype=np.float32)
            targets["pedal_known"] = np.zeros(batch_size, dtype=np.float32)
        for b, rng in enumerate(rngs):
            i = rng.choice(len(self.items), p=self.weights)
            y, notes = self.items[i]
            start_frame = int(rng.integers(0, max(1, (len(y) - n_samples) // self.hop)))
            a = start_frame * self.hop
            seg = y[a : a + n_samples]
            audio[b, : len(seg)] = seg
            if self.augmenter is not None:
                audio[b] = self.augmenter(audio[b], rng)
            t0 = a / SAMPLE_RATE
            sel = notes[(notes[:, 1] > t0) & (notes[:, 0] < t0 + n_samples / SAMPLE_RATE)].copy()
            sel[:, :2] -= t0
            rolls = notes_to_rolls(sel, self.seg_frames, self.frame_rate)
            for k in rolls:
                targets[k][b] = rolls[k]
            if self.pedal and self.pedals[i] is not None:
                pr = pedal_rolls(self.pedals[i] - t0, self.seg_frames, self.frame_rate)
                targets["pedal"][b] = np.stack([pr["onset"], pr["offset"], pr["frame"]], axis=-1)
                targets["pedal_known"][b] = self.pedal_weights[i]
        return audio, targets


def load_examples_audio_notes(
    examples: list[Example], max_seconds: float | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, audio, notes) for validation, optionally only the first `max_seconds`."""
    out = []
    for ex in examples:
        y = load_audio(ex.audio)
        notes = load_notes(ex.notes)
        if max_seconds is not None:
            y = y[: int(max_seconds * SAMPLE_RATE)]
            notes = crop_notes(notes, 0.0, max_seconds)
        out.append((ex.name, y, notes))
    return out


__all__ = [
    "Example",
    "maps_examples",
    "maestro_examples",
    "rendered_examples",
    "audio_dir_examples",
    "draw_weights",
    "SegmentSampler",
    "crop_notes",
    "apply_sustain",
]
