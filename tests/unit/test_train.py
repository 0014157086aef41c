"""Training smoke test: a tiny transcriber on a fake MAPS folder, then a resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch

from tests.unit._synth import make_maps
from w2m2w.models.onsets_frames import OnsetsFramesConfig
from w2m2w.train.transcriber import TranscriberTrainConfig, build_datasets, train_transcriber
from w2m2w.transcription import load_transcriber, transcribe


def _cfg(tmp_path, max_steps: int) -> TranscriberTrainConfig:
    return TranscriberTrainConfig(
        out_dir=str(tmp_path / "run"),
        model=OnsetsFramesConfig(model_size=32, lstm_units=8),
        maps_root=str(tmp_path / "maps"),
        maps_holdout_piano="SptkBGCl",
        midi_globs=[],
        batch_size=2,
        segment_seconds=1.0,
        augment_p=0.5,
        room_bank=0,  # no simulated rooms: building them is data/rooms.py's test's job
        max_steps=max_steps,
        validate_every=2,
        validation_seconds=1.5,
        threads=1,
    )


def test_train_then_resume(tmp_path):
    make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_AkPnStgb", "b_SptkBGCl", "c_SptkBGCl"], seconds=2.0)
    train, val = build_datasets(_cfg(tmp_path, 3))
    assert [e.name for e in train] == ["MAPS_MUS-a_AkPnBcht"]  # b is on the held-out piano, so not trained on
    assert [e.name for e in val["maps_SptkBGCl"]] == ["MAPS_MUS-b_SptkBGCl", "MAPS_MUS-c_SptkBGCl"]

    summary = train_transcriber(_cfg(tmp_path, 3))
    run = tmp_path / "run"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3]  # every validate_every steps, and at the end
    assert summary == log[-1]
    assert {"loss", "maps_SptkBGCl/note_f1", "maps_SptkBGCl/frame_f1"} <= set(log[0])
    assert all(np.isfinite(r["loss"]) for r in log)
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 3

    model = load_transcriber(run / "best.safetensors")
    assert model.cfg == OnsetsFramesConfig(model_size=32, lstm_units=8)
    notes = transcribe(model, np.zeros(8000, np.float32))
    assert notes.ndim == 2 and notes.shape[1] == 4
    last = load_transcriber(run / "last.safetensors")
    before = {k: v.clone() for k, v in last.state_dict().items()}

    train_transcriber(_cfg(tmp_path, 5))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3, 4, 5]  # resumed at step 4; a restart would log 2 again
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 5
    after = load_transcriber(run / "last.safetensors").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it went on training


def test_init_from_copies_what_fits_and_leaves_a_new_head_fresh(tmp_path):
    """Fine-tuning a pedal-head model from weights without one: every shared tensor is copied, the pedal head is not."""
    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import MODEL_NAME, OnsetsFrames
    from w2m2w.train.loop import init_from

    torch.manual_seed(0)
    old = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8))
    save_weights(tmp_path / "old.safetensors", MODEL_NAME, old.state_dict(), {"model_size": 32, "lstm_units": 8}, {})
    torch.manual_seed(1)
    new = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=True))
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    init_from(new, str(tmp_path / "old.safetensors"), MODEL_NAME)
    got, was = new.state_dict(), old.state_dict()
    for k, v in got.items():
        if k.startswith("pedal_stack."):
            assert torch.equal(v, fresh[k]), k
        else:
            assert torch.equal(v, was[k]), k
    assert any(
        not torch.equal(fresh[k], was[k]) for k in was if k.endswith("weight")
    )  # the two inits differ, so the copy is seen


def test_validation_scores_the_pedal_only_where_the_reference_has_one():
    import torch

    from w2m2w.models.onsets_frames import OnsetsFrames
    from w2m2w.train.transcriber import validation_scores

    torch.manual_seed(0)
    model = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=True)).eval()
    y = np.random.default_rng(0).uniform(-0.1, 0.1, 16000).astype(np.float32)
    notes = np.array([[0.1, 0.5, 60, 80]])
    with_pedal = validation_scores(model, [(y, notes, np.array([[0.2, 0.8]]))], [0.3])
    without = validation_scores(model, [(y, notes, None)], [0.3])
    assert {"pedal_onset_f1", "pedal_frame_f1", "note_f1", "frame_f1@0.3", "note_offset_f1@0.3"} <= set(with_pedal)
    assert not any(k.startswith("pedal") for k in without) and "note_f1" in without
    assert all(0.0 <= v <= 1.0 for v in with_pedal.values())


def test_sample_seed_draws_again_but_holds_out_the_same_files(tmp_path, monkeypatch):
    """train.sample_seed: another draw of the same run; train.seed alone picks the held-out MIDI files."""

    import w2m2w.train.transcriber as tr
    from w2m2w.data.transcription import Example
    from w2m2w.train.loop import draw_seed

    base = _cfg(tmp_path, 2)
    assert (
        draw_seed(base) == 0 and draw_seed(replace(base, sample_seed=5)) == 5 and draw_seed(replace(base, seed=3)) == 3
    )

    for i in range(12):
        (tmp_path / f"m{i:02d}.mid").write_bytes(b"")
    # rendering is fluidsynth's test's job: here each MIDI file is one example named after it
    monkeypatch.setattr(tr, "rendered_examples", lambda paths, sfs, *a, **k: [Example(p, p, p, sfs[0]) for p in paths])
    split = lambda cfg: sorted(e.name for e in tr.build_datasets(cfg)[1]["render_csound"])  # noqa: E731
    midi = replace(
        base, maps_root=None, midi_globs=[str(tmp_path / "*.mid")], holdout_midi_files=3, holdout_soundfont="csound"
    )
    held = split(midi)
    assert len(held) == 3
    assert split(replace(midi, sample_seed=7)) == held
    assert split(replace(midi, seed=7)) != held  # the check can fail: another seed holds out other files

    make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl"], seconds=2.0)
    train_transcriber(replace(base, out_dir=str(tmp_path / "init"), max_steps=1))
    start = str(tmp_path / "init" / "last.safetensors")  # equal initial weights: only what is drawn can differ
    import w2m2w.train.loop as loop
    from w2m2w.train.prefetch import Prefetcher

    seeds = []  # the seed each run's batches are drawn with (test_prefetch: the rows are a function of it)

    class Spy(Prefetcher):
        def __init__(self, sampler, seed, *args, **kwargs):
            seeds.append(seed)
            super().__init__(sampler, seed, *args, **kwargs)

    monkeypatch.setattr(loop, "Prefetcher", Spy)
    weights = {}
    for name, sample_seed in (("default", None), ("zero", 0), ("other", 1)):
        train_transcriber(replace(base, out_dir=str(tmp_path / name), sample_seed=sample_seed, init_weights=start))
        weights[name] = load_transcriber(tmp_path / name / "last.safetensors").state_dict()
    assert seeds == [0, 0, 1]
    assert all(
        torch.equal(weights["default"][k], weights["zero"][k]) for k in weights["default"]
    )  # None is the seed itself
    assert any(not torch.equal(weights["default"][k], weights["other"][k]) for k in weights["default"])


def test_a_checkpoint_older_than_a_model_setting_resumes_while_the_setting_is_unset(tmp_path):
    """A setting added later (model.input_level_db) reads as None in an older checkpoint: the run goes on
    with the setting unset and is refused, by name, with it set."""
    from dataclasses import asdict

    import pytest

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import MODEL_NAME, OnsetsFrames
    from w2m2w.train.loop import TrainingError, check_resume

    cfg = OnsetsFramesConfig(model_size=32, lstm_units=8)
    older = {k: v for k, v in asdict(cfg).items() if k != "input_level_db"}
    (tmp_path / "checkpoint").mkdir()
    save_weights(tmp_path / "checkpoint" / "model.safetensors", MODEL_NAME, OnsetsFrames(cfg).state_dict(), older, {})
    (tmp_path / "checkpoint" / "state.json").write_text("{}")
    check_resume(tmp_path / "checkpoint", MODEL_NAME, cfg)
    with pytest.raises(TrainingError, match=r"model.input_level_db: None there, -15.0 now"):
        check_resume(
            tmp_path / "checkpoint", MODEL_NAME, OnsetsFramesConfig(model_size=32, lstm_units=8, input_level_db=-15.0)
        )
    with pytest.raises(TrainingError, match=r"model.lstm_units: 8 there, 16 now"):
        check_resume(tmp_path / "checkpoint", MODEL_NAME, OnsetsFramesConfig(model_size=32, lstm_units=16))


def test_a_nested_setting_the_checkpoint_predates_reads_as_its_default():
    """The source-filter model's `source` dict gained release_tau_octave (default 1.0, the behaviour before it):
    a checkpoint without it resumes under the default and is refused, by its dotted name, under another value."""
    from w2m2w.models.source_filter import SourceFilterConfig
    from w2m2w.train.loop import config_differences

    older = {"residual_channels": 16, "source": {"partials": 32, "tau_low": 3.0}}  # saved before the new key
    assert config_differences(older, SourceFilterConfig()) == []
    assert config_differences(older, SourceFilterConfig(source={"release_tau_octave": 1.22})) == [
        ("source.release_tau_octave", 1.0, 1.22)
    ]
    assert config_differences({**older, "source": {"partials": 16}}, SourceFilterConfig()) == [
        ("source.partials", 16, 32)
    ]
    assert config_differences({**older, "gone": 1}, SourceFilterConfig()) == [("gone", 1, None)]
    assert config_differences({"layers": 4}, SourceFilterConfig(layers=8)) == [("layers", 4, 8)]


def test_the_best_weights_are_picked_on_the_named_set_or_else_the_first():
    from w2m2w.train.transcriber import selection_key

    assert selection_key("audio_real", ["maps_X", "audio_real"]) == "audio_real/note_f1"
    assert selection_key(None, ["maps_X", "audio_real"]) == "maps_X/note_f1"
    assert selection_key(None, []) is None


def _audio_dir(folder, names, tmp_path):
    """A folder of recordings beside same-named .tsv labels, copied from a fake MAPS folder."""
    import shutil

    src = make_maps(tmp_path / ("src_" + folder.name), [f"{n}_AkPnBcht" for n in names], seconds=2.0)
    folder.mkdir(parents=True)
    for n in names:
        shutil.copy(src / "flac" / f"MAPS_MUS-{n}_AkPnBcht.flac", folder / f"{n}.flac")
        shutil.copy(src / "tsv" / f"MAPS_MUS-{n}_AkPnBcht.tsv", folder / f"{n}.tsv")
    return folder


def test_recordings_with_labels_join_training_and_validation_and_pick_the_best(tmp_path):

    import pytest

    from w2m2w.train.loop import TrainingError

    make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl"], seconds=2.0)
    real_train = _audio_dir(tmp_path / "real_train", ["x", "y"], tmp_path)
    real_val = _audio_dir(tmp_path / "real_val", ["z"], tmp_path)
    cfg = replace(
        _cfg(tmp_path, 2),
        audio_dirs=[str(real_train)],
        val_audio_dirs=[str(real_val)],
        select_by="audio_real_val",
        audio_share=0.5,
    )
    train, val = build_datasets(cfg)
    assert sorted(e.name for e in train) == ["MAPS_MUS-a_AkPnBcht", "x", "y"]
    assert {e.group for e in train if e.name in "xy"} == {"audio_dir"}
    assert list(val) == ["maps_SptkBGCl", "audio_real_val"] and [e.name for e in val["audio_real_val"]] == ["z"]

    train_transcriber(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"audio_real_val/note_f1", "maps_SptkBGCl/note_f1"} <= set(log[-1])
    assert (
        json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["best"]
        == log[0]["audio_real_val/note_f1"]
    )

    with pytest.raises(TrainingError, match="also in training"):  # a validation piece that training reads
        build_datasets(replace(cfg, val_audio_dirs=[str(real_train)], select_by=None))
    with pytest.raises(TrainingError, match="select_by"):
        build_datasets(replace(cfg, select_by="audio_nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="empty"):
        build_datasets(replace(cfg, audio_dirs=[str(tmp_path / "empty")]))


def test_checkpoints_between_validations_every_checkpoint_minutes(tmp_path, monkeypatch):

    from w2m2w.train import loop

    make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl"], seconds=2.0)
    saved: list[int] = []
    real_save = loop.save_training_state
    monkeypatch.setattr(
        loop,
        "save_training_state",
        lambda ckpt, name, model, config, opt, state: (
            saved.append(state["step"]),
            real_save(ckpt, name, model, config, opt, state),
        ),
    )
    cfg = replace(_cfg(tmp_path, 4), validate_every=100)
    monkeypatch.setattr(loop, "CHECKPOINT_MINUTES", 0.0)  # every step is past the interval
    train_transcriber(cfg)
    assert saved == [1, 2, 3, 4, 4]  # steps 1-3 by time, step 4 at its validation (the last step), then the end's
    saved.clear()
    monkeypatch.setattr(loop, "CHECKPOINT_MINUTES", 10.0)
    train_transcriber(replace(cfg, max_steps=7))
    assert saved == [7, 7]  # resumed at 5; no step took 10 minutes: only the last validation's and the end's


def test_a_signal_stops_training_with_a_checkpoint_and_the_run_resumes_there(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl"], seconds=2.0)
    root = str(Path(__file__).resolve().parents[2])
    # a checkpoint after every step (CHECKPOINT_MINUTES 0) shows when training is under way
    script = f"""
import logging, sys; sys.path.insert(0, {root!r}); logging.basicConfig(level=logging.INFO)
from dataclasses import replace
from pathlib import Path
from tests.unit.test_train import _cfg
from w2m2w.train import loop
from w2m2w.train.transcriber import train_transcriber
loop.CHECKPOINT_MINUTES = 0.0
train_transcriber(replace(_cfg(Path({str(tmp_path)!r}), 100000), validate_every=100000))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    state_file = tmp_path / "run" / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and not state_file.exists() and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    step = json.loads(state_file.read_text())["step"]
    assert step >= 1 and f"stopped by signal 15 at step {step}" in err
    assert not (tmp_path / "run" / "log.jsonl").exists()  # no validation on the way out: the resumed run validates
    # validating every step lists exactly the steps the resumed run took, whatever step the signal landed on
    train_transcriber(replace(_cfg(tmp_path, step + 2), validate_every=1))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [step + 1, step + 2]  # resumed at step + 1, not from the start
