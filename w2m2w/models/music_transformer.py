"""Music Transformer (Huang et al. 2019): a decoder-only transformer over performance events.

Self-attention adds relative-position logits S_rel[i, j] = q_i . E[j - i]
(one learned E per layer and head, distances -(R-1)..0) computed with the
paper's "skewing": Q E^T is (L, L) and shifted into place, so the memory for
positions is R x D rather than the L x L x D of building every pair. Set
`position` to "learned" or "sinusoidal" for absolute positions added to the
input instead, so the gain of relative attention can be measured.

Incremental decoding keeps, per layer, the keys and values of every earlier
step. A new event's relative logits need only its own query against the
stored relative-embedding table (one row, O(context)); the rows of earlier
queries are never needed again. Pre-layer-norm blocks; the output projection
is the token embedding's transpose (tied).

With `key_state`, the model is also told which keys are down after each
input event (events.key_state, computed from the tokens alone) through one
linear map added to the embedding, and a NOTE_OFF of a key that is up gets
no probability. Without it a model must find its own pressed keys by
attention; the shipped 1,200-step model does that badly: 40 % of the
NOTE_OFFs it samples release keys that are not down, so the notes they were
meant for ring on (weights/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from w2m2w.events import N_PITCHES, NOTE_OFF, PAD, VOCAB_SIZE, key_state
from w2m2w.settings import Range, setting

MODEL_NAME = "music_transformer"
POSITIONS = ("relative", "learned", "sinusoidal")


@dataclass
class MusicTransformerConfig:
    # 4 layers x 256, 4 heads, a 512-event context (10-20 s of piano): 3.8 M parameters,
    # sized for an hour on 2 CPU cores (the reasons are in conf/train/music_transformer.yaml)
    vocab_size: int = VOCAB_SIZE
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    # no dropout by default: an hour of training sees each event of the corpus at most once,
    # so there is nothing to overfit yet and dropout would only slow learning
    dropout: float = setting(0.0, range=Range(0, 1, hi_open=True))
    max_len: int = 512  # training context; relative distances beyond it share the last embedding
    position: str = setting("relative", choices=POSITIONS)  # relative | learned | sinusoidal
    key_state: bool = False  # also read which keys are down, and release only those (module docstring)


_MASKED = -1e4  # a logit no event is ever drawn at, finite so that a stray target cannot make the loss infinite


def state_of(tokens: torch.Tensor) -> torch.Tensor:
    """(B, T) event ids -> (B, T, 128) float: keys down after each event (events.key_state, row by row)."""
    rows = [key_state(r) for r in tokens.detach().cpu().numpy()]
    return torch.from_numpy(np.stack(rows) if rows else np.zeros((0, tokens.shape[1], N_PITCHES), bool)).to(
        tokens.device, torch.float32
    )


class KVCache:
    """Keys and values of the steps decoded so far, per layer: (B, H, capacity, Dh) buffers.

    Preallocated so appending a step copies only that step, not the whole history.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, d_head: int, capacity: int, device, dtype) -> None:
        self.k = [torch.zeros(batch, n_heads, capacity, d_head, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(batch, n_heads, capacity, d_head, device=device, dtype=dtype) for _ in range(n_layers)]
        self.length = 0
        self.capacity = capacity

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, H, m, Dh) new keys/values of `layer`; return all keys/values so far."""
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"cache holds {self.capacity} steps, asked for {end}")
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def relative_embeddings(table: torch.Tensor, n_keys: int) -> torch.Tensor:
    """(H, R, Dh) table for distances -(R-1)..0 -> (H, n_keys, Dh) for distances -(n_keys-1)..0.

    Distances further back than R-1 reuse the embedding of -(R-1) (clipped, as in Shaw et al.).
    """
    r = table.shape[1]
    if n_keys <= r:
        return table[:, r - n_keys :]
    far = table[:, :1].expand(-1, n_keys - r, -1)
    return torch.cat([far, table], dim=1)


def skew(qe: torch.Tensor) -> torch.Tensor:
    """(..., m, k) with qe[a, r] = q_a . E[r - (k-1)] -> (..., m, k) with out[a, j] = q_a . E[j - (k-m+a)].

    That is each query's logits by key, for queries at the last m of k
    positions; entries for keys after the query (j > k-m+a) are garbage and
    must be masked. Pad one column, reshape, drop a row: no gather, no L x L x D.
    """
    *lead, m, k = qe.shape
    x = F.pad(qe, (1, 0))  # (..., m, k+1)
    x = x.reshape(*lead, k + 1, m)[..., 1:, :]  # (..., k, m)
    return x.reshape(*lead, m, k)


def relative_logits(q: torch.Tensor, table: torch.Tensor, n_keys: int) -> torch.Tensor:
    """q (B, H, m, Dh) for the last m of n_keys positions -> S_rel (B, H, m, n_keys) via skewing."""
    e = relative_embeddings(table, n_keys)  # (H, k, Dh)
    qe = torch.matmul(q, e.transpose(-1, -2))  # (B, H, m, k)
    if q.shape[2] == 1:
        return qe  # a single newest query: the row is already aligned
    return skew(qe)


def sinusoidal(n: int, d: int, offset: int = 0) -> torch.Tensor:
    """(n, d) sinusoidal position encodings of positions offset..offset+n-1 (Vaswani et al.)."""
    pos = torch.arange(offset, offset + n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(pos * div)
    out[:, 1::2] = torch.cos(pos * div[: d // 2])
    return out


class Attention(nn.Module):
    def __init__(self, cfg: MusicTransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} is not a multiple of n_heads {cfg.n_heads}")
        self.h, self.dh = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        self.relative = cfg.position == "relative"
        if self.relative:
            self.rel = nn.Parameter(torch.randn(cfg.n_heads, cfg.max_len, self.dh) * self.dh**-0.5)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """x (B, m, D) -> (B, m, D), causal; with a cache, x follows the cached steps."""
        b, m, _ = x.shape
        q, k, v = self.qkv(x).view(b, m, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)  # each (B, H, m, Dh)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        n = k.shape[2]
        past = n - m
        drop = self.dropout if self.training else 0.0
        if not self.relative:
            # no position logits: torch's fused kernels (flash attention on CPU too)
            if m == 1:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
            elif past == 0:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
            else:
                causal = torch.ones(m, n, dtype=torch.bool, device=x.device).tril(past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, dropout_p=drop)
        else:
            # the fused kernels cannot take a gradient through a float mask, so attention is
            # written out: (q k^T + skew(q E^T)) / sqrt(Dh), causal, softmax, times v
            q = q * self.dh**-0.5
            scores = torch.matmul(q, k.transpose(-1, -2)) + relative_logits(q, self.rel, n)
            if m > 1:  # query a (position past+a) sees keys 0..past+a
                causal = torch.ones(m, n, dtype=torch.bool, device=x.device).tril(past)
                scores = scores.masked_fill(~causal, float("-inf"))
            attn = scores.softmax(-1)
            if drop:
                attn = F.dropout(attn, drop)
            y = torch.matmul(attn, v)
        return self.out(y.transpose(1, 2).reshape(b, m, self.h * self.dh))


class Block(nn.Module):
    def __init__(self, cfg: MusicTransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache, layer))
        return x + self.drop(self.ff(self.ln2(x)))


class MusicTransformer(nn.Module):
    """Decoder-only transformer: tokens (B, T) -> next-token logits (B, T, vocab)."""

    def __init__(self, cfg: MusicTransformerConfig) -> None:
        super().__init__()
        if cfg.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {cfg.position!r}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.position == "learned":
            self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        if cfg.key_state:
            self.state_in = nn.Linear(N_PITCHES, cfg.d_model, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def max_context(self) -> int | None:
        """Longest sequence the model can read at once (None: any, for relative and sinusoidal)."""
        return self.cfg.max_len if self.cfg.position == "learned" else None

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        p = self.embed.weight
        return KVCache(
            self.cfg.n_layers,
            batch,
            self.cfg.n_heads,
            self.cfg.d_model // self.cfg.n_heads,
            capacity,
            p.device,
            p.dtype,
        )

    def forward(
        self, tokens: torch.Tensor, cache: KVCache | None = None, state: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens (B, m) -> logits (B, m, vocab). With a cache, tokens continue the cached steps
        and the cache grows by m. state (B, m, 128): keys down after each token, for a key_state model
        (computed from `tokens` alone when not given, which is right when they start the sequence)."""
        m = tokens.shape[1]
        past = cache.length if cache is not None else 0
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model)
        if self.cfg.key_state:
            state = state_of(tokens) if state is None else state.to(x.dtype)
            x = x + self.state_in(state)
        if self.cfg.position == "learned":
            if past + m > self.cfg.max_len:
                raise ValueError(f"learned positions reach {self.cfg.max_len} events, asked for {past + m}")
            x = x + self.pos(torch.arange(past, past + m, device=tokens.device))
        elif self.cfg.position == "sinusoidal":
            x = x + sinusoidal(m, self.cfg.d_model, past).to(x)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += m
        # output projection tied to the embedding: fewer parameters, a better start on small data
        logits = F.linear(self.ln(x), self.embed.weight)
        if self.cfg.key_state:  # a key that is up cannot be released
            off = logits[..., NOTE_OFF : NOTE_OFF + N_PITCHES]
            logits = torch.cat(
                [logits[..., :NOTE_OFF], off.masked_fill(state < 0.5, _MASKED), logits[..., NOTE_OFF + N_PITCHES :]], -1
            )
        return logits

    def loss(self, tokens: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed NLL (nats) of tokens[:, 1:] given their prefixes, and the number of
        non-PAD targets. tokens (B, T). bf16 runs the network under bfloat16 autocast; the
        cross-entropy is taken in float32 whatever it ran in."""
        with torch.autocast(device_type=tokens.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = self(tokens[:, :-1])
        logits = logits.float()
        target = tokens[:, 1:]
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD, reduction="sum"
        )
        return nll, (target != PAD).sum()

    def training_step(self, tokens: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean NLL per event of a batch of windows (B, T) to minimise, and its sum and event count
        (nll, events) so a log can report the NLL per event over many steps."""
        nll, n = self.loss(tokens, bf16)
        return nll / n.clamp(min=1), {"nll": nll.detach(), "events": n}


@torch.no_grad()
def sequence_nll(
    model: MusicTransformer, tokens: torch.Tensor, context: int, stride: int | None = None
) -> tuple[float, int]:
    """Summed NLL (nats) of tokens[1:] of one sequence (T,) and how many were scored.

    Sequences longer than `context` are read in windows of `context` tokens
    that advance by `stride` (default context // 2); each token is scored
    once, in the first window where it has at least context - stride tokens
    before it (or all there are), so most tokens see a long history.
    """
    was = model.training
    model.eval()
    tokens = tokens.reshape(-1)
    n = len(tokens)
    # keys pressed before a window are still down in it: the state comes from the whole sequence
    state = state_of(tokens[None])[0] if model.cfg.key_state else None
    stride = stride or max(context // 2, 1)
    total, count, scored_to = 0.0, 0, 1  # tokens[1:scored_to] already scored
    start = 0
    while scored_to < n:
        window = tokens[start : start + context][None]
        st = None if state is None else state[start : start + window.shape[1] - 1][None]
        logp = F.log_softmax(model(window[:, :-1], state=st).float(), dim=-1)[0]  # predicts window[1:]
        target = window[0, 1:]
        first = scored_to - start - 1  # index into target of the first unscored token
        lp = logp[first:].gather(1, target[first:, None])[:, 0]
        keep = target[first:] != PAD
        total -= float(lp[keep].sum())
        count += int(keep.sum())
        scored_to = start + window.shape[1]
        start += stride
    model.train(was)
    return total, count
