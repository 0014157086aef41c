"""Batches drawn ahead of the training step in worker processes.

On a GPU the network's step takes milliseconds while drawing a transcriber segment (cutting it,
a room's convolution, the effects chain) takes about 9 ms on one core, 0.3 s for a batch of 32,
so without workers the accelerator waits on one CPU core. The loop's data are a pure function of
(seed, step, rows) (row_rngs), so any batch can be drawn early and anywhere: the workers
draw exactly the batches the main process would, in the same order, and a run with workers
trains on the same stream as one without (tests/unit/test_prefetch.py holds them to it).

Workers are forked, so they share the sampler's in-memory audio with the main process rather
than pickling it; they run numpy and scipy only, never torch, so a CUDA context in the parent
does them no harm.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

Key = tuple[int, int, int]  # (step, first row, last row + 1)

_SAMPLER: Any = None  # the sampler the forked workers inherit


def row_rngs(seed: int, step: int, rows: range) -> list[np.random.Generator]:
    """One generator per batch row, a function of (seed, step, row) only: any world size sees the same rows."""
    return [np.random.default_rng((seed, step, i)) for i in rows]


def _draw_with(sampler: Any, seed: int, key: Key) -> Any:
    step, lo, hi = key
    return sampler.draw(row_rngs(seed, step, range(lo, hi)))


def _draw(seed: int, key: Key) -> Any:
    return _draw_with(_SAMPLER, seed, key)


def _quiet_worker() -> None:
    # the workers draw with numpy/scipy; one BLAS thread each, or 16 workers start 16 x 16 threads
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


class Prefetcher:
    """get(pos) returns sampler.draw of the rows of key_at(pos), with the `ahead` next positions drawn in `workers` processes.

    key_at: the stream of batches in the order the loop asks for them, as a function from a
    position to its (step, first row, last row + 1), so the stream need not be built in advance.
    With workers=0 every batch is drawn in place, when asked for.
    """

    def __init__(self, sampler: Any, seed: int, workers: int, key_at: Callable[[int], Key], ahead: int | None = None):
        self.sampler, self.seed, self.key_at = sampler, seed, key_at
        self.workers = workers
        self.ahead = ahead if ahead is not None else 2 * workers
        self.pending: dict[Key, Future] = {}
        self.next_pos = 0  # position of the next key to submit
        self.pool: ProcessPoolExecutor | None = None
        if workers > 0:
            global _SAMPLER
            _SAMPLER = sampler
            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=_quiet_worker
            )

    def get(self, pos: int) -> Any:
        """The batch at position `pos` of the stream (positions asked for in increasing order)."""
        key = self.key_at(pos)
        if self.pool is None:
            return _draw_with(self.sampler, self.seed, key)
        self.next_pos = max(self.next_pos, pos)
        while self.next_pos <= pos + self.ahead:
            k = self.key_at(self.next_pos)
            if k not in self.pending:
                self.pending[k] = self.pool.submit(_draw, self.seed, k)
            self.next_pos += 1
        future = self.pending.pop(key, None)
        return future.result() if future is not None else _draw_with(self.sampler, self.seed, key)

    def close(self) -> None:
        if self.pool is not None:
            for f in self.pending.values():
                f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
            self.pending.clear()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
