"""Weights files and resumable training state: round trips and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from w2m2w.checkpoint import WeightsError, load_training_state, load_weights, save_training_state, save_weights


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


@pytest.fixture()
def weights(tmp_path):
    m = _model()
    path = tmp_path / "w" / "toy.safetensors"
    save_weights(path, "toy", m.state_dict(), {"width": 8}, {"steps": 3})
    return path, m


def test_round_trip(weights):
    path, m = weights
    state, config, training = load_weights(path, "toy")
    assert config == {"width": 8} and training == {"steps": 3}
    assert state.keys() == m.state_dict().keys()
    for k, v in m.state_dict().items():
        assert torch.equal(state[k], v), k
    assert not list(path.parent.glob(".*")), "no temporary file left behind"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError, match=f"{path}.*not found"):
        load_weights(path, "toy")


def test_git_lfs_pointer(tmp_path):
    path = tmp_path / "lfs.safetensors"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 123456\n")
    with pytest.raises(WeightsError, match=f"{path}.*Git LFS"):
        load_weights(path, "toy")


def test_truncated_file(weights):
    path, _ = weights
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=str(path)):
        load_weights(path, "toy")


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match=str(path)):
        load_weights(path, "toy")


def test_wrong_model_name(weights):
    path, _ = weights
    with pytest.raises(WeightsError, match=f"{path}.*'toy'.*'other'"):
        load_weights(path, "other")


def _adam_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_training_state_round_trip_restores_adam_exactly(tmp_path):
    model = _model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    _adam_steps(model, opt, 3, seed=1)
    save_training_state(tmp_path / "ckpt", "toy", model, {"width": 8}, opt, {"step": 3, "rng": [1, 2, 3]})

    model2 = _model(5)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
    state = load_training_state(tmp_path / "ckpt", "toy", model2, opt2)
    assert state == {"step": 3, "rng": [1, 2, 3]}
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["state"].keys() == s2["state"].keys()
    for idx in s1["state"]:
        for k, v in s1["state"][idx].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][idx][k])), (idx, k)
    assert opt2.param_groups[0]["lr"] == 1e-2 and tuple(opt2.param_groups[0]["betas"]) == (0.8, 0.95)
    # the same next steps from both: identical parameters
    _adam_steps(model, opt, 2, seed=7)
    _adam_steps(model2, opt2, 2, seed=7)
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k


def test_no_training_state_is_none(tmp_path):
    model = _model()
    assert load_training_state(tmp_path / "empty", "toy", model, torch.optim.Adam(model.parameters())) is None


def test_state_json_is_plain_json(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    _adam_steps(model, opt, 1, seed=0)
    save_training_state(tmp_path, "toy", model, {}, opt, {"step": 1})
    assert json.loads((tmp_path / "state.json").read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "optim.safetensors", "state.json"]


def test_a_failed_save_keeps_the_old_weights_and_leaves_no_temporary(weights, monkeypatch):
    """Weights are written through the run folder's atomic write: a crash mid-write (a full disk) changes nothing."""
    import safetensors.torch

    path, _ = weights
    before = path.read_bytes()

    def half_then_full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_full_disk)
    with pytest.raises(OSError, match="No space"):
        save_weights(path, "toy", _model(1).state_dict(), {"width": 8})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.safetensors"], "no temporary left"
    with pytest.raises(OSError, match="No space"):
        save_weights(path.parent / "new" / "fresh.safetensors", "toy", _model(1).state_dict(), {"width": 8})
    assert list((path.parent / "new").iterdir()) == [], "nothing at the final name of a first save either"
