"""The training loop's multi-process paths, run in this process as rank 0 of two with the other rank simulated: its
collectives (all_reduce, broadcast, broadcast_object_list, barrier) and DDP are stood in for by fakes that record
what they are given and answer as a peer would. tests/unit/test_train_distributed.py runs the real thing under
torchrun; this file reaches each branch of Run.sum/agree, _stepper, _micro_batch, export and finish by hand
(mutation testing's survivors of train/loop.py). Expected values are worked out here by hand."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from torch import nn

import w2m2w.train.loop as loop
from tests.unit.test_train_loop import Cfg, Clock, _data_task, _row, _rows, clock  # noqa: F401 (a fixture)
from w2m2w.checkpoint import load_weights
from w2m2w.train.loop import Run, finish, fit


class Peer:
    """The other rank: it holds the same values as this one (so a sum doubles) and rank 0 broadcasts `says`."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def all_reduce(self, t):
        self.calls.append(("all_reduce", t.dtype, t.device.type, t.clone()))
        t.mul_(2)

    def broadcast(self, t, src):
        self.calls.append(("broadcast", t.dtype, t.device.type, src))

    def broadcast_object_list(self, box, src):
        self.calls.append(("broadcast_object_list", list(box), src))

    def barrier(self):
        self.calls.append(("barrier",))

    def destroy_process_group(self):
        self.calls.append(("destroy",))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeDDP(nn.Module):
    """DDP without a process group: runs the module, counts the micro-batches run under no_sync."""

    made: list[FakeDDP] = []

    def __init__(self, module: nn.Module, device_ids=None) -> None:
        super().__init__()
        self.module, self.device_ids, self.unsynced = module, device_ids, 0
        FakeDDP.made.append(self)

    def forward(self, batch):
        return self.module(batch)

    @contextmanager
    def no_sync(self):
        self.unsynced += 1
        yield


@pytest.fixture()
def peer(monkeypatch) -> Peer:
    p = Peer()
    for name in ("all_reduce", "broadcast", "broadcast_object_list", "barrier", "destroy_process_group"):
        monkeypatch.setattr(torch.distributed, name, getattr(p, name))
    FakeDDP.made = []
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", FakeDDP)
    return p


def test_sum_adds_the_other_ranks_values_in_float64(peer, tmp_path):
    two = Run(tmp_path, "cpu", rank=0, world=2)
    assert two.sum([torch.tensor(0.25), 1.5, torch.tensor([3.0])]) == [0.5, 3.0, 6.0]
    ((name, dtype, device, sent),) = peer.calls
    assert (name, dtype, device) == ("all_reduce", torch.float64, "cpu") and sent.tolist() == [0.25, 1.5, 3.0]
    assert Run(tmp_path, "cpu").sum([torch.tensor(0.25), 1.5]) == [0.25, 1.5]
    assert len(peer.calls) == 1, "one process: nothing to add"


def test_agree_takes_rank_0s_value(peer, tmp_path, monkeypatch):
    def rank0_says(t, src):
        peer.calls.append(("broadcast", t.dtype, t.device.type, src))
        t.fill_(2.5)

    monkeypatch.setattr(torch.distributed, "broadcast", rank0_says)
    assert Run(tmp_path, "cpu", rank=1, world=2).agree(7.0) == 2.5
    assert peer.calls == [("broadcast", torch.float64, "cpu", 0)]
    assert Run(tmp_path, "cpu").agree(7.0) == 7.0 and len(peer.calls) == 1


