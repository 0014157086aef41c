"""evaluate_generation's summary over a folder of MIDI files with a tiny Music Transformer: the per-file rows, the
event-weighted mean, perplexity, the mean of the files' means, the context, the weights' hash, what it skips and when
it refuses (mutation testing of evaluate/generation.py). Each file's NLL comes from w2m2w.generation.notes_nll (the
scorer this function sums, tested on its own); the sums, means and rounding are done here by hand."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pretty_midi
import pytest

from w2m2w.evaluate.generation import evaluate_continuations, evaluate_generation
from w2m2w.evaluate.settings import ContinuationSettings
from w2m2w.finding import InputError
from w2m2w.generation import load_music_transformer, notes_nll, read_midi_notes


def _write(path, pitches, step=0.25):
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for i, p in enumerate(pitches):
        piano.notes.append(pretty_midi.Note(velocity=70 + i, pitch=p, start=i * step, end=i * step + step * 0.9))
    pm.instruments.append(piano)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "midi"
    _write(root / "a.mid", [60, 64, 67, 72])
    _write(root / "sub" / "b.mid", [48, 50, 52, 53, 55, 57])
    (root / "bad.mid").write_bytes(b"not a MIDI file")
    (root / "notes.txt.bak").write_text("ignored")
    return root


def test_the_summary_weighs_every_event_alike_and_lists_each_file(folder, tiny_music_transformer):
    rows, warnings = [], []
    got = evaluate_generation(
        folder, tiny_music_transformer, context=0, emit=rows.append, warn=warnings.append, continuation=None
    )
    model = load_music_transformer(tiny_music_transformer)
    per = {rel: notes_nll(model, read_midi_notes(folder / rel), 64) for rel in ("a.mid", "sub/b.mid")}
    assert rows == [
        {"file": rel, "events": n, "nll_per_event": round(nll / n, 4)} for rel, (nll, n) in sorted(per.items())
    ]
    total, count = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
    mean = total / count
    assert {k: v for k, v in got.items() if k not in ("failed", "seconds")} == {
        "task": "generation",
        "input": str(folder),
        "files": 2,
        "events": count,
        "nll_per_event": round(mean, 4),
        "perplexity": round(math.exp(mean), 3),
        "mean_file_nll_per_event": round((rows[0]["nll_per_event"] + rows[1]["nll_per_event"]) / 2, 4),
        "context": 64,
        "weights": str(tiny_music_transformer),
        "weights_sha256": hashlib.sha256(tiny_music_transformer.read_bytes()).hexdigest(),
    }
    (failed,) = got["failed"]
    assert failed["file"] == "bad.mid" and failed["error"].startswith(str(folder / "bad.mid"))
    assert warnings == [f"skipped bad.mid: {failed['error']}"]
    assert isinstance(got["seconds"], float) and 0 <= got["seconds"] < 60
    assert "continuation" not in got


def test_context_include_and_exclude_reach_the_scoring(folder, tiny_music_transformer):
    model = load_music_transformer(tiny_music_transformer)
    got = evaluate_generation(folder, tiny_music_transformer, context=8, exclude=["bad.mid"], continuation=None)
    assert got["context"] == 8 and got["failed"] == []
    per = [notes_nll(model, read_midi_notes(folder / rel), 8) for rel in ("a.mid", "sub/b.mid")]
    assert got["nll_per_event"] == round(sum(v[0] for v in per) / sum(v[1] for v in per), 4)
    only_b = evaluate_generation(folder, tiny_music_transformer, include=["b.mid"], continuation=None)
    assert only_b["files"] == 1 and only_b["events"] == per[1][1]


def test_nothing_readable_or_nothing_there_is_refused_naming_the_input(folder, tmp_path, tiny_music_transformer):
    with pytest.raises(ValueError) as err:
        evaluate_generation(folder, tiny_music_transformer, include=["bad.mid"])
    assert str(err.value) == f"input {folder}: none of its 1 MIDI files could be read"
    with pytest.raises(InputError) as err:
        evaluate_generation(tmp_path / "nowhere", tiny_music_transformer)
    assert str(err.value).startswith(f"input {tmp_path / 'nowhere'}: ")


def test_continuations_are_scored_on_the_files_read_or_said_to_be_too_short(folder, tiny_music_transformer):
    warnings, rows = [], []
    long = ContinuationSettings(primer_seconds=100.0, seconds=1.0)
    got = evaluate_generation(folder, tiny_music_transformer, continuation=long, warn=warnings.append)
    assert got["continuation"] is None
    assert warnings[-1] == "no file is longer than continuation.primer_seconds=100.0: no continuation statistics"
    off = evaluate_generation(folder, tiny_music_transformer, continuation=ContinuationSettings(enabled=False))
    assert "continuation" not in off
    short = ContinuationSettings(primer_seconds=0.5, seconds=0.3, seed=3)
    got = evaluate_generation(folder, tiny_music_transformer, continuation=short, emit=rows.append)
    model = load_music_transformer(tiny_music_transformer)
    pieces = [(rel, read_midi_notes(folder / rel)) for rel in ("a.mid", "sub/b.mid")]
    expected = evaluate_continuations(model, pieces, short, 64)
    assert got["continuation"] == expected
    assert [r for r in rows if "continuation" in r] == [{"continuation": r} for r in _rows_of(model, pieces, short)]


def _rows_of(model, pieces, settings):
    rows: list = []
    evaluate_continuations(model, pieces, settings, 64, emit=rows.append)
    assert rows, "the short settings continue at least one file"
    return rows


def test_notes_of_the_fixture_are_what_was_written(folder):
    notes = read_midi_notes(folder / "a.mid")
    assert np.allclose(notes[:, 0], [0, 0.25, 0.5, 0.75], atol=1e-3) and list(notes[:, 2]) == [60, 64, 67, 72]


def test_a_folder_without_midi_files_is_refused_naming_what_it_lacks(tmp_path, tiny_music_transformer):
    (tmp_path / "notes.txt").write_text("not music")
    with pytest.raises(InputError) as err:
        evaluate_generation(tmp_path, tiny_music_transformer)
    assert str(err.value) == f"input {tmp_path}: folder holds no MIDI files"


def test_the_means_are_rounded_as_documented(folder, tiny_music_transformer, monkeypatch):
    import w2m2w.evaluate.generation as gen

    # the scorer stood in for: a.mid 3.0001 nats over 1 event, sub/b.mid 2.0004 over 2 (1.0002 per event)
    per = {"a.mid": (3.0001, 1), "b.mid": (2.0004, 2)}
    monkeypatch.setattr(gen, "notes_nll", lambda model, notes, ctx: per["a.mid" if len(notes) == 4 else "b.mid"])
    clock = iter([100.0, 101.23456])
    monkeypatch.setattr(gen, "time", type("T", (), {"perf_counter": staticmethod(lambda: next(clock))}))
    got = evaluate_generation(folder, tiny_music_transformer, exclude=["bad.mid"], continuation=None)
    # by hand: (3.0001 + 2.0004) / 3 = 1.66683..; per file 3.0001 and 1.0002, their mean 2.00015 -> 2.0002 (4 places)
    assert got["nll_per_event"] == 1.6668 and got["events"] == 3
    assert got["mean_file_nll_per_event"] == round((3.0001 + 1.0002) / 2, 4) == 2.0002
    assert got["seconds"] == 1.23  # 1.23456 s, to the hundredth


def test_the_continuations_use_the_context_asked_for(folder, tiny_music_transformer, monkeypatch):
    import w2m2w.evaluate.generation as gen

    seen = []
    real = gen.evaluate_continuations
    monkeypatch.setattr(gen, "evaluate_continuations", lambda *a, **kw: seen.append(a[3]) or real(*a, **kw))
    settings = ContinuationSettings(primer_seconds=0.8, seconds=0.3, seed=5)
    evaluate_generation(folder, tiny_music_transformer, context=6, continuation=settings, exclude=["bad.mid"])
    evaluate_generation(folder, tiny_music_transformer, continuation=settings, exclude=["bad.mid"])
    assert seen == [6, 64], "the context asked for, else the model's training length"
