"""Music Transformer: skewed relative attention against a plain reference, cached decoding, NLL."""

from __future__ import annotations

import math

import pytest
import torch

from w2m2w.models.music_transformer import (
    MusicTransformer,
    MusicTransformerConfig,
    relative_embeddings,
    relative_logits,
    sequence_nll,
)


def reference_relative_logits(q: torch.Tensor, table: torch.Tensor, n_keys: int) -> torch.Tensor:
    """S_rel the slow way: build E[j - i] for every (query, key) pair, an (m, k, Dh) tensor per head."""
    b, h, m, dh = q.shape
    r = table.shape[1]
    qpos = torch.arange(n_keys - m, n_keys)[:, None]
    kpos = torch.arange(n_keys)[None, :]
    dist = (kpos - qpos).clamp(max=0)  # future keys are masked anyway; any distance will do
    idx = (r - 1 + dist).clamp(min=0)  # distances beyond the table share its last embedding
    pairwise = table[:, idx]  # (H, m, k, Dh): the L x L x D tensor skewing avoids
    return torch.einsum("bhmd,hmkd->bhmk", q, pairwise)


@pytest.mark.parametrize("n_keys", [1, 2, 7, 16, 33, 64])
@pytest.mark.parametrize("table_len", [16, 64])
def test_skewed_relative_logits_match_reference(n_keys, table_len):
    g = torch.Generator().manual_seed(n_keys * 100 + table_len)
    table = torch.randn(3, table_len, 8, generator=g)
    for m in sorted({1, 2, n_keys // 2, n_keys} - {0}):  # full sequences and the last m queries of a cached run
        q = torch.randn(2, 3, m, 8, generator=g)
        got = relative_logits(q, table, n_keys)
        want = reference_relative_logits(q, table, n_keys)
        causal = torch.ones(m, n_keys, dtype=torch.bool).tril(n_keys - m)
        assert got.shape == want.shape == (2, 3, m, n_keys)
        torch.testing.assert_close(got[..., causal], want[..., causal], atol=1e-5, rtol=1e-5)


def test_relative_embeddings_memory_is_linear():
    table = torch.randn(2, 16, 4)
    assert relative_embeddings(table, 10).shape == (2, 10, 4)
    far = relative_embeddings(table, 40)
    assert far.shape == (2, 40, 4) and torch.equal(far[:, :25], table[:, :1].expand(-1, 25, -1))


def _model(position: str, max_len: int = 48) -> MusicTransformer:
    torch.manual_seed(0)
    return MusicTransformer(
        MusicTransformerConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=max_len, position=position)
    ).eval()


@pytest.mark.parametrize("position", ["relative", "learned", "sinusoidal"])
def test_cached_decoding_matches_full_forward_at_every_step(position):
    model = _model(position)
    tokens = torch.randint(3, model.cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens).log_softmax(-1)
        cache = model.new_cache(2, 48)
        steps = [model(tokens[:, :9], cache)]  # a primer read at once, then one event at a time
        for t in range(9, 40):
            steps.append(model(tokens[:, t : t + 1], cache))
        cached = torch.cat(steps, 1).log_softmax(-1)
        assert cache.length == 40
        # and a chunk of several events after the cache
        cache2 = model.new_cache(2, 48)
        model(tokens[:, :20], cache2)
        chunk = model(tokens[:, 20:], cache2).log_softmax(-1)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(chunk, full[:, 20:], atol=1e-4, rtol=1e-4)


def test_relative_model_reads_past_its_training_length():
    model = _model("relative", max_len=16)
    tokens = torch.randint(3, model.cfg.vocab_size, (1, 40))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(1, 40)
        inc = torch.cat([model(tokens[:, t : t + 1], cache) for t in range(40)], 1)
    torch.testing.assert_close(inc, full, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="learned positions"):
        _model("learned", max_len=16)(tokens)


def test_causal():
    model = _model("relative")
    a = torch.randint(3, 300, (1, 30))
    b = a.clone()
    b[0, 20:] = 7
    with torch.no_grad():
        torch.testing.assert_close(model(a)[:, :20], model(b)[:, :20])


def test_sequence_nll_scores_each_token_once():
    model = _model("relative", max_len=16)
    tokens = torch.randint(3, model.cfg.vocab_size, (50,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = -model(tokens[None, :-1]).log_softmax(-1)[0].gather(1, tokens[1:, None]).sum().item()
    total, n = sequence_nll(model, tokens, context=64)
    assert n == 49 and total == pytest.approx(whole, rel=1e-5)
    # an untrained model: small random logits (the init's std of 0.02 keeps them around 0.1), so
    # its next-event distribution is nearly uniform over the V = 391 events and the mean NLL per
    # event is about ln(391) = 5.969 nats, plus about half the logits' variance (0.01)
    assert model.cfg.vocab_size == 391
    assert whole / 49 == pytest.approx(5.969 + 0.01, abs=0.03)
    total, n = sequence_nll(model, tokens, context=16, stride=5)
    # windows of 16 start every 5 tokens: token i is scored in the first window that holds it,
    # from position 0 for i <= 15, else from 5 * ceil((i - 15) / 5): 11 to 15 tokens of history
    want = 0.0
    with torch.no_grad():
        for i in range(1, 50):
            s = 0 if i <= 15 else 5 * math.ceil((i - 15) / 5)
            want -= model(tokens[None, s:i])[0, -1].log_softmax(-1)[tokens[i]].item()
    assert n == 49 and total == pytest.approx(want, rel=1e-5)
    nll, count = model.loss(torch.cat([tokens[None, :10], torch.zeros(1, 5, dtype=torch.long)], 1))
    assert int(count) == 9, "PAD targets are not counted"


def test_bad_config():
    with pytest.raises(ValueError, match="position"):
        MusicTransformer(MusicTransformerConfig(position="rotary"))
    with pytest.raises(ValueError, match="multiple"):
        MusicTransformer(MusicTransformerConfig(d_model=30, n_heads=4))
