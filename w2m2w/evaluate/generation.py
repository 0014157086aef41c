"""`evaluate task=generation`: the held-out likelihood (mean NLL per event) and whether a continuation sounds like the pianist kept playing.

For each held-out piece (sustain pedal applied): prime the Music Transformer
with its first `primer_seconds`, let it continue for `seconds`, and compare
what it played with what the pianist played in the same span (the real next
`seconds`). Beside every figure stands the baseline of the real continuation
against its own primer: how alike two stretches of the same real performance
are. Figures are pooled over pieces (w2m2w.evaluate.music_stats) and seeded: piece i
is sampled with seed + i, so a rerun gives the same numbers.

The comparison is made on the event grid: the real continuation and the
primer pass through the vocabulary (10 ms time shifts, 32 velocity bins)
before they are compared, as the model's own notes did. A performance's
chords spread over a few milliseconds, which no 10 ms vocabulary can write:
measured on held-out pieces, the real continuation itself, written on the
grid, keeps only about 0.72 of its raw inter-onset-interval histogram, so
raw figures would charge the vocabulary's resolution to the model. The raw
figures are reported too, under "raw".

It also counts *orphaned* notes: generated notes that were still sounding
when their NOTE_ON had slid out of the model's context window. The model
cannot see those keys any more, so it has no reason to release them; if most
long notes are orphans, the context, not the data, is what keeps them down.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from w2m2w import events as ev
from w2m2w.data.transcription import crop_notes
from w2m2w.evaluate.music_stats import FEATURES, LONG_NOTE_SECONDS, long_note_share, notes_per_second, pooled_overlaps
from w2m2w.evaluate.settings import ContinuationSettings
from w2m2w.generation import (
    SamplingConfig,
    load_music_transformer,
    model_context,
    notes_nll,
    read_midi_notes,
    sample_continuation,
)
from w2m2w.midi import MidiError


def orphaned_notes(tokens: np.ndarray, n_primer: int, context: int) -> tuple[int, int]:
    """(orphans, notes) among the notes that start in tokens[n_primer:]: a note is an orphan when, at the token
    that ends it (its NOTE_OFF, a restrike, or the end of the stream), its NOTE_ON lies `context` or more
    tokens back, outside what the model read when it decided."""
    active: dict[int, int] = {}
    orphans = total = 0
    toks = np.asarray(tokens, dtype=np.int64).tolist()

    def close(p: int, at: int) -> None:
        nonlocal orphans, total
        start = active.pop(p)
        if start >= n_primer:
            total += 1
            orphans += at - start >= context

    for i, tok in enumerate(toks):
        if ev.NOTE_ON <= tok < ev.NOTE_OFF:
            p = tok - ev.NOTE_ON
            if p in active:
                close(p, i)
            active[p] = i
        elif ev.NOTE_OFF <= tok < ev.TIME_SHIFT and tok - ev.NOTE_OFF in active:
            close(tok - ev.NOTE_OFF, i)
    for p in list(active):
        close(p, len(toks))
    return orphans, total


def on_grid(notes: np.ndarray) -> np.ndarray:
    """(n, 4) notes as the event vocabulary writes them: times on its 10 ms grid, velocities in its bins."""
    return ev.tokens_to_notes(ev.notes_to_tokens(notes)) if len(notes) else np.zeros((0, 4))


def continue_piece(
    model: Any, notes: np.ndarray, s: ContinuationSettings, seed: int, context: int = 0
) -> dict[str, Any]:
    """Prime with notes[0, primer_seconds) and sample `seconds`: the generated, real and primer note lists
    (times from where each span starts) and the orphan count."""
    ctx = model_context(model, context)
    primer = crop_notes(notes, 0.0, s.primer_seconds)
    real = crop_notes(notes, s.primer_seconds, s.seconds)
    toks = np.concatenate([[ev.BOS], ev.notes_to_tokens(primer)]).astype(np.int64)
    # the primer as the model reads it ends at primer_seconds, not at its last NOTE_OFF: pad with TIME_SHIFTs
    gap = int(round(s.primer_seconds * ev.STEPS_PER_SECOND)) - ev.duration_steps(toks)
    shifts = [ev.TIME_SHIFT + min(ev.MAX_SHIFT, gap - k) - 1 for k in range(0, max(gap, 0), ev.MAX_SHIFT)]
    toks = np.concatenate([toks, np.asarray(shifts, dtype=np.int64)])[-ctx:]
    sampling = SamplingConfig(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=seed)
    steps = int(round(s.seconds * ev.STEPS_PER_SECOND))
    cont = sample_continuation(model, toks, steps, sampling, ctx, max(int(300 * s.seconds), 1))
    everything = np.concatenate([toks, cont])
    primer_end = ev.duration_steps(toks) / ev.STEPS_PER_SECOND
    gen = ev.tokens_to_notes(everything)
    gen = gen[gen[:, 0] >= primer_end - 1e-9]
    gen[:, :2] -= primer_end
    orphans, counted = orphaned_notes(everything, len(toks), ctx)
    return {
        "generated": gen,
        "real": on_grid(real),
        "primer": on_grid(primer),
        "real_raw": real,
        "primer_raw": primer,
        "orphans": orphans,
        "orphan_base": counted,
    }


def summarize(pieces: Sequence[dict[str, Any]], seconds: float, primer_seconds: float) -> dict[str, Any]:
    """Pooled figures: generated vs real continuation, and the real-vs-primer baseline beside each; on the event
    grid, and under "raw" the overlaps against the real notes as played."""
    gen = np.concatenate([p["generated"] for p in pieces]) if pieces else np.zeros((0, 4))
    real = np.concatenate([p["real_raw"] for p in pieces]) if pieces else np.zeros((0, 4))
    primer = np.concatenate([p["primer_raw"] for p in pieces]) if pieces else np.zeros((0, 4))

    def r(x: float | None) -> float | None:
        return None if x is None else round(float(x), 4)

    def overlaps(real_key: str, primer_key: str) -> dict[str, Any]:
        gen_real = pooled_overlaps([(p["generated"], p[real_key]) for p in pieces])
        real_primer = pooled_overlaps([(p[real_key], p[primer_key]) for p in pieces])
        return {
            "overlap": {f: r(gen_real[f]) for f in (*FEATURES, "mean")},
            "overlap_baseline": {f: r(real_primer[f]) for f in (*FEATURES, "mean")},
            "overlap_ratio": r(gen_real["mean"] / real_primer["mean"])
            if gen_real["mean"] and real_primer["mean"]
            else None,
        }

    out: dict[str, Any] = {
        **overlaps("real", "primer"),
        "raw": overlaps("real_raw", "primer_raw"),
        f"long_note_share_over_{LONG_NOTE_SECONDS:g}s": r(long_note_share(gen)),
        f"long_note_share_over_{LONG_NOTE_SECONDS:g}s_baseline": r(long_note_share(real)),
        "longest_note_s": r(float((gen[:, 1] - gen[:, 0]).max()) if len(gen) else None),
        "notes_per_second": r(notes_per_second(gen, seconds * len(pieces))),
        "notes_per_second_baseline": r(notes_per_second(real, seconds * len(pieces))),
        "notes_per_second_primer": r(notes_per_second(primer, primer_seconds * len(pieces))),
    }
    base = sum(p["orphan_base"] for p in pieces)
    out["orphaned_note_share"] = r(sum(p["orphans"] for p in pieces) / base) if base else None
    return out


def evaluate_continuations(
    model: Any,
    pieces: Sequence[tuple[str, np.ndarray]],
    s: ContinuationSettings,
    context: int = 0,
    emit: Callable[[dict[str, Any]], None] = lambda row: None,
) -> dict[str, Any] | None:
    """Continuation statistics over (name, notes) pieces long enough to hold primer + continuation; None if none is.

    `emit` gets one row per piece (its notes-per-second and long-note share, generated and real)."""
    results = []
    usable = [(name, n) for name, n in pieces if len(n) and n[:, 0].max() >= s.primer_seconds]
    if s.max_files:
        usable = usable[: s.max_files]
    for i, (name, notes) in enumerate(usable):
        res = continue_piece(model, notes, s, s.seed + i, context)
        results.append(res)
        emit(
            {
                "file": name,
                "continuation_notes": len(res["generated"]),
                "real_notes": len(res["real"]),
                "long_note_share": long_note_share(res["generated"]),
                "orphaned_notes": res["orphans"],
            }
        )
    if not results:
        return None
    return {
        "files": len(results),
        "primer_seconds": s.primer_seconds,
        "seconds": s.seconds,
        "seed": s.seed,
        "sampling": {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p},
        **summarize(results, s.seconds, s.primer_seconds),
    }


def evaluate_generation(
    input_path: str | os.PathLike,
    weights: str | os.PathLike,
    device: str = "cpu",
    context: int = 0,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    emit: Callable[[dict[str, Any]], None] = lambda row: None,
    warn: Callable[[str], None] = lambda msg: None,
    continuation: ContinuationSettings | None = None,
) -> dict[str, Any]:
    """Mean NLL per event (nats) of the Music Transformer in `weights` over the MIDI files
    under `input_path` (a file, a folder searched recursively, or a .txt/.lst/.list list of
    files; finding.find_files), pieces read whole; with `continuation` (a
    ContinuationSettings), also the continuation statistics under "continuation".

    `emit` gets one row per file, `warn` one line per file that cannot be read.
    Raises ValueError naming the path when there is nothing to score, WeightsError
    for unusable weights. The summary's nll_per_event weighs every event alike.
    """
    from w2m2w.finding import MIDI_EXTENSIONS, InputError, find_files

    try:  # a list: e.g. a training run's val_files.txt
        files = find_files(input_path, MIDI_EXTENSIONS, what="MIDI", include=include, exclude=exclude)
    except InputError as exc:  # InputError is a ValueError
        raise InputError(f"input {exc}") from None
    model = load_music_transformer(weights, device)
    ctx = model_context(model, context)
    total, count, rows, failed, pieces = 0.0, 0, [], [], []
    t0 = time.perf_counter()
    for rel, p in files:
        try:
            notes = read_midi_notes(p)
        except MidiError as exc:
            failed.append({"file": rel, "error": str(exc)})
            warn(f"skipped {rel}: {exc}")
            continue
        nll, n = notes_nll(model, notes, ctx)
        total, count = total + nll, count + n
        row = {"file": rel, "events": n, "nll_per_event": round(nll / n, 4)}
        rows.append(row)
        pieces.append((rel, notes))
        emit(row)
    if not rows:
        raise ValueError(f"input {input_path}: none of its {len(files)} MIDI files could be read")
    from w2m2w.files import sha256_file

    mean = total / count
    summary = {
        "task": "generation",
        "input": str(input_path),
        "files": len(rows),
        "events": count,
        "nll_per_event": round(mean, 4),
        "perplexity": round(math.exp(mean), 3),
        "mean_file_nll_per_event": round(float(np.mean([r["nll_per_event"] for r in rows])), 4),
        "context": ctx,
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "failed": failed,
    }
    if continuation is not None and continuation.enabled:
        stats = evaluate_continuations(model, pieces, continuation, ctx, emit=lambda r: emit({"continuation": r}))
        if stats is None:
            warn(
                f"no file is longer than continuation.primer_seconds={continuation.primer_seconds}: no continuation statistics"
            )
        summary["continuation"] = stats
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary
