"""Unit-test settings: one torch thread, since these tests share two cores with everything else."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TickingClock:
    """time.time for w2m2w.train.loop that moves one second each time the loop reads it: the loop reads it once
    per step (the time budget's check) and twice per validation, so a time budget stops at a step count known by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture()
def ticking_clock(monkeypatch) -> TickingClock:
    import w2m2w.train.loop as loop

    clock = TickingClock()
    monkeypatch.setattr(loop, "time", clock)
    return clock
