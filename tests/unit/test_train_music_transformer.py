"""A few real training steps of a tiny Music Transformer on a fake MIDI folder, then a resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from w2m2w.checkpoint import load_weights
from w2m2w.midi import write_midi
from w2m2w.models.music_transformer import MusicTransformerConfig
from w2m2w.train.music_transformer import MusicTransformerTrainConfig, learning_rate, train


@pytest.fixture()
def midi_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "midi"
    root.mkdir()
    for i in range(8):
        t = np.cumsum(rng.uniform(0.05, 0.4, 60))
        notes = np.stack([t, t + rng.uniform(0.1, 0.8, 60), rng.integers(40, 90, 60), rng.integers(30, 110, 60)], 1)
        write_midi(root / f"piece{i}.mid", notes)
    return root


def test_train_smoke_and_resume(tmp_path, midi_folder):
    tiny = MusicTransformerConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=32)
    cfg = MusicTransformerTrainConfig(
        out_dir=str(tmp_path / "run"),
        model=tiny,
        midi_dirs=[str(midi_folder)],
        val_fraction=0.25,
        val_events=64,
        batch_size=2,
        max_steps=4,
        validate_every=2,
        warmup_steps=2,
    )
    summary = train(cfg)
    out = tmp_path / "run"
    rows = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and summary == rows[-1]
    assert all(4 < r["val_nll"] < 8 and r["train_nll"] > 0 for r in rows), rows
    state, config, training = load_weights(out / "best.safetensors", "music_transformer")
    assert config == {**config, "d_model": 32, "max_len": 32, "position": "relative"}
    assert training["validation"]["val_nll"] == min(r["val_nll"] for r in rows)
    split = json.loads((out / "split.json").read_text())
    assert split["val"] and not set(split["val"]) & set(split["train"])
    assert (out / "val_files.txt").read_text().split() == split["val"]
    # resume: two more steps from the checkpoint, not from scratch
    cfg.max_steps = 6
    train(cfg)
    rows = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    # a checkpoint of another model config is refused by name
    cfg.model = MusicTransformerConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=32)
    with pytest.raises(ValueError, match="another model config"):
        train(cfg)


def test_absolute_positions_train_too(tmp_path, midi_folder):
    tiny = MusicTransformerConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=32, position="learned")
    cfg = MusicTransformerTrainConfig(
        out_dir=str(tmp_path / "abs"),
        model=tiny,
        midi_dirs=[str(midi_folder / "*.mid")],
        val_events=64,
        batch_size=2,
        max_steps=2,
        validate_every=2,
    )
    assert train(cfg)["step"] == 2


def test_schedule():
    cfg = MusicTransformerTrainConfig(learning_rate=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 10, 0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 60, 0) == pytest.approx(0.55e-3)
    assert learning_rate(cfg, 110, 0) == pytest.approx(1e-4)
    cfg.max_minutes = 1.0
    assert learning_rate(cfg, 11, 60.0) == pytest.approx(1e-4), "a time budget ends the schedule too"


def test_gradient_accumulation_trains_as_one_larger_batch(tmp_path, midi_folder):
    """2 micro-batches of 2 rows must take the steps one batch of 4 takes: the same rows (row_rngs by
    global row) and the mean of equal-sized means is the mean. Windows are full, so counts are equal.
    (Scaling each micro-batch's loss by 1/accumulate is not visible here: AdamW's update does not
    depend on the gradient's scale.)"""
    from safetensors.torch import load_file

    tiny = MusicTransformerConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16)

    def run(name: str, batch: int, accumulate: int) -> dict:
        cfg = MusicTransformerTrainConfig(
            out_dir=str(tmp_path / name),
            model=tiny,
            midi_dirs=[str(midi_folder)],
            val_fraction=0.25,
            val_events=32,
            batch_size=batch,
            accumulate=accumulate,
            max_steps=3,
            validate_every=3,
            warmup_steps=1,
            max_transpose=0,
            threads=1,
        )
        train(cfg)
        return load_file(str(tmp_path / name / "last.safetensors"))

    whole, parts, half = run("whole", 4, 1), run("parts", 2, 2), run("half", 2, 1)
    for k in whole:
        np.testing.assert_allclose(parts[k].numpy(), whole[k].numpy(), atol=2e-5, err_msg=k)
    assert any(
        not np.allclose(half[k].numpy(), whole[k].numpy(), atol=2e-5) for k in whole
    )  # the check can tell batches apart


def test_corpus_shares_need_one_per_midi_dir(tmp_path, midi_folder):
    from w2m2w.train.loop import TrainingError

    cfg = MusicTransformerTrainConfig(
        out_dir=str(tmp_path / "run"), midi_dirs=[str(midi_folder)], midi_dir_shares=[1.0, 2.0], max_steps=1
    )
    with pytest.raises(TrainingError, match="midi_dir_shares has 2 entries for 1"):
        train(cfg)


def test_init_from_shorter_context_starts_from_the_same_function(tmp_path):
    """Weights trained at max_len 8 grown to 24: on 24 events the new model scores as the old one did.

    The old model clips distances past 7 to its farthest embedding, so the reference is the old model
    itself reading 24 events; a table grown any other way (zeros, a copy of the nearest distance) differs.
    """
    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.music_transformer import MODEL_NAME, MusicTransformer
    from w2m2w.train.loop import init_from
    from w2m2w.train.music_transformer import longer_relative_table

    torch.manual_seed(0)
    small = MusicTransformerConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=8, key_state=True)
    old = MusicTransformer(small).eval()
    save_weights(tmp_path / "old.safetensors", MODEL_NAME, old.state_dict(), {}, {})
    torch.manual_seed(1)
    new = MusicTransformer(
        MusicTransformerConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=24, key_state=True)
    ).eval()
    init_from(new, str(tmp_path / "old.safetensors"), MODEL_NAME, adapt=longer_relative_table)
    assert new.blocks[0].attn.rel.shape[1] == 24
    tokens = torch.randint(3, small.vocab_size, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(new(tokens), old(tokens), atol=1e-5, rtol=1e-5)
    # another head count cannot be grown: that table starts fresh instead of being forced in
    assert longer_relative_table("blocks.0.attn.rel", torch.zeros(4, 8, 16), torch.zeros(2, 24, 16)) is None
