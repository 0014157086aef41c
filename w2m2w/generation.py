"""Continue a performance with a Music Transformer: primer choice, sampling, cached decoding,
and the held-out likelihood that `python -m w2m2w.evaluate task=generation` reports."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from w2m2w import events as ev
from w2m2w.checkpoint import load_model
from w2m2w.midi import MidiError, load_midi_notes
from w2m2w.models.music_transformer import MODEL_NAME, MusicTransformer, MusicTransformerConfig, sequence_nll

# never sampled: a continuation ends when it reaches its length, not when the model says so
_BANNED = (ev.PAD, ev.BOS, ev.EOS)


@dataclass
class SamplingConfig:
    temperature: float = 1.0  # 0: always the most likely event
    top_k: int = 0  # keep the k most likely events; 0: all
    top_p: float = 1.0  # keep the smallest set whose probability reaches p (nucleus); 1: all. Truncating the tail drops
    # the rarer long time shifts and makes the music denser (weights/README.md measures it), so the default keeps all
    seed: int = 0


@dataclass
class GenerationConfig:
    primer_seconds: float = 20.0  # the primer is the last this-many seconds of the input...
    primer_events: int | None = None  # ...or, when set, its last this-many events
    seconds: float = 20.0  # length of the continuation, in seconds of music
    context: int = 0  # events the model reads; 0: the model's training context
    include_primer: bool = True  # output primer + continuation, or the continuation alone
    max_events: int = 0  # stop after this many sampled events whatever the time; 0: 300 per second
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass
class Primer:
    tokens: np.ndarray  # (n,) event ids, with a leading BOS when the primer is the whole piece
    start_s: float  # where in the input the primer starts (seconds)
    truncated: bool  # cut from the front to fit the context


@dataclass
class Continuation:
    notes: np.ndarray  # (n, 4) the output note list
    stats: dict[str, Any]


def load_music_transformer(path: str | os.PathLike, device: str = "cpu") -> MusicTransformer:
    """A MusicTransformer from a weights file (WeightsError names the file when it is unusable)."""
    return load_model(path, MODEL_NAME, lambda config: MusicTransformer(MusicTransformerConfig(**config)), device)


def read_midi_notes(path: str | os.PathLike, allow_empty: bool = False) -> np.ndarray:
    """Notes of a MIDI file, pedal applied; MidiError naming the file when it does not parse
    or has no notes to continue (drum tracks are not piano notes)."""
    notes = load_midi_notes(path)
    if len(notes) or allow_empty:
        return notes
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    if any(inst.is_drum and inst.notes for inst in pm.instruments):
        raise MidiError(f"{path}: holds only drum tracks, no piano notes to continue")
    raise MidiError(f"{path}: holds no notes to continue")


def select_primer(notes: np.ndarray, seconds: float | None, n_events: int | None, max_tokens: int) -> Primer:
    """The end of `notes` as primer tokens: the notes starting in the last `seconds` (or whose
    events number at most `n_events`), further cut from the front to fit `max_tokens`.

    The primer starts at a note onset and ends with the last NOTE_OFF; no note is cut in half.
    """
    notes = ev.canonical_notes(notes)
    if (
        len(notes) == 0
        or max_tokens <= 0
        or (n_events is not None and n_events <= 0)
        or (n_events is None and (seconds or 0) <= 0)
    ):
        return Primer(np.zeros(0, dtype=np.int64), 0.0, False)
    onsets = np.unique(notes[:, 0])
    first = 0
    if n_events is None:
        end = float(notes[:, 1].max())
        first = int(np.searchsorted(onsets, end - seconds - 1e-9))
        first = min(first, len(onsets) - 1)
    limit = min(n_events, max_tokens) if n_events is not None else max_tokens

    def count(i: int) -> int:
        return len(ev.notes_to_tokens(notes, start=onsets[i]))

    truncated = False
    if count(first) > limit:
        truncated = n_events is None or limit < n_events
        lo, hi = (
            min(first + 1, len(onsets) - 1),
            len(onsets) - 1,
        )  # dropping notes from the front (nearly) never adds events
        while lo < hi:
            mid = (lo + hi) // 2
            if count(mid) <= limit:
                hi = mid
            else:
                lo = mid + 1
        first = lo
        while first < len(onsets) - 1 and count(first) > limit:
            first += 1
    t0 = float(onsets[first])
    tokens = ev.notes_to_tokens(notes, start=t0)
    if len(tokens) > limit:  # one chord alone is longer than the context
        tokens, truncated = tokens[len(tokens) - limit :], True
    if first == 0 and not truncated and len(tokens) < max_tokens:
        tokens = np.concatenate([[ev.BOS], tokens])  # the whole piece: start it as training pieces start
    return Primer(tokens.astype(np.int64), t0, truncated)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """(..., V) logits -> logits of the sampling distribution (excluded events at -inf).

    temperature 0 keeps only the most likely event.
    """
    logits = logits.float().clone()
    if temperature <= 0:
        best = logits.argmax(-1, keepdim=True)
        return torch.full_like(logits, float("-inf")).scatter(-1, best, 0.0)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop an event when the more likely ones already reach p; the most likely always stays
        drop = (probs.cumsum(-1) - probs) >= top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator) -> int:
    """One event id from (V,) logits; PAD, BOS and EOS are never drawn."""
    logits = logits.float().clone()
    logits[list(_BANNED)] = float("-inf")
    probs = filter_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p).softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class Decoder:
    """Next-event logits for a growing sequence, with or without the key/value cache.

    With the cache each event reads the stored keys/values (O(context) work);
    when the cache is full, the last 3/4 of the context is re-read once, which
    keeps the average cost per event proportional to the context. Without the
    cache every event re-reads its last `context` events (the reference).
    """

    def __init__(self, model: MusicTransformer, context: int, use_cache: bool = True) -> None:
        self.model, self.context, self.use_cache = model, context, use_cache
        self.keep = max(context - context // 4, 1)
        self.seq: list[int] = []
        self.cache = None
        self.device = next(model.parameters()).device
        # a key_state model reads which keys are down after each event, from the whole history:
        # a key pressed before the window slid past it is still down, and still the model's to release
        self.states: list[np.ndarray] | None = [] if getattr(model.cfg, "key_state", False) else None

    def _run(self, tokens: list[int]) -> torch.Tensor:
        x = torch.tensor([tokens], dtype=torch.long, device=self.device)
        state = None
        if self.states is not None:
            state = torch.from_numpy(np.stack(self.states[len(self.states) - len(tokens) :])[None]).to(
                self.device, torch.float32
            )
        return self.model(x, self.cache, state=state)[0, -1]

    def _track(self, tokens: list[int]) -> None:
        down = self.states[-1].copy() if self.states else np.zeros(ev.N_PITCHES, bool)
        for t in tokens:
            if ev.NOTE_ON <= t < ev.NOTE_OFF:
                down[t - ev.NOTE_ON] = True
            elif ev.NOTE_OFF <= t < ev.TIME_SHIFT:
                down[t - ev.NOTE_OFF] = False
            elif t == ev.EOS:
                down[:] = False
            self.states.append(down.copy())

    @torch.no_grad()
    def feed(self, tokens: Sequence[int]) -> torch.Tensor:
        """Append tokens; return the (V,) logits of the event after them."""
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("feed needs at least one token")
        self.seq += tokens
        if self.states is not None:
            self._track(tokens)
        if not self.use_cache:
            return self._run(self.seq[-self.context :])
        if self.cache is None:
            self.cache = self.model.new_cache(1, self.context)
            return self._run(self.seq[-self.context :])
        if self.cache.length + len(tokens) > self.context:
            self.cache = self.model.new_cache(1, self.context)
            return self._run(self.seq[-max(self.keep, len(tokens)) :][-self.context :])
        return self._run(tokens)


@torch.no_grad()
def sample_continuation(
    model: MusicTransformer,
    primer: np.ndarray,
    steps: int,
    sampling: SamplingConfig,
    context: int,
    max_events: int,
    use_cache: bool = True,
) -> np.ndarray:
    """Sample events after `primer` (token ids; may be empty) until they add up to `steps`
    10 ms steps of time or `max_events` events. Returns the continuation's ids."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(int(sampling.seed))
    dec = Decoder(model, context, use_cache)
    logits = dec.feed(primer.tolist() if len(primer) else [ev.BOS])
    out: list[int] = []
    now = 0
    while now < steps and len(out) < max_events:
        tok = sample_next(logits, sampling, gen)
        out.append(tok)
        if ev.TIME_SHIFT <= tok < ev.VELOCITY:
            now += tok - ev.TIME_SHIFT + 1
        if now < steps and len(out) < max_events:
            logits = dec.feed([tok])
    model.train(was)
    return np.asarray(out, dtype=np.int64)


