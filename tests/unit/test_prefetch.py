"""Batches drawn ahead in worker processes are the batches the main process would draw."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from tests.unit._synth import make_maps
from tests.unit.test_train import _cfg
from w2m2w.train.prefetch import Prefetcher
from w2m2w.train.transcriber import train_transcriber
from w2m2w.transcription import load_transcriber


class _Rows:
    """A sampler whose row is the first three numbers of its own generator."""

    def draw(self, rngs: list[np.random.Generator]) -> np.ndarray:
        return np.stack([r.random(3) for r in rngs])


def _key_at(pos: int) -> tuple[int, int, int]:
    step, j = divmod(pos, 2)  # 2 micro-batches of rows 4..5 and 6..7 per step, from step 10
    return 10 + step, 4 + 2 * j, 6 + 2 * j


def test_workers_draw_the_rows_of_each_key_in_order():
    with Prefetcher(_Rows(), seed=7, workers=2, key_at=_key_at, ahead=3) as p:
        got = [p.get(pos) for pos in range(9)]
    for pos, batch in enumerate(got):
        step, lo, hi = _key_at(pos)
        # the reference: the generators the loop's rows are defined by, (seed, step, row)
        want = np.stack([np.random.default_rng((7, step, i)).random(3) for i in range(lo, hi)])
        np.testing.assert_array_equal(batch, want)


def test_without_workers_the_batch_is_drawn_in_place():
    p = Prefetcher(_Rows(), seed=7, workers=0, key_at=_key_at)
    np.testing.assert_array_equal(p.get(0), np.stack([np.random.default_rng((7, 10, i)).random(3) for i in (4, 5)]))
    assert p.pool is None


def test_a_run_with_data_workers_trains_exactly_as_one_without(tmp_path):
    make_maps(tmp_path / "maps", ["a_AkPnBcht", "d_AkPnStgb", "b_SptkBGCl"], seconds=2.0)
    weights = []
    for workers in (0, 2):
        cfg = replace(
            _cfg(tmp_path, 3), out_dir=str(tmp_path / f"run{workers}"), data_workers=workers, validate_every=10
        )
        train_transcriber(cfg)
        weights.append(load_transcriber(tmp_path / f"run{workers}" / "last.safetensors").state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
