"""Generation: sampling filters, seeds, primer choice, cached vs uncached sampling, continuation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2m2w import events as ev
from w2m2w.checkpoint import save_weights
from w2m2w.evaluate.generation import evaluate_generation
from w2m2w.generation import (
    Decoder,
    GenerationConfig,
    SamplingConfig,
    continue_notes,
    filter_logits,
    load_music_transformer,
    read_midi_notes,
    sample_continuation,
    sample_next,
    select_primer,
)
from w2m2w.midi import MidiError, write_midi
from w2m2w.models.music_transformer import MusicTransformer, MusicTransformerConfig


@pytest.fixture(scope="module")
def model() -> MusicTransformer:
    torch.manual_seed(0)
    return MusicTransformer(MusicTransformerConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64)).eval()


def scale(n: int = 40, step: float = 0.25) -> np.ndarray:
    return np.array([[i * step, i * step + 0.2, 60 + i % 12, 70] for i in range(n)], dtype=np.float64)


def test_filter_logits():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert (
        torch.isinf(filter_logits(logits, top_k=2)[2:]).all()
        and torch.isfinite(filter_logits(logits, top_k=2)[:2]).all()
    )
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [True, True, False, False], "the smallest set reaching p"
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).tolist() == [True, False, False, False]
    assert torch.isfinite(filter_logits(logits, temperature=0)).tolist() == [True, False, False, False]
    hot = filter_logits(logits, temperature=2.0).softmax(-1)
    cold = filter_logits(logits, temperature=0.5).softmax(-1)
    assert hot[0] < 0.5 < cold[0], "temperature flattens or sharpens"


def test_sample_next_never_draws_specials_and_follows_the_distribution():
    logits = torch.zeros(ev.VOCAB_SIZE)
    logits[[ev.PAD, ev.BOS, ev.EOS]] = 50.0
    logits[ev.NOTE_ON + 60] = 3.0
    g = torch.Generator().manual_seed(0)
    draws = [sample_next(logits, SamplingConfig(), g) for _ in range(300)]
    assert not set(draws) & {ev.PAD, ev.BOS, ev.EOS}
    assert 0.02 < np.mean([d == ev.NOTE_ON + 60 for d in draws]) < 0.2  # e^3 / (e^3 + 388)
    top1 = [sample_next(logits, SamplingConfig(top_k=1), g) for _ in range(20)]
    assert set(top1) == {ev.NOTE_ON + 60}


def test_seed_reproducibility(model):
    primer = ev.notes_to_tokens(scale(10))
    s = SamplingConfig(temperature=1.0, top_k=50, top_p=0.95, seed=7)
    a = sample_continuation(model, primer, 300, s, 64, 500)
    b = sample_continuation(model, primer, 300, s, 64, 500)
    c = sample_continuation(model, primer, 300, SamplingConfig(temperature=1.0, top_k=50, top_p=0.95, seed=8), 64, 500)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert ev.duration_steps(a) >= 300 and ev.duration_steps(a[:-1]) < 300, "stops once the target length is reached"


def test_cached_and_uncached_decoders_agree(model):
    tokens = ev.notes_to_tokens(scale(20))[:60]
    fast, slow = Decoder(model, 64, use_cache=True), Decoder(model, 64, use_cache=False)
    torch.testing.assert_close(fast.feed(tokens[:10]), slow.feed(tokens[:10]), atol=1e-4, rtol=1e-4)
    for t in tokens[10:]:
        torch.testing.assert_close(fast.feed([t]).softmax(-1), slow.feed([t]).softmax(-1), atol=1e-5, rtol=1e-4)
    s = SamplingConfig(seed=3)
    a = sample_continuation(model, tokens[:20], 10_000, s, 64, 40, use_cache=True)
    b = sample_continuation(model, tokens[:20], 10_000, s, 64, 40, use_cache=False)
    assert len(a) == 40 and np.array_equal(a, b)


def test_decoder_slides_past_the_context(model):
    dec = Decoder(model, 16, use_cache=True)
    dec.feed(list(range(3, 19)))  # fills the cache
    logits = dec.feed([20])  # re-reads the last 3/4 of the context, then goes on
    assert dec.cache.length == dec.keep and logits.shape == (ev.VOCAB_SIZE,)
    for t in range(30):
        dec.feed([21 + t])
    assert dec.cache.length <= 16


def test_decoder_after_a_slide_matches_a_fresh_forward_over_the_kept_window(model):
    # context 16: the cache fills at 16 events; the next event slides it to the last 12 (3/4 of
    # 16), which then grows to 16 again. At every step the logits must be those of a fresh
    # forward pass over exactly that window, the newest event included.
    def fresh(window: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(torch.tensor([window]))[0, -1]

    dec = Decoder(model, 16, use_cache=True)
    seq = list(range(3, 19))
    dec.feed(seq)
    assert dec.keep == 12
    lengths = []
    for t in range(12):  # three slides: at events 17, 22 and 27
        seq.append(40 + t)
        got = dec.feed([seq[-1]])
        lengths.append(dec.cache.length)
        torch.testing.assert_close(got, fresh(seq[-dec.cache.length :]), atol=1e-5, rtol=1e-5)
    assert lengths == [12, 13, 14, 15, 16, 12, 13, 14, 15, 16, 12, 13]
    seq += [
        60,
        61,
        62,
        63,
    ]  # several events at once that overflow the cache (13 + 4 > 16): the window is still the last 12
    got = dec.feed(seq[-4:])
    assert dec.cache.length == 12
    torch.testing.assert_close(got, fresh(seq[-12:]), atol=1e-5, rtol=1e-5)


def test_select_primer_by_seconds_events_and_context():
    notes = scale(40)  # 10 s of notes, a note every 0.25 s
    p = select_primer(notes, seconds=2.0, n_events=None, max_tokens=1000)
    back = ev.tokens_to_notes(p.tokens)
    assert p.start_s == pytest.approx(notes[-1, 1] - 2.0, abs=0.25) and not p.truncated
    assert len(back) == 8 and back[0, 0] == 0.0, "the primer starts at its first onset"
    p = select_primer(notes, seconds=None, n_events=20, max_tokens=1000)
    assert 15 <= len(p.tokens) <= 20 and not p.truncated
    whole = select_primer(notes, seconds=100.0, n_events=None, max_tokens=1000)
    assert whole.tokens[0] == ev.BOS and whole.start_s == 0.0, "the whole piece starts as training pieces do"
    cut = select_primer(notes, seconds=100.0, n_events=None, max_tokens=30)
    assert cut.truncated and len(cut.tokens) <= 30 and ev.BOS not in cut.tokens
    np.testing.assert_allclose(ev.tokens_to_notes(cut.tokens)[-1, 2], notes[-1, 2]), "cut from the front, the end stays"
    assert len(select_primer(np.zeros((0, 4)), 10.0, None, 100).tokens) == 0
    chord = np.array([[0, 1, p, 80] for p in range(40, 80)], dtype=np.float64)
    assert len(select_primer(chord, 5.0, None, 16).tokens) == 16


def test_continue_notes_with_and_without_primer(model):
    notes = scale(30)
    cfg = GenerationConfig(primer_seconds=3.0, seconds=2.0, sampling=SamplingConfig(seed=1))
    res = continue_notes(model, notes, cfg)
    st = res.stats
    assert st["primer_notes"] == 12 and st["primer_events"] > 0 and st["output"] == "primer+continuation"
    assert (
        st["continuation_seconds"] >= 2.0 and st["seed"] == 1 and st["sampling"]["top_p"] == 1.0
    )  # the one default (YAML, model card)
    primer_part = res.notes[res.notes[:, 0] < st["primer_end_s"]]
    np.testing.assert_allclose(
        primer_part[:, :3], ev.canonical_notes(notes[-12:] - [notes[-12, 0], notes[-12, 0], 0, 0])[:, :3]
    )
    assert st["output_notes"] == len(res.notes) == st["primer_notes"] + st["continuation_notes"]
    only = continue_notes(
        model,
        notes,
        GenerationConfig(primer_seconds=3.0, seconds=2.0, include_primer=False, sampling=SamplingConfig(seed=1)),
    )
    assert only.stats["output"] == "continuation" and len(only.notes) == st["continuation_notes"]
    if len(only.notes):
        np.testing.assert_allclose(only.notes[:, 2:], res.notes[st["primer_notes"] :, 2:])
    empty = continue_notes(model, np.zeros((0, 4)), cfg)
    assert empty.stats["primer_events"] == 0 and empty.stats["primer_end_s"] == 0.0


def test_read_midi_notes_names_bad_files(tmp_path):
    import pretty_midi

    drums = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=0, end=0.1))
    drums.instruments.append(kit)
    drums.write(str(tmp_path / "drums.mid"))
    write_midi(tmp_path / "empty.mid", np.zeros((0, 4)))
    (tmp_path / "junk.mid").write_bytes(b"MThd\x00\x00\x00\x06junk")
    for name, reason in [("drums.mid", "only drum"), ("empty.mid", "no notes"), ("junk.mid", "not a readable MIDI")]:
        with pytest.raises(MidiError, match=reason) as info:
            read_midi_notes(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    assert len(read_midi_notes(tmp_path / "empty.mid", allow_empty=True)) == 0


def test_evaluate_generation(tmp_path, model):
    from dataclasses import asdict

    w = tmp_path / "mt.safetensors"
    save_weights(w, "music_transformer", model.state_dict(), asdict(model.cfg))
    assert torch.equal(load_music_transformer(w).embed.weight, model.embed.weight)
    folder = tmp_path / "midi"
    (folder / "sub").mkdir(parents=True)
    write_midi(folder / "a.mid", scale(30))
    write_midi(folder / "sub" / "b.mid", scale(50, 0.1))
    (folder / "bad.mid").write_bytes(b"nope")
    rows, warnings = [], []
    summary = evaluate_generation(folder, w, emit=rows.append, warn=warnings.append)
    assert summary["files"] == 2 and [r["file"] for r in rows] == ["a.mid", "sub/b.mid"]
    assert summary["events"] == sum(r["events"] for r in rows)
    assert 4 < summary["nll_per_event"] < 8, "an untrained model is near log(391) = 5.97"
    assert warnings and "bad.mid" in warnings[0] and summary["failed"][0]["file"] == "bad.mid"
    with pytest.raises(ValueError, match="no MIDI files"):
        evaluate_generation(tmp_path / "midi" / "sub", w, include=["*.nothing"])
