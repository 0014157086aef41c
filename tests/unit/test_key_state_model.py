"""A key_state Music Transformer: state in, impossible NOTE_OFFs out, and the decoder's state from the whole history."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2m2w import events as ev
from w2m2w.generation import Decoder, SamplingConfig, sample_continuation
from w2m2w.models.music_transformer import MusicTransformer, MusicTransformerConfig, sequence_nll


@pytest.fixture(scope="module")
def model() -> MusicTransformer:
    torch.manual_seed(0)
    return MusicTransformer(
        MusicTransformerConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64, key_state=True)
    ).eval()


def tokens(n: int = 30) -> list[int]:
    notes = np.array([[i * 0.1, i * 0.1 + 0.35, 60 + (i * 5) % 17, 70] for i in range(n)])  # overlapping notes
    return ev.notes_to_tokens(notes).tolist()


def full_forward(model: MusicTransformer, window: list[int], states: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([window]), state=torch.from_numpy(states[None]).float())[0, -1]


def test_only_keys_that_are_down_can_be_released(model):
    seq = [ev.NOTE_ON + 60, ev.NOTE_ON + 64, ev.TIME_SHIFT + 5, ev.NOTE_OFF + 60]
    with torch.no_grad():
        p = model(torch.tensor([seq]))[0].softmax(-1)
    offs = p[:, ev.NOTE_OFF : ev.NOTE_OFF + 128]
    allowed = [{60}, {60, 64}, {60, 64}, {64}]
    for row, keys in zip(offs, allowed):
        assert float(row[sorted(keys)].sum()) > 0
        others = [k for k in range(128) if k not in keys]
        assert float(row[others].max()) < 1e-30


def test_the_state_changes_the_prediction(model):
    seq = torch.tensor([[ev.TIME_SHIFT + 5] * 4])
    with torch.no_grad():
        a = model(seq, state=torch.zeros(1, 4, 128))[0, -1, : ev.NOTE_OFF]
        down = torch.zeros(1, 4, 128)
        down[..., 50] = 1
        b = model(seq, state=down)[0, -1, : ev.NOTE_OFF]
    assert float((a - b).abs().max()) > 1e-4  # not only the mask: the input reads the state


def test_decoder_after_slides_matches_a_forward_with_the_whole_historys_state(model):
    seq = tokens(40)[:60]
    dec = Decoder(model, 16, use_cache=True)
    states = ev.key_state(np.array(seq))
    dec.feed(seq[:16])
    for i in range(16, len(seq)):
        got = dec.feed([seq[i]])
        n = dec.cache.length
        # the window is the last n events, but keys pressed before it stay down in its state
        torch.testing.assert_close(
            got, full_forward(model, seq[i + 1 - n : i + 1], states[i + 1 - n : i + 1]), atol=1e-5, rtol=1e-5
        )


def test_sampled_streams_never_release_a_key_that_is_up(model):
    out = sample_continuation(model, np.array(tokens(5)), 10_000, SamplingConfig(seed=1, top_p=1.0), 64, 300)
    full = np.concatenate([tokens(5), out])
    down = ev.key_state(full)
    for i in range(len(tokens(5)), len(full)):
        t = full[i]
        if ev.NOTE_OFF <= t < ev.TIME_SHIFT:
            assert down[i - 1, t - ev.NOTE_OFF]


def test_windowed_nll_reads_the_whole_sequences_state(model):
    seq = torch.tensor([ev.BOS] + tokens(40)[:80])
    total, n = sequence_nll(model, seq, context=32, stride=16)
    # by hand: each token scored once, in the first window that gives it >= 16 tokens of history
    states = torch.from_numpy(ev.key_state(seq.numpy())).float()
    want, count, start, scored = 0.0, 0, 0, 1
    while scored < len(seq):
        w = seq[start : start + 32]
        with torch.no_grad():
            lp = model(w[None, :-1], state=states[start : start + len(w) - 1][None])[0].log_softmax(-1)
        first = scored - start - 1
        want -= float(lp[first:].gather(1, w[1:][first:, None]).sum())
        count += len(w) - 1 - first
        scored, start = start + len(w), start + 16
    assert n == count == len(seq) - 1
    assert total == pytest.approx(want, rel=1e-5)
