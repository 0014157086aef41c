"""End-to-end: the real run.py, transcribe stage, with a tiny model made by the test."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_pipeline


def transcribe_only(*args: str):
    """run.py with stages=[transcribe] (the default runs every stage)."""
    return run_pipeline("stages=[transcribe]", *args)


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file() and ".hydra" not in p.parts]


@pytest.fixture()
def batch(tmp_path, example_audio) -> Path:
    """A folder of good and bad inputs, nested."""
    root = tmp_path / "in"
    (root / "set a").mkdir(parents=True)
    shutil.copy(example_audio, root / "set a" / "take 1.wav")
    y, sr = sf.read(example_audio)
    sf.write(str(root / "stereo44k.flac"), np.stack([y, y], 1), 44100)  # resampled and mixed down by the loader
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.mp3").write_text("this is not audio\n")
    (root / "corrupt.flac").write_bytes(b"fLaC" + bytes(2000))
    sf.write(str(root / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    return root


def test_demo_run_writes_contract(tmp_path, tiny_transcriber, tiny_music_transformer, tiny_wavenet):
    """`python run.py` with no input: the demo recording through every stage (tiny models here)."""
    run_dir = tmp_path / "run"
    res = run_pipeline(
        f"transcribe.weights={tiny_transcriber}",
        f"generate.weights={tiny_music_transformer}",
        "generate.seconds=2",
        "synthesize=wavenet",
        f"synthesize.weights={tiny_wavenet}",
        f"run_dir={run_dir}",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    mid = run_dir / "1-transcribe" / "bach_prelude_c.mid"
    side = json.loads(mid.with_suffix(".json").read_text())
    assert mid.is_file()
    assert side["stage"] == "transcribe" and side["piece"] == "bach_prelude_c"
    assert len(side["input_sha256"]) == 64 and len(side["config_hash"]) == 64 and len(side["weights_sha256"]) == 64
    assert side["stats"]["audio_seconds"] > 20
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["inputs"]["bach_prelude_c"]["source"].endswith("bach_prelude_c.flac")
    assert list((run_dir / ".hydra").glob("*/config.yaml")), "Hydra's record of the call belongs in the run directory"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"] == {"done": 1}
    assert summary["stages"] == ["transcribe", "generate", "synthesize"]
    assert (run_dir / "2-generate" / "bach_prelude_c.mid").is_file() and (
        run_dir / "3-synthesize" / "bach_prelude_c.wav"
    ).is_file()
    assert (run_dir / "report.html").is_file()


def test_rerun_skips_current_and_force_recomputes(tmp_path, tiny_transcriber, example_audio):
    run_dir = tmp_path / "run"
    args = [f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", f"input={example_audio}"]
    assert transcribe_only(*args).returncode == 0
    side_path = run_dir / "1-transcribe" / "notes.json"
    first = json.loads(side_path.read_text())["created"]
    mtime = side_path.stat().st_mtime_ns
    res = transcribe_only(*args)
    assert res.returncode == 0 and "current" in res.stdout
    assert side_path.stat().st_mtime_ns == mtime
    res = transcribe_only(*args, "transcribe.onset_threshold=0.7")  # a new setting -> recomputed
    assert res.returncode == 0
    assert side_path.stat().st_mtime_ns != mtime
    assert json.loads(side_path.read_text())["settings"]["onset_threshold"] == 0.7
    mtime = side_path.stat().st_mtime_ns
    assert transcribe_only(*args, "transcribe.onset_threshold=0.7", "force=true").returncode == 0
    assert side_path.stat().st_mtime_ns != mtime
    assert first  # the sidecar records when it was made


def test_rerun_over_run_dir_without_input(tmp_path, tiny_transcriber, example_audio):
    run_dir = tmp_path / "run"
    assert (
        transcribe_only(
            f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", f"input={example_audio}"
        ).returncode
        == 0
    )
    res = run_pipeline(f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", "stages=[transcribe]")
    assert res.returncode == 0
    assert "notes" in res.stdout and "current" in res.stdout  # pieces came from run.json, not the demo
    assert not (run_dir / "1-transcribe" / "bach_prelude_c.mid").exists()


def test_bad_inputs_are_named_and_batch_goes_on(tmp_path, tiny_transcriber, batch):
    run_dir = tmp_path / "run"
    res = transcribe_only(f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", f"input={batch}")
    assert res.returncode == 1, "a failed piece makes the run exit non-zero"
    log = res.stdout + res.stderr
    for name, reason in [
        ("empty.wav", "empty"),
        ("notes.mp3", "not readable"),
        ("corrupt.flac", "not readable"),
        ("silent.wav", "silent"),
    ]:
        lines = [ln for ln in log.splitlines() if "ERROR" in ln and name in ln]
        assert lines and reason in lines[0], f"no clear error line for {name}:\n{log[-3000:]}"
    out = run_dir / "1-transcribe"
    assert (out / "set a" / "take 1.mid").is_file(), "nested folders are mirrored, names kept"
    assert (out / "stereo44k.mid").is_file()
    assert sorted(p.name for p in out.rglob("*.mid")) == ["stereo44k.mid", "take 1.mid"]
    assert hidden_files(out) == [], "no temporary files stay behind"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"] == {"done": 2, "failed": 4}
    assert set(summary["failed"]) == {"empty", "notes", "corrupt", "silent"}


def test_glob_and_list_inputs(tmp_path, tiny_transcriber, batch):
    run_dir = tmp_path / "run"
    res = transcribe_only(f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", f"input={batch}/**/*.wav")
    pieces = json.loads((run_dir / "run.json").read_text())["inputs"]
    assert set(pieces) == {"set a/take 1", "empty", "silent"}
    assert res.returncode == 1
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my takes\n{batch / 'set a' / 'take 1.wav'}\n{batch / 'stereo44k.flac'}\n")
    run_dir2 = tmp_path / "run2"
    res = transcribe_only(f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir2}", f"input={listing}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert set(json.loads((run_dir2 / "run.json").read_text())["inputs"]) == {"set a/take 1", "stereo44k"}


def test_interrupted_run_resumes(tmp_path, tiny_transcriber, batch):
    run_dir = tmp_path / "run"
    out = run_dir / "1-transcribe"
    out.mkdir(parents=True)
    # what a killed run leaves: a temporary file of a dead process, and an output without its sidecar
    stale = out / f".stereo44k.mid.tmp-{socket.gethostname().replace('-', '_')}-999999-0123abcd.mid"  # this host's
    stale.write_bytes(b"half a midi file")
    (out / "stereo44k.mid").write_bytes(b"MThd not really")
    res = transcribe_only(
        f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", f"input={batch / 'stereo44k.flac'}"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert not stale.exists()
    assert (out / "stereo44k.json").is_file()
    import pretty_midi

    pretty_midi.PrettyMIDI(str(out / "stereo44k.mid"))  # a real MIDI file now


def test_missing_and_corrupt_weights_named(tmp_path, example_audio):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    for weights, expect in [(tmp_path / "nope.safetensors", "not found"), (bad, "Git LFS")]:
        res = transcribe_only(f"transcribe.weights={weights}", f"run_dir={tmp_path / 'run'}", f"input={example_audio}")
        assert res.returncode != 0
        assert str(weights) in res.stdout + res.stderr and expect in res.stdout + res.stderr


def test_bad_arguments(tmp_path, tiny_transcriber):
    res = transcribe_only(
        f"transcribe.weights={tiny_transcriber}", f"run_dir={tmp_path / 'r'}", f"input={tmp_path / 'missing'}"
    )
    assert res.returncode == 2 and "no such file or folder" in res.stdout + res.stderr
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    res = transcribe_only(f"transcribe.weights={tiny_transcriber}", f"run_dir={tmp_path / 'r'}", f"input={empty}")
    assert res.returncode == 2 and "holds no audio" in res.stdout + res.stderr
    res = run_pipeline(f"run_dir={tmp_path / 'r'}", "stages=[transcribe,synthesize]")
    assert res.returncode == 2 and "contiguous" in res.stdout + res.stderr


@pytest.fixture(scope="module")
def pedal_transcriber(tmp_path_factory) -> Path:
    """A tiny transcriber with a pedal head whose output says "down" on every frame, with no onset or offset."""
    from dataclasses import asdict

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig

    torch.manual_seed(0)
    cfg = OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=True)
    model = OnsetsFrames(cfg)
    with torch.no_grad():
        for head in (
            model.onset_stack,
            model.frame_acoustic,
            model.frame_combined,
        ):  # notes too, as tiny_transcriber writes
            head[-1].bias.fill_(2.0)
        model.pedal_stack[-1].bias.copy_(torch.tensor([-20.0, -20.0, 20.0]))
    path = tmp_path_factory.mktemp("weights") / "pedal.safetensors"
    save_weights(
        path, "onsets_frames", model.state_dict(), asdict(cfg), {"note": "untrained test model with a pedal head"}
    )
    return path


def test_pedal_head_writes_cc64_and_readers_apply_it(tmp_path, pedal_transcriber, example_audio):
    import pretty_midi

    from w2m2w.midi import load_midi_notes
    from w2m2w.pedal import load_pedal

    run_dir = tmp_path / "run"
    res = transcribe_only(f"transcribe.weights={pedal_transcriber}", f"run_dir={run_dir}", f"input={example_audio}")
    assert res.returncode == 0, res.stderr[-2000:]
    mid = run_dir / "1-transcribe" / "notes.mid"
    # 3 s at hop 512: 48000 // 512 + 1 = 94 frames of 1/31.25 s; the pedal is down on every one: one press to 3.008 s
    up = 94 / 31.25
    np.testing.assert_allclose(load_pedal(mid), [[0.0, up]], atol=1.2e-3)  # within half a MIDI tick (1/440 s)
    cc = pretty_midi.PrettyMIDI(str(mid)).instruments[0].control_changes
    assert [(c.number, c.value) for c in cc] == [(64, 127), (64, 0)]
    side = json.loads(mid.with_suffix(".json").read_text())
    assert side["stats"]["pedal_intervals"] == 1 and side["settings"]["pedal"] is True
    # The notes are written as decoded; the generate stage reads them with the pedal applied
    # (generation.py: load_midi_notes, apply_pedal=True). Under one press over the whole recording every
    # note is held to the pedal's up, or to the next strike of its key, whichever comes first. This
    # untrained model holds every note to the end already, as a pedal-lengthened transcription would:
    # they come back as written (test_midi.py's TestPedalWritten has notes the pedal lengthens).
    written = load_midi_notes(mid, apply_pedal=False)
    assert len(written) > 0
    expected = written.copy()
    for i, (on, _, pitch, _) in enumerate(written):
        later = written[(written[:, 2] == pitch) & (written[:, 0] > on), 0]
        expected[i, 1] = min([up, *later])
    np.testing.assert_allclose(load_midi_notes(mid), expected, atol=1.2e-3)
    # pedal=false: the same notes, no CC64
    run2 = tmp_path / "run2"
    res = transcribe_only(
        f"transcribe.weights={pedal_transcriber}", f"run_dir={run2}", f"input={example_audio}", "transcribe.pedal=false"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    mid2 = run2 / "1-transcribe" / "notes.mid"
    assert pretty_midi.PrettyMIDI(str(mid2)).instruments[0].control_changes == []
    np.testing.assert_allclose(load_midi_notes(mid2), written, atol=1.2e-3)
    assert json.loads(mid2.with_suffix(".json").read_text())["stats"]["pedal_intervals"] is None


def test_weights_without_a_pedal_head_write_no_cc64(tmp_path, tiny_transcriber, example_audio):
    # the shipped weights have no pedal head: pedal=true (the default) must write the notes alone, without failing
    import pretty_midi

    run_dir = tmp_path / "run"
    res = transcribe_only(f"transcribe.weights={tiny_transcriber}", f"run_dir={run_dir}", f"input={example_audio}")
    assert res.returncode == 0, res.stderr[-2000:]
    mid = run_dir / "1-transcribe" / "notes.mid"
    pm = pretty_midi.PrettyMIDI(str(mid))
    assert pm.instruments[0].notes and pm.instruments[0].control_changes == []
    assert json.loads(mid.with_suffix(".json").read_text())["stats"]["pedal_intervals"] is None
