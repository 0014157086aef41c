"""A hand-made run directory for the report tests: three pieces (audio done, MIDI current, one failed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from w2m2w.audio import save_wav
from w2m2w.files import write_json
from w2m2w.midi import write_midi
from w2m2w.run.rundir import output_path, sidecar_path

FAILED_ERROR = 'not readable as audio (bad <header> & "junk")'


def scale(n: int, start: float = 0.0, step: float = 0.25, base: int = 60) -> np.ndarray:
    """n notes rising through a C major scale, velocities 40..100."""
    steps = (0, 2, 4, 5, 7, 9, 11, 12)
    return np.array(
        [[start + i * step, start + i * step + 0.2, base + steps[i % 8], 40 + (i * 7) % 61] for i in range(n)],
        dtype=np.float64,
    )


def _tone(seconds: float, freq: float = 440.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-t)).astype(np.float32)


def _output(run_dir: Path, stage: str, piece: str, source: Path, stats: dict, settings: dict) -> Path:
    out = output_path(run_dir, stage, piece)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        sidecar_path(out),
        {
            "stage": stage,
            "piece": piece,
            "source": str(source),
            "settings": settings,
            "timings": {"seconds": 1.234},
            "stats": stats,
            "created": "2025-01-01T00:00:00+0000",
        },
        root=run_dir,
    )
    return out


def make_run(root: Path) -> Path:
    """RUN_DIR under `root` with run.json, summary.json and stage outputs; the inputs live outside it."""
    inputs, run_dir = root / "my inputs", root / "run"
    (inputs / "sub").mkdir(parents=True)
    a_src, b_src, bad_src = inputs / "a song.wav", inputs / "sub" / "b c.mid", inputs / "bad.wav"
    save_wav(a_src, _tone(2.0))
    write_midi(b_src, scale(8))
    bad_src.write_bytes(b"not audio at all")

    # piece "a song": audio through all three stages, primer 0..2 s then a continuation from 2.1 s
    trans = scale(8)
    write_midi(
        _output(run_dir, "transcribe", "a_song", a_src, {"audio_seconds": 2.0, "notes": 8}, {"onset_threshold": 0.5}),
        trans,
    )
    gen = np.concatenate([trans, scale(6, start=2.1, base=67)])
    write_midi(
        _output(
            run_dir,
            "generate",
            "a_song",
            a_src,
            {"primer_end_s": 2.1, "input_notes": 8},
            {"seconds": 2.0, "include_primer": True},
        ),
        gen,
    )
    save_wav(
        _output(run_dir, "synthesize", "a_song", a_src, {"notes": 14, "audio_seconds": 3.6}, {"name": "wavenet"}),
        _tone(3.6, 330.0),
    )
    # piece "sub/b_c": MIDI input, continuation only (primer_end_s 0.0), synthesized
    write_midi(
        _output(
            run_dir, "generate", "sub/b_c", b_src, {"primer_end_s": 0.0, "input_notes": 8}, {"include_primer": False}
        ),
        scale(5, base=62),
    )
    save_wav(_output(run_dir, "synthesize", "sub/b_c", b_src, {"notes": 5}, {"name": "fluidsynth"}), _tone(1.5, 262.0))

    sources = {"a_song": (a_src, "audio"), "sub/b_c": (b_src, "midi"), "bad": (bad_src, "audio")}
    write_json(
        run_dir / "run.json",
        {
            "inputs": {
                pid: {"source": str(src), "kind": kind, "sha256": "0" * 64} for pid, (src, kind) in sources.items()
            },
            "w2m2w_version": "0.1.0",
        },
        root=run_dir,
    )
    error = f"{bad_src}: {FAILED_ERROR}"
    write_json(
        run_dir / "summary.json",
        {
            "counts": {"done": 1, "current": 1, "failed": 1},
            "failed": {"bad": error},
            "pieces": {
                "a_song": {
                    "source": str(a_src),
                    "status": "done",
                    "error": None,
                    "stages": {
                        "transcribe": {"status": "done", "seconds": 1.234, "audio_seconds": 2.0, "notes": 8},
                        "generate": {"status": "done", "seconds": 1.234, "primer_end_s": 2.1},
                        "synthesize": {"status": "done", "seconds": 1.234},
                    },
                },
                "sub/b_c": {
                    "source": str(b_src),
                    "status": "current",
                    "error": None,
                    "stages": {"generate": {"status": "current"}, "synthesize": {"status": "current"}},
                },
                "bad": {
                    "source": str(bad_src),
                    "status": "failed",
                    "error": error,
                    "stages": {"transcribe": {"status": "failed", "error": error}},
                },
            },
            "stages": ["transcribe", "generate", "synthesize"],
            "config": {"run_dir": str(run_dir), "force": False},
        },
        root=run_dir,
    )
    return run_dir
