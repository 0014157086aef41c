"""End-to-end: the real run.py, generate stage (and transcribe + generate), with tiny models made by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_pipeline
from w2m2w.midi import load_midi_notes, write_midi


def melody(n: int = 40, step: float = 0.25) -> np.ndarray:
    return np.array([[i * step, i * step + 0.2, 60 + (3 * i) % 12, 60 + i % 30] for i in range(n)], dtype=np.float64)


@pytest.fixture()
def song(tmp_path) -> Path:
    path = tmp_path / "in" / "my song.mid"
    path.parent.mkdir(parents=True)
    write_midi(path, melody())
    return path


def gen_args(weights: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "stages=[generate]",
        f"generate.weights={weights}",
        f"run_dir={run_dir}",
        "generate.seconds=3",
        "generate.primer_seconds=4",
        "generate.context=256",
        *extra,
    ]


def test_generate_midi_input(tmp_path, song, tiny_music_transformer):
    run_dir = tmp_path / "run"
    res = run_pipeline(*gen_args(tiny_music_transformer, run_dir, f"input={song}", "generate.seed=5"))
    assert res.returncode == 0, res.stderr[-3000:]
    out = run_dir / "2-generate" / "my song.mid"
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["stage"] == "generate" and side["piece"] == "my song" and len(side["weights_sha256"]) == 64
    st = side["stats"]
    assert st["input_notes"] == 40 and st["primer_notes"] == 16 and st["primer_events"] > 0
    assert st["primer_start_in_input_s"] == pytest.approx(6.0) and st["primer_end_s"] == pytest.approx(3.95)
    assert st["seed"] == 5 and st["sampling"] == {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 5}
    assert st["continuation_seconds"] >= 3.0 and st["output"] == "primer+continuation" and not st["primer_truncated"]
    assert side["settings"]["seed"] == 5 and side["settings"]["seconds"] == 3
    notes = load_midi_notes(out)
    assert len(notes) == st["output_notes"] == st["primer_notes"] + st["continuation_notes"]
    primer = notes[notes[:, 0] < st["primer_end_s"] - 1e-6]
    np.testing.assert_allclose(primer[:, 0], melody()[24:, 0] - 6.0, atol=0.011)  # the input's last notes, from time 0
    np.testing.assert_array_equal(primer[:, 2], melody()[24:, 2])
    assert not (run_dir / "1-transcribe").exists()


def test_seed_reproducibility_and_rerun(tmp_path, song, tiny_music_transformer):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_pipeline(*gen_args(tiny_music_transformer, a, f"input={song}")).returncode == 0
    assert run_pipeline(*gen_args(tiny_music_transformer, b, f"input={song}")).returncode == 0
    out_a, out_b = a / "2-generate" / "my song.mid", b / "2-generate" / "my song.mid"
    np.testing.assert_array_equal(load_midi_notes(out_a), load_midi_notes(out_b))
    # a rerun over the run directory (pieces from run.json) skips the current output
    side = out_a.with_suffix(".json")
    mtime = side.stat().st_mtime_ns
    res = run_pipeline(*gen_args(tiny_music_transformer, a))
    assert res.returncode == 0 and "current" in res.stdout
    assert side.stat().st_mtime_ns == mtime
    # another seed is another output, recomputed; continuation only; a primer cut to fit the context
    res = run_pipeline(
        *gen_args(tiny_music_transformer, a, "generate.seed=1", "generate.include_primer=false", "generate.context=32")
    )
    assert res.returncode == 0, res.stderr[-3000:]
    st = json.loads(side.read_text())["stats"]
    assert st["seed"] == 1 and st["output"] == "continuation" and st["primer_end_s"] == 0.0
    assert st["primer_truncated"] and st["primer_events"] <= 32 and st["context"] == 32
    notes = load_midi_notes(out_a)
    assert len(notes) == st["continuation_notes"]
    assert not np.array_equal(notes, load_midi_notes(out_b))


def test_bad_midi_files_are_named_and_batch_goes_on(tmp_path, song, tiny_music_transformer):
    import pretty_midi

    root = song.parent
    (root / "junk.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01garbage")
    (root / "zero.mid").write_bytes(b"")
    write_midi(root / "silent.mid", np.zeros((0, 4)))
    pm = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes += [
        pretty_midi.Note(velocity=90, pitch=36 + i % 3, start=i * 0.25, end=i * 0.25 + 0.1) for i in range(16)
    ]
    pm.instruments.append(kit)
    pm.write(str(root / "drums.mid"))
    run_dir = tmp_path / "run"
    res = run_pipeline(*gen_args(tiny_music_transformer, run_dir, f"input={root}"))
    assert res.returncode == 1, "a failed piece makes the run exit non-zero"
    log = res.stdout + res.stderr
    for name, reason in [
        ("junk.mid", "not a readable MIDI"),
        ("zero.mid", "empty"),
        ("silent.mid", "no notes"),
        ("drums.mid", "only drum"),
    ]:
        lines = [ln for ln in log.splitlines() if "ERROR" in ln and name in ln]
        assert len(lines) == 1 and reason in lines[0] and str(root / name) in lines[0], (
            f"no clear error line for {name}:\n{log[-3000:]}"
        )
    assert sorted(p.name for p in (run_dir / "2-generate").iterdir()) == ["my song.json", "my song.mid"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"] == {"done": 1, "failed": 4}


def test_bad_weights_named(tmp_path, song):
    missing = tmp_path / "nope.safetensors"
    res = run_pipeline(*gen_args(missing, tmp_path / "run", f"input={song}"))
    assert res.returncode == 2 and str(missing) in res.stdout + res.stderr and "not found" in res.stdout + res.stderr


def test_transcribe_then_generate(tmp_path, example_audio, tiny_transcriber, tiny_music_transformer):
    run_dir = tmp_path / "run"
    common = [
        f"input={example_audio}",
        f"run_dir={run_dir}",
        "stages=[transcribe,generate]",
        f"transcribe.weights={tiny_transcriber}",
        f"generate.weights={tiny_music_transformer}",
        "generate.seconds=2",
    ]
    res = run_pipeline(*common)
    assert res.returncode == 0, res.stderr[-3000:]
    side = json.loads((run_dir / "2-generate" / "notes.json").read_text())
    assert side["input"] == str(run_dir / "1-transcribe" / "notes.mid")
    assert side["stats"]["continuation_seconds"] >= 2.0
    assert (run_dir / "2-generate" / "notes.mid").is_file()
    # a transcription with no notes (every note is shorter than min_duration) still yields a continuation;
    # an onset threshold above 1 did this before thresholds were held to (0, 1)
    res = run_pipeline(*common, "transcribe.min_duration=100")
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert any("WARNING" in ln and "no notes" in ln and "empty start" in ln for ln in log.splitlines()), log[-3000:]
    st = json.loads((run_dir / "2-generate" / "notes.json").read_text())["stats"]
    assert st["input_notes"] == 0 and st["primer_events"] == 0 and st["continuation_seconds"] >= 2.0
    assert "no notes" in st["warning"]


def test_a_continuation_with_its_score_and_the_inputs_tempo_map(tmp_path, tiny_music_transformer):
    """Through run.py: a 3/4 input at 100 bpm (beats 0.6 s, bars 1.8 s) is continued in 3/4 at 100 bpm with
    its bar lines, moved to the output's start (6.0 s in the input: one beat after the bar line at 5.4 s, so
    the output opens with a pickup bar of two beats), and generate.score=true writes a MusicXML file holding
    the output's notes."""
    import pretty_midi

    from w2m2w.midi import notes_to_pretty_midi
    from w2m2w.musicxml import read_notes

    path = tmp_path / "in" / "waltz.mid"
    path.parent.mkdir(parents=True)
    pm = notes_to_pretty_midi(melody())
    pm._tick_scales = [(0, 0.6 / pm.resolution)]
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    pm.write(str(path))
    run_dir = tmp_path / "run"
    res = run_pipeline(*gen_args(tiny_music_transformer, run_dir, f"input={path}", "generate.score=true"))
    assert res.returncode == 0, res.stderr[-3000:]
    out = run_dir / "2-generate" / "waltz.mid"
    stats = json.loads(out.with_suffix(".json").read_text())["stats"]
    assert stats["primer_start_in_input_s"] == pytest.approx(6.0) and stats["tempo_map_from"] == "input"
    written = pretty_midi.PrettyMIDI(str(out))
    assert [(ts.numerator, ts.denominator) for ts in written.time_signature_changes] == [(2, 4), (3, 4)]
    np.testing.assert_allclose(written.get_beats()[:4], [0.0, 0.6, 1.2, 1.8], atol=1e-5)
    np.testing.assert_allclose(written.get_downbeats()[:3], [0.0, 1.2, 3.0], atol=1e-5)  # 7.2 and 9.0 s in the input
    assert len(read_notes(out.with_suffix(".musicxml"))) == len(load_midi_notes(out, apply_pedal=False))
    assert "score: <a" in (run_dir / "report.html").read_text()
