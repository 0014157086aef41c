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
    piece = {
        "generated": on_grid(real),
        "real": on_grid(real),
        "primer": on_grid(primer),
        "real_raw": real,
        "primer_raw": primer,
    }
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
    # the baseline compares the real continuation with the primer (on the event grid): pitch and velocity histograms
    # computed here with numpy alone, one bin per key and 4 velocities a bin, as the module's bins say
    real, primer = on_grid(crop_notes(notes, 4.0, 2.0)), on_grid(crop_notes(notes, 0.0, 4.0))

    def overlap(x, y, edges):
        hx, hy = np.histogram(x, edges)[0], np.histogram(y, edges)[0]
        return float(np.minimum(hx / hx.sum(), hy / hy.sum()).sum())

    assert a["overlap_baseline"]["pitch"] == pytest.approx(
        overlap(real[:, 2], primer[:, 2], np.arange(20.5, 109.5)), abs=1e-4
    )
    assert a["overlap_baseline"]["velocity"] == pytest.approx(
        overlap(real[:, 3], primer[:, 3], np.arange(0.5, 128.5, 4.0)), abs=1e-4
    )
    assert a["overlap_baseline"]["pitch"] < 1.0 and a["overlap_baseline"]["velocity"] < 1.0  # two different stretches
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
    bad = subprocess.run(
        cmd[:-1] + ["continuation.seconds=-1"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=300,
    )
    assert bad.returncode == 2 and "continuation.seconds" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def _piece(gen: np.ndarray, real: np.ndarray, primer: np.ndarray, orphans: int = 0, base: int = 0) -> dict:
    return {
        "generated": gen,
        "real": real,
        "primer": primer,
        "real_raw": real,
        "primer_raw": primer,
        "orphans": orphans,
        "orphan_base": base,
    }


def _rows(pitches, step: float = 0.5, length: float = 0.4, vel: int = 64) -> np.ndarray:
    return np.array([[i * step, i * step + length, p, vel] for i, p in enumerate(pitches)], dtype=np.float64)


def test_overlap_ratio_is_generated_over_baseline() -> None:
    # generated = real, so every generated-vs-real overlap is 1; the primer's pitches are half those of the real
    # continuation (60, 62 against 60, 62, 64, 65): pitch overlap 0.5, the other features 1, so the baseline's mean is
    # (4 + 0.5) / 5 = 0.9 and the ratio 1 / 0.9
    real = _rows([60, 62, 64, 65])
    primer = _rows([60, 60, 62, 62])
    out = summarize([_piece(real, real, primer)], seconds=2.0, primer_seconds=2.0)
    assert out["overlap"]["mean"] == 1.0
    assert out["overlap_baseline"]["pitch"] == 0.5 and out["overlap_baseline"]["mean"] == pytest.approx(0.9)
    assert out["overlap_ratio"] == pytest.approx(round(1 / 0.9, 4))
    # and the other way round: a continuation half as alike as the real one is to its primer
    out = summarize([_piece(primer, real, real)], seconds=2.0, primer_seconds=2.0)
    assert out["overlap_ratio"] == pytest.approx(0.9)


def test_rates_pool_every_piece_over_its_seconds() -> None:
    # two pieces of 2 s continuation and 3 s primer: 4 + 6 generated notes over 4 s, 2 + 2 real, 3 + 9 primer over 6 s
    a = _piece(_rows([60] * 4), _rows([60] * 2), _rows([60] * 3), orphans=1, base=4)
    b = _piece(_rows([60] * 6, step=0.3, length=5.0), _rows([60] * 2), _rows([60] * 9), orphans=2, base=6)
    out = summarize([a, b], seconds=2.0, primer_seconds=3.0)
    assert (
        out["notes_per_second"] == 2.5
        and out["notes_per_second_baseline"] == 1.0
        and out["notes_per_second_primer"] == 2.0
    )
    assert out["orphaned_note_share"] == 0.3  # (1 + 2) / (4 + 6)
    assert (
        out["longest_note_s"] == 5.0 and out["long_note_share_over_4s"] == 0.6
    )  # 6 of the 10 generated notes last 5 s
    assert out["long_note_share_over_4s_baseline"] == 0.0
    none = summarize([_piece(np.zeros((0, 4)), _rows([60]), _rows([60]))], seconds=2.0, primer_seconds=3.0)
    assert none["orphaned_note_share"] is None and none["longest_note_s"] is None and none["overlap_ratio"] is None


class _Recorder:
    """Stands in for sample_continuation: records the primer the model was given and plays one note, 60, for 0.1 s."""

    def __init__(self) -> None:
        self.primer: list[int] = []

    def __call__(self, model, toks, steps, sampling, ctx, max_events):
        self.primer = list(map(int, toks))
        return np.array([ev.NOTE_ON + 60, ev.TIME_SHIFT + 9, ev.NOTE_OFF + 60], dtype=np.int64)


def test_the_primer_is_padded_with_time_shifts_to_primer_seconds(monkeypatch, tiny_model) -> None:
    import w2m2w.evaluate.generation as g

    rec = _Recorder()
    monkeypatch.setattr(g, "sample_continuation", rec)
    # one note 0..0.5 s, then nothing until the primer ends at 3.0 s: 2.5 s of shifts, 1 s + 1 s + 0.5 s by hand
    notes = np.array([[0.0, 0.5, 64, 80], [3.5, 4.0, 65, 80]])
    out = g.continue_piece(tiny_model, notes, ContinuationSettings(primer_seconds=3.0, seconds=1.0), seed=0, context=64)
    assert rec.primer[-3:] == [ev.TIME_SHIFT + 99, ev.TIME_SHIFT + 99, ev.TIME_SHIFT + 49]
    assert ev.duration_steps(np.array(rec.primer)) == 300
    # the generated note starts where the primer ends: at 0 of the continuation, 0.1 s long
    np.testing.assert_allclose(out["generated"], [[0.0, 0.1, 60, out["generated"][0, 3]]])
    np.testing.assert_allclose(out["real_raw"], [[0.5, 1.0, 65, 80]])  # the real continuation from 3.0 s
    # a primer that fills its span exactly gets no padding
    full = np.array([[0.0, 3.0, 64, 80], [3.5, 4.0, 65, 80]])
    g.continue_piece(tiny_model, full, ContinuationSettings(primer_seconds=3.0, seconds=1.0), seed=0, context=64)
    assert ev.duration_steps(np.array(rec.primer)) == 300 and rec.primer[-1] == ev.NOTE_OFF + 64


class _SeedRecorder(_Recorder):
    """_Recorder that also keeps each call's sampling settings, context, token dtype and budgets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __call__(self, model, toks, steps, sampling, ctx, max_events):
        s = sampling
        self.calls.append((s.seed, s.temperature, s.top_k, s.top_p, ctx, toks.dtype, steps, max_events))
        return super().__call__(model, toks, steps, sampling, ctx, max_events)


def test_pieces_seeds_context_and_rows(monkeypatch, tiny_model) -> None:
    import w2m2w.evaluate.generation as g

    rec = _SeedRecorder()
    monkeypatch.setattr(g, "sample_continuation", rec)
    at_primer_end = np.array([[0.0, 0.5, 60, 80], [2.0, 2.5, 62, 80]])  # its last onset is the primer's end: usable
    sounding_on = np.array([[0.0, 0.5, 60, 80], [1.5, 2.5, 62, 80]])  # struck before the end, sounding past it: not
    # usable; its primer's last note (62) is cut at the primer's end and must not count as generated
    later = np.array([[0.0, 0.5, 60, 80], [1.5, 2.5, 62, 80], [2.5, 3.0, 64, 80]])
    pieces = [("a", at_primer_end), ("b", sounding_on), ("c", later), ("d", later)]
    s = ContinuationSettings(primer_seconds=2.0, seconds=2.0, seed=5, temperature=0.9, top_k=7, top_p=0.8, max_files=2)
    rows: list[dict] = []
    out = g.evaluate_continuations(tiny_model, pieces, s, context=16, emit=rows.append)
    # the first two usable pieces (a, c), seeded 5 and 6, sampled as set, with the context asked for, int64 tokens,
    # 2 s = 200 steps and at most 300 events a second
    assert rec.calls == [(5, 0.9, 7, 0.8, 16, np.int64, 200, 600), (6, 0.9, 7, 0.8, 16, np.int64, 200, 600)]
    assert {k: out[k] for k in ("files", "primer_seconds", "seconds", "seed", "sampling")} == {
        "files": 2,
        "primer_seconds": 2.0,
        "seconds": 2.0,
        "seed": 5,
        "sampling": {"temperature": 0.9, "top_k": 7, "top_p": 0.8},
    }
    # each row: the recorder's one 0.1 s note (no primer note), the real notes from 2.0 s, no long note, no orphan
    assert rows == [
        {"file": "a", "continuation_notes": 1, "real_notes": 1, "long_note_share": 0.0, "orphaned_notes": 0},
        {"file": "c", "continuation_notes": 1, "real_notes": 1, "long_note_share": 0.0, "orphaned_notes": 0},
    ]
    # no context asked for: the model's training length (max_len 64), from either entry point; a continuation too
    # short for one event a second still may play one
    rec.calls.clear()
    g.evaluate_continuations(tiny_model, pieces[:1], s)
    g.continue_piece(tiny_model, at_primer_end, ContinuationSettings(primer_seconds=2.0, seconds=0.002), seed=0)
    assert [c[4] for c in rec.calls] == [64, 64] and rec.calls[1][6:] == (0, 1)


def test_orphans_at_the_edges_of_the_note_ranges() -> None:
    on, off, shift = ev.NOTE_ON, ev.NOTE_OFF, ev.TIME_SHIFT
    # key 0 down at 0, up at 3 (3 tokens later); key 127 down at 4, up at 5
    toks = np.array([on + 0, shift, shift, off + 0, on + 127, off + 127])
    assert orphaned_notes(toks, 0, context=4) == (0, 2)
    assert orphaned_notes(toks, 0, context=3) == (1, 2)


def test_no_notes_and_no_pieces() -> None:
    assert on_grid(np.zeros((0, 4))).shape == (0, 4)
    out = summarize([], seconds=2.0, primer_seconds=3.0)  # nothing to pool: no figure, rates of zero
    assert out["longest_note_s"] is None and out["orphaned_note_share"] is None and out["overlap_ratio"] is None
    assert out["long_note_share_over_4s"] is None and out["long_note_share_over_4s_baseline"] is None
    assert out["notes_per_second"] == out["notes_per_second_baseline"] == out["notes_per_second_primer"] == 0.0
