"""w2m2w.evaluate.generation: cropping, orphan counting by hand, and a seeded run with a tiny untrained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2m2w import events as ev
from w2m2w.data.transcription import crop_notes
from w2m2w.evaluate.generation import ContinuationSettings, evaluate_continuations, on_grid, orphaned_notes, summarize
from w2m2w.models.music_transformer import MusicTransformer, MusicTransformerConfig


def test_crop_keeps_onsets_in_span_and_cuts_offsets() -> None:
    notes = np.array([[0.5, 1.0, 60, 64], [1.5, 4.0, 62, 64], [2.5, 3.0, 64, 64], [3.5, 5.0, 65, 64]])
    np.testing.assert_allclose(crop_notes(notes, 1.0, 2.0), [[0.5, 2.0, 62, 64], [1.5, 2.0, 64, 64]])


def test_orphans_by_hand() -> None:
    on, off, shift = ev.NOTE_ON, ev.NOTE_OFF, ev.TIME_SHIFT
    # primer: one token; then note 60 on at 1, released at 2 (1 token later); 62 on at 3, released at 8 (5 later);
    # 64 on at 9, never released (released by the end of stream at 11: 2 later)
    toks = np.array([shift, on + 60, off + 60, on + 62, shift, shift, shift, shift, off + 62, on + 64, shift])
    assert orphaned_notes(toks, 1, context=4) == (1, 3)  # only 62: its NOTE_OFF came 5 >= 4 tokens after its NOTE_ON
    assert orphaned_notes(toks, 1, context=2) == (2, 3)  # 62 and 64
    assert orphaned_notes(toks, 4, context=2) == (1, 1)  # notes starting in the primer do not count


def _chords(start: float, n: int) -> np.ndarray:
    """n two-note chords 0.5 s apart whose second note comes 3 ms late, as a pianist's hands spread them."""
    on = start + np.repeat(np.arange(n) * 0.5, 2) + np.tile([0.0, 0.003], n)
    return np.stack([on, on + 0.3, 60 + np.arange(2 * n) % 12, np.full(2 * n, 80.0)], 1)


def test_on_grid_puts_times_on_the_10ms_grid() -> None:
    notes = np.array([[0.003, 0.304, 60, 80], [0.5, 0.8, 62, 80]])
    np.testing.assert_allclose(on_grid(notes)[:, :3], [[0.0, 0.3, 60], [0.5, 0.8, 62]])


def test_grid_comparison_does_not_charge_the_vocabulary() -> None:
    # a "model" that plays the real continuation exactly, as its 10 ms vocabulary can write it
    real, primer = _chords(0.0, 4), _chords(0.0, 6)
    piece = {"generated": on_grid(real), "real": on_grid(real), "primer": on_grid(primer), "real_raw": real, "primer_raw": primer}
    out = summarize([{**piece, "orphans": 0, "orphan_base": 0}], seconds=2.0, primer_seconds=3.0)
    assert out["overlap"]["ioi"] == pytest.approx(1.0)
    # raw: the real IOIs are 4 x 3 ms and 3 x 0.497 s; the grid's are 3 x 0.5 s, in 0.497's bin: 3/7 overlap
    assert out["raw"]["overlap"]["ioi"] == pytest.approx(3 / 7, abs=1e-4)
    assert out["notes_per_second_baseline"] == pytest.approx(8 / 2.0)


@pytest.fixture(scope="module")
def tiny_model() -> MusicTransformer:
    torch.manual_seed(0)
    return MusicTransformer(MusicTransformerConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64)).eval()


def test_seeded_run_reports_every_figure(tiny_model: MusicTransformer) -> None:
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(0, 8, 60))
    notes = np.stack([onsets, onsets + 0.3, rng.integers(40, 80, 60), rng.integers(30, 100, 60)], 1)
    s = ContinuationSettings(primer_seconds=4.0, seconds=2.0, seed=3)
    rows: list[dict] = []
    a = evaluate_continuations(tiny_model, [("a", notes), ("short", notes[:3])], s, emit=rows.append)
    b = evaluate_continuations(tiny_model, [("a", notes), ("short", notes[:3])], s)
    assert a == b  # seeded
    assert a["files"] == 1 and [r["file"] for r in rows] == ["a"]  # a piece shorter than the primer is left out
    for f in ("duration", "ioi", "pitch", "velocity", "polyphony", "mean"):
        assert 0.0 <= a["overlap_baseline"][f] <= 1.0
    # the baseline compares the real continuation with the primer: computed here by hand
    from w2m2w.evaluate.music_stats import BINS, overlap_area

    real, primer = crop_notes(notes, 4.0, 2.0), crop_notes(notes, 0.0, 4.0)
    assert a["overlap_baseline"]["pitch"] == pytest.approx(overlap_area(real[:, 2], primer[:, 2], BINS["pitch"]), abs=1e-4)
    assert a["notes_per_second_baseline"] == pytest.approx(len(real) / 2.0, abs=1e-4)
    assert evaluate_continuations(tiny_model, [("short", notes[:3])], s) is None


def test_evaluate_command_reports_continuations(tmp_path, tiny_model: MusicTransformer) -> None:
    import json
    import subprocess
    import sys
    from dataclasses import asdict
    from pathlib import Path

    from w2m2w.checkpoint import save_weights
    from w2m2w.midi import write_midi

    w = tmp_path / "mt.safetensors"
    save_weights(w, "music_transformer", tiny_model.state_dict(), asdict(tiny_model.cfg))
    (tmp_path / "midi").mkdir()
    long = np.array([[i * 0.25, i * 0.25 + 0.2, 60 + i % 12, 70] for i in range(24)])  # 6 s
    write_midi(tmp_path / "midi" / "long.mid", long)
    write_midi(tmp_path / "midi" / "short.mid", long[:4])  # 1 s: too short for a 3 s primer
    cmd = [
        sys.executable,
        "-m",
        "w2m2w.evaluate",
        "task=generation",
        f"input={tmp_path / 'midi'}",
        f"weights={w}",
        "continuation.primer_seconds=3",
        "continuation.seconds=2",
        "threads=1",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    c = summary["continuation"]
    assert summary["files"] == 2 and c["files"] == 1
    real = crop_notes(long, 3.0, 2.0)
    assert c["notes_per_second_baseline"] == pytest.approx(len(real) / 2.0)
    # primer: 12 notes on 12 pitches (1/12 each); real: 8 notes on 8 of them (1/8 each): overlap 8 x 1/12
    assert c["overlap_baseline"]["pitch"] == pytest.approx(8 / 12, abs=1e-4)
    bad = subprocess.run(cmd[:-1] + ["continuation.seconds=-1"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert bad.returncode == 2 and "continuation.seconds" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