def model_context(model: MusicTransformer, context: int = 0) -> int:
    """The context to decode with: `context`, else the training length; never past learned positions."""
    ctx = context or model.cfg.max_len
    return min(ctx, model.max_context) if model.max_context else ctx


def continue_notes(model: MusicTransformer, notes: np.ndarray, cfg: GenerationConfig) -> Continuation:
    """Continue the note list `notes` (n, 4) by cfg.seconds of music.

    The output starts where the primer starts (time 0) and holds primer and
    continuation, or with include_primer=False the continuation alone.
    """
    context = model_context(model, cfg.context)
    primer = select_primer(notes, cfg.primer_seconds, cfg.primer_events, context)
    steps = int(round(cfg.seconds * ev.STEPS_PER_SECOND))
    max_events = cfg.max_events or max(int(300 * cfg.seconds), 1)
    t0 = time.perf_counter()
    cont = sample_continuation(model, primer.tokens, steps, cfg.sampling, context, max_events)
    dt = time.perf_counter() - t0
    primer_end = ev.duration_steps(primer.tokens) / ev.STEPS_PER_SECOND
    primer_notes = ev.tokens_to_notes(primer.tokens)
    everything = ev.tokens_to_notes(np.concatenate([primer.tokens, cont]))
    new = everything[everything[:, 0] >= primer_end - 1e-9]
    if cfg.include_primer:
        out = everything
    else:
        out = new.copy()
        out[:, :2] -= primer_end
    generated_s = ev.duration_steps(cont) / ev.STEPS_PER_SECOND
    primer_events = int((primer.tokens != ev.BOS).sum())
    stats = {
        "primer_start_in_input_s": round(primer.start_s, 3),
        "primer_end_s": round(primer_end, 3) if cfg.include_primer else 0.0,
        "primer_seconds": round(primer_end, 3),
        "primer_events": primer_events,
        "primer_notes": int(len(primer_notes)),
        "primer_truncated": bool(primer.truncated),
        "output": "primer+continuation" if cfg.include_primer else "continuation",
        "continuation_events": int(len(cont)),
        "continuation_notes": int(len(new)),
        "continuation_seconds": round(generated_s, 3),
        "output_notes": int(len(out)),
        "context": context,
        "seed": int(cfg.sampling.seed),
        "sampling": {
            "temperature": cfg.sampling.temperature,
            "top_k": cfg.sampling.top_k,
            "top_p": cfg.sampling.top_p,
            "seed": int(cfg.sampling.seed),
        },
        "events_per_second": round(len(cont) / dt, 1) if dt > 0 else None,
    }
    if len(cont) >= max_events and generated_s < cfg.seconds:
        stats["warning"] = f"stopped at max_events={max_events} after {generated_s:.2f} s of music"
    return Continuation(out, stats)


def piece_tokens(notes: np.ndarray) -> np.ndarray:
    """A whole piece as the model reads it: BOS, its events, EOS."""
    return np.concatenate([[ev.BOS], ev.notes_to_tokens(notes), [ev.EOS]]).astype(np.int64)


def notes_nll(model: MusicTransformer, notes: np.ndarray, context: int = 0) -> tuple[float, int]:
    """Summed NLL (nats) of a piece's events (EOS included, BOS given) and their number."""
    toks = torch.from_numpy(piece_tokens(notes)).to(next(model.parameters()).device)
    return sequence_nll(model, toks, model_context(model, context))
