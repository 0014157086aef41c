"""Generated test material: tone audio for note lists, fake MAPS and MAESTRO folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SR = 16000


def tones(notes: np.ndarray, seconds: float, sr: int = SR) -> np.ndarray:
    """Decaying two-partial tones for a note list (n, 4): a cheap, exactly labelled stand-in for piano audio."""
    y = np.zeros(int(round(seconds * sr)), dtype=np.float64)
    for on, off, pitch, vel in notes:
        a, b = int(on * sr), min(int(off * sr), len(y))
        if b <= a:
            continue
        t = np.arange(b - a) / sr
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        y[a:b] += (vel / 127) * 0.2 * np.exp(-2 * t) * (np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(4 * np.pi * f0 * t))
    return np.clip(y, -1, 1).astype(np.float32)


def random_notes(rng: np.random.Generator, seconds: float, n: int = 12) -> np.ndarray:
    """`n` random notes inside [0, seconds), sorted by onset then pitch."""
    on = rng.uniform(0.0, seconds - 0.6, n)
    off = on + rng.uniform(0.1, 0.5, n)
    pitch = rng.integers(40, 90, n)
    vel = rng.integers(30, 110, n)
    notes = np.column_stack([on, off, pitch, vel]).astype(np.float64)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))]


def write_tsv(path: Path, notes: np.ndarray) -> None:
    """MAPS-style TSV: one header line, then onset, offset, note, velocity."""
    np.savetxt(path, notes, fmt="%.6f", delimiter="\t", header="onset,offset,note,velocity")


def make_maps(root: Path, names: list[str], seconds: float = 3.0, seed: int = 0) -> Path:
    """A MAPS-layout folder (flac/ + tsv/) with one generated piece per 'piece_Piano' name."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (root / "flac").mkdir(parents=True, exist_ok=True)
    (root / "tsv").mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = f"MAPS_MUS-{name}"
        notes = random_notes(rng, seconds)
        sf.write(str(root / "flac" / f"{stem}.flac"), tones(notes, seconds), SR)
        write_tsv(root / "tsv" / f"{stem}.tsv", notes)
    return root


def make_maestro(root: Path, rows: list[tuple[str, str, bool]], seconds: float = 2.0, seed: int = 0) -> Path:
    """A MAESTRO v3-layout folder: maestro-v3.0.0.csv beside year folders.

    rows: (stem, split, files_exist); rows whose files do not exist are listed in the CSV only.
    """
    import soundfile as sf

    from w2m2w.midi import write_midi

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "maestro-v3.0.0.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration"]
        )
        for i, (stem, split, exists) in enumerate(rows):
            year = str(2004 + i % 3)
            midi, audio = f"{year}/{stem}.midi", f"{year}/{stem}.wav"
            w.writerow(["Composer", f"Title {i}", split, year, midi, audio, seconds])
            if exists:
                (root / year).mkdir(exist_ok=True)
                notes = random_notes(rng, seconds, 5)
                write_midi(root / midi, notes)
                sf.write(str(root / audio), tones(notes, seconds), SR)
    return root
