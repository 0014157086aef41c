"""Weights files: one safetensors file per model, config and training summary in its metadata.

No pickles anywhere: loading a weights file can never run code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from w2m2w.files import atomic_path, sha256_file
from w2m2w.paths import WEIGHTS

FORMAT_VERSION = "1"
# The shipped weights and their sha256 (`cd weights && sha256sum *.safetensors > SHA256SUMS`, sha256sum's format):
# safetensors checks a file's layout, not its numbers, so a flipped byte in a tensor would load and run.
SHIPPED_DIR = WEIGHTS
MANIFEST = "SHA256SUMS"
_verified: set[tuple[str, int, int, str]] = (
    set()
)  # (file, mtime, size, hash): each shipped file is hashed once per process


class WeightsError(RuntimeError):
    """A weights file that is missing, truncated, corrupt or for another model."""


def save_weights(
    path: str | os.PathLike,
    model_name: str,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> None:
    """Write `state_dict` atomically with the model name, config and training summary as metadata."""
    from safetensors.torch import save_file

    meta = {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "config": json.dumps(config, sort_keys=True),
        "training": json.dumps(training or {}, sort_keys=True),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_path(path, root=None) as tmp:  # weights live outside run folders
        save_file(tensors, str(tmp), metadata=meta)


def load_model(
    path: str | os.PathLike,
    model_name: str,
    build: Callable[[dict[str, Any]], torch.nn.Module],
    device: str = "cpu",
    what: str = "the model",
) -> Any:
    """The one model loader: `build(config)` makes the model the file's config describes, the file's tensors fill it,
    and it comes back in eval mode on `device`. Every failure is a WeightsError naming the file: missing, a Git LFS
    pointer, truncated or corrupt, another model's (load_weights), or a config or tensors that do not fit."""
    state, config, _ = load_weights(path, model_name)
    try:
        model = build(config)
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise WeightsError(
            f"{path}: weights do not fit {what} config stored in it ({str(exc).splitlines()[0]})"
        ) from None
    return model.to(device).eval()


def load_weights(
    path: str | os.PathLike, model_name: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read a weights file: (state_dict, config, training summary).

    Raises WeightsError naming the file and what to do when it is missing,
    a Git LFS pointer, truncated or corrupt, or holds another model.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file not found; train one with `python -m w2m2w.train` or point the config at an existing file"
        )
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise WeightsError(f"{path}: is a Git LFS pointer, not weights; run `git lfs pull` or fetch the real file")
    verify_shipped(path)
    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    except Exception as exc:
        raise WeightsError(
            f"{path}: not a valid safetensors weights file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); it may be truncated, re-download or retrain it"
        ) from None
    if meta.get("model") != model_name:
        raise WeightsError(f"{path}: holds weights for model {meta.get('model')!r}, expected {model_name!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: weights format version {meta.get('format_version')!r}, this w2m2w reads {FORMAT_VERSION!r}"
        )
    return tensors, json.loads(meta.get("config", "{}")), json.loads(meta.get("training", "{}"))


def read_manifest(path: Path) -> dict[str, str]:
    """{file name: sha256} from a sha256sum file (`HASH  NAME`, or `HASH *NAME` in binary mode); empty when there is none."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def verify_shipped(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> None:
    """WeightsError naming the file when `path` is one of the shipped weights (listed in folder/SHA256SUMS) and its
    sha256 differs from the listed one. Any other path is the user's own: load_weights checks only its format."""
    folder = Path(folder if folder is not None else SHIPPED_DIR).resolve()
    real = Path(path).resolve()
    if real.parent != folder:
        return
    expected = read_manifest(folder / MANIFEST).get(real.name)
    if expected is None:  # not one the project ships (a model trained into weights/, say)
        return
    stat = real.stat()
    key = (str(real), stat.st_mtime_ns, stat.st_size, expected)
    if key in _verified:
        return
    actual = sha256_file(real)
    if actual != expected:
        raise WeightsError(
            f"{path}: sha256 {actual[:16]}... differs from {expected[:16]}... listed for it in {folder / MANIFEST}: the shipped file is "
            f"damaged or changed; restore it (`git checkout -- weights/{real.name}`, `git lfs pull`, or download w2m2w again)"
        )
    _verified.add(key)


def save_training_state(
    directory: str | os.PathLike,
    model_name: str,
    model: torch.nn.Module,
    config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """A resumable training checkpoint without pickles: model and optimizer tensors as
    safetensors, step counters and RNG states as JSON. Each file is replaced atomically;
    state.json is written last, so a checkpoint is complete when state.json names its step."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_weights(d / "model.safetensors", model_name, model.state_dict(), config, {"step": state.get("step")})
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, pstate in opt["state"].items():
        for k, v in pstate.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    with atomic_path(d / "optim.safetensors", root=None) as tmp:
        save_file(
            tensors,
            str(tmp),
            metadata={"param_groups": json.dumps(opt["param_groups"]), "scalars": json.dumps(scalars)},
        )
    with atomic_path(d / "state.json", root=None) as tmp:
        tmp.write_text(json.dumps(state))


def load_training_state(
    directory: str | os.PathLike, model_name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    """Restore model and optimizer from save_training_state's folder; None when there is none."""
    from safetensors import safe_open

    d = Path(directory)
    if not (d / "state.json").is_file():
        return None
    tensors, _, _ = load_weights(d / "model.safetensors", model_name)
    model.load_state_dict(tensors)
    with safe_open(str(d / "optim.safetensors"), framework="pt") as f:
        meta = f.metadata()
        flat = {k: f.get_tensor(k) for k in f.keys()}
    scalars = json.loads(meta["scalars"])
    opt_state: dict[int, dict[str, Any]] = {}
    for key, v in list(flat.items()) + list(scalars.items()):
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    return json.loads((d / "state.json").read_text())