def test_finish_hands_every_rank_rank_0s_summary_and_ends_a_group_it_began(peer, tmp_path, monkeypatch):
    def rank0_sends(box, src):
        peer.calls.append(("broadcast_object_list", list(box), src))
        box[0] = {"from": "rank 0"}

    monkeypatch.setattr(torch.distributed, "broadcast_object_list", rank0_sends)
    assert finish(Run(tmp_path, "cpu", rank=1, world=2), {"mine": 1}) == {"from": "rank 0"}
    assert peer.calls == [("broadcast_object_list", [{"mine": 1}], 0)], "not this run's group: left as it is"
    peer.calls.clear()
    assert finish(Run(tmp_path, "cpu", rank=1, world=2, owns_group=True), {"mine": 1}) == {"from": "rank 0"}
    assert peer.names() == ["broadcast_object_list", "barrier", "destroy"]
    peer.calls.clear()
    assert finish(Run(tmp_path, "cpu"), {"mine": 1}) == {"mine": 1} and peer.calls == []


def test_the_model_is_wrapped_in_ddp_only_with_several_processes(peer, tmp_path):
    task = _data_task(Clock())
    one = loop._stepper(Run(tmp_path, "cpu"), task)
    assert isinstance(one, loop._StepModule) and one.model is task.model and FakeDDP.made == []
    cpu = loop._stepper(Run(tmp_path, "cpu", world=2), task)
    assert isinstance(cpu, FakeDDP) and isinstance(cpu.module, loop._StepModule) and cpu.device_ids is None
    assert cpu.module.model is task.model
    gpu = loop._stepper(Run(tmp_path, "cuda:1", rank=1, world=2), task)
    assert gpu.device_ids == [1], "a GPU rank names its device"


def test_rank_0_of_two_trains_on_its_rows_and_logs_the_mean_over_both(peer, tmp_path, clock):  # noqa: F811 (the imported fixture)
    # rank 0 of 2 with batch_size 2 draws row 0 of each step; the peer holds the same loss, so the summed loss over
    # 2 processes and 2 micro-batches, / 2 / 2 per micro-batch, is this rank's mean loss. By hand, from the rows:
    cfg = Cfg(out_dir=str(tmp_path), batch_size=2, max_steps=2, validate_every=1)
    cfg.accumulate = 2  # micro-batch j draws rows j * 2 .. : rank 0's row of micro-batch j is row 2 j
    w, losses = 0.0, []
    for s in range(2):
        xs = [_row(0, s, 0), _row(0, s, 2)]
        losses.append(sum((w - x) ** 2 for x in xs) / 2)
        w -= 0.1 * sum(2 * (w - x) for x in xs) / 2
    fit(Run(tmp_path, "cpu", rank=0, world=2), cfg, _data_task(clock))
    rows = _rows(tmp_path)
    assert [r["loss"] for r in rows] == pytest.approx(losses, rel=1e-5)
    assert rows[-1]["val"] == pytest.approx(w, rel=1e-5)
    (ddp,) = FakeDDP.made
    assert ddp.unsynced == 2, "each step's first micro-batch without a gradient sync, its last with one"
    _, _, meta = load_weights(tmp_path / "best.safetensors", "one")
    assert meta["processes"] == 2


def test_one_process_records_no_process_count(tmp_path, clock):  # noqa: F811 (the imported fixture)
    cfg = Cfg(out_dir=str(tmp_path), batch_size=2, max_steps=1, validate_every=1)
    fit(Run(tmp_path, "cpu"), cfg, _data_task(clock))
    _, _, meta = load_weights(tmp_path / "best.safetensors", "one")
    assert "processes" not in meta and meta["validation"]["step"] == 1


def test_rank_1_trains_silently_and_leaves_the_files_to_rank_0(peer, tmp_path, clock, capsys):  # noqa: F811 (the imported fixture)
    cfg = Cfg(out_dir=str(tmp_path), batch_size=2, max_steps=2, validate_every=1)
    assert fit(Run(tmp_path, "cpu", rank=1, world=2), cfg, _data_task(clock)) == {}, "its summary comes from rank 0"
    assert "train" not in capsys.readouterr().err, "no progress bar of its own"
    assert not (tmp_path / "log.jsonl").exists() and not (tmp_path / "best.safetensors").exists()
