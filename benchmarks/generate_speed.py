"""Music Transformer sampling speed, events per second, with and without the key/value cache.

    python benchmarks/generate_speed.py [--weights weights/music_transformer.safetensors] [--threads 2]
                                        [--contexts 512 1024 2048] [--position relative]

For each context C the decoder first holds C - n events, then samples n more
one at a time, so every timed event reads about C events of history. With the
cache an event costs one step through each layer against the stored keys and
values; without it, a full forward pass over the last C events. Sampling
(top-p 0.95) is inside the timed loop for both. Uses the shipped weights when
present, else the default model config with random weights (the speed is the
same; the table says which). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

import torch  # noqa: E402

from w2m2w import events as ev  # noqa: E402
from w2m2w.generation import Decoder, SamplingConfig, load_music_transformer, sample_next  # noqa: E402
from w2m2w.models.music_transformer import MusicTransformer, MusicTransformerConfig  # noqa: E402


def events_per_second(model: MusicTransformer, context: int, n: int, use_cache: bool, seed: int = 0) -> float:
    """Events per second sampling `n` events after context - n events of history."""
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(ev.N_SPECIAL, ev.VOCAB_SIZE, (context - n,), generator=g).tolist()
    dec = Decoder(model, context, use_cache=use_cache)
    logits = dec.feed(history)  # not timed: reading the primer
    sampling = SamplingConfig(top_p=0.95, seed=seed)
    t0 = time.perf_counter()
    for _ in range(n):
        tok = sample_next(logits, sampling, g)
        logits = dec.feed([tok])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(ROOT / "weights" / "music_transformer.safetensors"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--contexts", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument(
        "--position",
        default=None,
        help="with random weights: relative | learned | sinusoidal (default: the default config)",
    )
    ap.add_argument("--cached-events", type=int, default=128)
    ap.add_argument("--uncached-events", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights = Path(args.weights)
    if weights.is_file() and args.position is None:
        model = load_music_transformer(weights)
        source = f"weights {weights}"
    else:
        cfg = MusicTransformerConfig(**({"position": args.position} if args.position else {}))
        if cfg.position == "learned":
            cfg.max_len = max(args.contexts)
        torch.manual_seed(0)
        model = MusicTransformer(cfg).eval()
        source = f"random weights ({'no file at ' + str(weights) if not weights.is_file() else 'position=' + cfg.position}), default config"
    c = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"Music Transformer sampling speed: {c.n_layers} layers x {c.d_model}, {c.n_heads} heads, d_ff {c.d_ff}, position={c.position}, "
        f"trained context {c.max_len}, {n_params / 1e6:.2f} M parameters; {source}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads\n"
    )
    print("| context (events) | with cache (events/s) | without cache (events/s) | speed-up |")
    print("|---:|---:|---:|---:|")
    for ctx in args.contexts:
        events_per_second(model, min(ctx, 64), 8, True)  # warm-up: first calls pay for allocation and kernel setup
        fast = events_per_second(model, ctx, args.cached_events, True)
        slow = events_per_second(model, ctx, args.uncached_events, False)
        print(f"| {ctx} | {fast:.1f} | {slow:.2f} | {fast / slow:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
