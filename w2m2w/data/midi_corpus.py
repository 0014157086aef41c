"""MIDI corpora as event windows for the Music Transformer: files, pieces, split, augmentation.

A *piece* is a composition, not a file: ASAP's metadata.csv (composer, title)
and MAESTRO's csv (canonical composer and title) group several performances
under one piece, so a split by piece never puts one composition on both sides.
Elsewhere every file is its own piece.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2m2w import events as ev
from w2m2w.midi import MidiError, load_midi_notes

log = logging.getLogger(__name__)


def _csv_pieces(root: Path) -> dict[Path, str]:
    """File -> 'composer/title' from an ASAP metadata.csv or a MAESTRO csv in `root`."""
    out: dict[Path, str] = {}
    for meta in sorted(root.glob("*.csv")):
        try:
            with open(meta, newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for r in rows:
            if "midi_performance" in r and "title" in r:  # ASAP: several folders (e.g. *_no_repeat) share a title
                out[(root / r["midi_performance"]).resolve()] = f"{r.get('composer', '')}/{r['title']}"
            elif "midi_filename" in r and "canonical_title" in r:  # MAESTRO
                out[(root / r["midi_filename"]).resolve()] = f"{r.get('canonical_composer', '')}/{r['canonical_title']}"
    return out


def piece_names(files: dict[Path, Path]) -> dict[Path, str]:
    """File -> piece name, '<root name>:<piece>' so corpora never share a name by accident."""
    meta: dict[Path, dict[Path, str]] = {}
    out = {}
    for f, root in files.items():
        if root not in meta:
            meta[root] = _csv_pieces(root)
        piece = meta[root].get(f)
        if piece is None:
            piece = f.relative_to(root).with_suffix("").as_posix() if f.is_relative_to(root) else f.stem
        out[f] = f"{root.name}:{piece}"
    return out


def split_by_piece(pieces: dict[Path, str], val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """(train files, validation files), every performance of a piece on the same side.

    A piece goes to validation when a hash of its name falls below val_fraction, so
    the split is stable when files are added; at least one piece is held out when
    there are two or more and val_fraction > 0.
    """

    def score(name: str) -> float:
        return int(hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()[:12], 16) / 16**12

    names = sorted(set(pieces.values()))
    held = {n for n in names if score(n) < val_fraction}
    if val_fraction > 0 and not held and len(names) > 1:
        held = {min(names, key=score)}
    if len(held) == len(names) and len(names) > 1:
        held.discard(max(names, key=score))
    train = [f for f, n in pieces.items() if n not in held]
    val = [f for f, n in pieces.items() if n in held]
    return train, val


def load_corpus(
    files: list[Path], cache: str | os.PathLike | None = None, progress: bool = True
) -> list[tuple[Path, np.ndarray]]:
    """(file, notes) for each readable file with notes, pedal applied; unreadable files are
    logged and left out. With `cache`, the notes are kept in one .npz keyed on the files'
    paths, sizes and times, so a resumed training does not parse them again."""
    stamp = hashlib.sha1(
        json.dumps([(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]).encode()
    ).hexdigest()[:16]
    cache_file = Path(cache) / f"notes-{stamp}.npz" if cache else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as z:
            names, lengths, notes = list(z["files"]), z["lengths"], z["notes"]
        parts = np.split(notes, np.cumsum(lengths)[:-1])
        return [(Path(n), p) for n, p in zip(names, parts)]
    from tqdm import tqdm

    out = []
    for f in tqdm(files, desc="reading MIDI", disable=not progress, mininterval=5, dynamic_ncols=True):
        try:
            notes = load_midi_notes(f)
        except MidiError as exc:
            log.warning("%s", exc)
            continue
        if len(notes):
            out.append((f, notes))
    if cache_file is not None and out:
        from w2m2w.files import atomic_path

        with atomic_path(cache_file, root=None) as tmp:  # the temporary keeps .npz, so np.savez adds nothing
            np.savez(
                tmp,
                files=np.array([str(f) for f, _ in out]),
                lengths=np.array([len(n) for _, n in out]),
                notes=np.concatenate([n for _, n in out]),
            )
    return out


def augment_notes(
    notes: np.ndarray, rng: np.random.Generator, max_transpose: int = 3, stretch: tuple[float, float] = (0.95, 1.05)
) -> np.ndarray:
    """The paper's augmentation: transpose by -max..+max semitones, stretch time by a factor
    in `stretch` (uniform). Notes pushed outside MIDI 0..127 are dropped."""
    out = notes.copy()
    if max_transpose:
        out[:, 2] += rng.integers(-max_transpose, max_transpose + 1)
    lo, hi = stretch
    if hi > lo or lo != 1.0:
        out[:, :2] *= rng.uniform(lo, hi)
    return out[(out[:, 2] >= 0) & (out[:, 2] < ev.N_PITCHES)]


def window_tokens(
    notes: np.ndarray,
    first: int,
    length: int,
    rng: np.random.Generator | None = None,
    max_transpose: int = 3,
    stretch: tuple[float, float] = (0.95, 1.05),
) -> np.ndarray:
    """(length,) event ids of a window starting at note `first` of a piece, PAD-filled at the end.

    The window begins with that note's onset (notes sounding before it are left
    out, as a primer leaves them out) and, at the piece's start or end, with
    BOS or EOS. length + 1 notes always give at least `length` events, so no
    note inside the window is missing.
    """
    n = len(notes)
    chunk = notes[first : first + length + 1]
    if rng is not None:
        chunk = augment_notes(chunk, rng, max_transpose, stretch)
    toks = ev.notes_to_tokens(chunk, start=float(chunk[:, 0].min())) if len(chunk) else np.zeros(0, np.int64)
    if first == 0:
        toks = np.concatenate([[ev.BOS], toks])
    if first + length + 1 >= n:
        toks = np.concatenate([toks, [ev.EOS]])
    out = np.full(length, ev.PAD, dtype=np.int64)
    out[: min(length, len(toks))] = toks[:length]
    return out


def mix_weights(starts: np.ndarray, corpus: list[int] | None = None, shares: list[float] | None = None) -> np.ndarray:
    """Probability of drawing each piece: in proportion to its window starts (so every note start is
    equally likely) or, with `shares`, corpus c gets shares[c] / sum(shares) of the draws, split
    within it by window starts. A corpus with no pieces gives its share to the others.

    starts: (n,) window starts per piece; corpus: (n,) corpus index of each piece."""
    starts = np.asarray(starts, dtype=np.float64)
    if not shares:
        return starts / starts.sum()
    corpus_arr = np.asarray(corpus)
    w = np.zeros_like(starts)
    for c, share in enumerate(shares):
        mine = corpus_arr == c
        if mine.any():
            w[mine] = share * starts[mine] / starts[mine].sum()
    if w.sum() <= 0:
        raise ValueError("the corpus shares give every piece zero weight")
    return w / w.sum()


@dataclass
class WindowSampler:
    """Random augmented windows of `length` events from a list of pieces' note lists.

    A window starts at a note drawn uniformly over the corpus (so long pieces
    weigh more), at most length/4 notes before a piece's end, so most windows
    are full. Its RNG state is JSON, for resumable training.
    """

    pieces: list[np.ndarray]
    length: int
    seed: int = 0
    max_transpose: int = 3
    stretch: tuple[float, float] = (0.95, 1.05)
    # corpus of each piece and each corpus's share of the windows (None: every note start equally likely)
    corpus: list[int] | None = None
    corpus_shares: list[float] | None = None

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ValueError("no pieces to sample windows from")
        self.rng = np.random.default_rng(self.seed)
        starts = np.array([max(len(p) - self.length // 4, 1) for p in self.pieces], dtype=np.float64)
        self.weights = mix_weights(starts, self.corpus, self.corpus_shares)
        self.n_starts = starts.astype(np.int64)

    def sample(self, batch: int) -> np.ndarray:
        """(batch, length) int64 event ids, drawn from the sampler's own generator."""
        return self.draw([self.rng] * batch)

    def draw(self, rngs: list[np.random.Generator]) -> np.ndarray:
        """(len(rngs), length) int64 event ids, window b drawn from rngs[b]."""
        out = np.empty((len(rngs), self.length), dtype=np.int64)
        for b, rng in enumerate(rngs):
            i = int(rng.choice(len(self.pieces), p=self.weights))
            first = int(rng.integers(0, self.n_starts[i]))
            out[b] = window_tokens(self.pieces[i], first, self.length, rng, self.max_transpose, self.stretch)
        return out
