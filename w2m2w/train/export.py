"""Weights files written at the end of (or during) any training run."""
from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import save_weights


def export_trained(path: Path, model_name: str, model: torch.nn.Module, cfg: Any, summary: dict, **extra: Any) -> None:
    """Save `model` for inference with what produced it: the training config (cfg, a dataclass
    with `model` and `device` fields), the validation summary, the hardware and any `extra` facts."""
    training = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        **extra,
        "validation": summary,
        "hardware": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__} threads={torch.get_num_threads()} device={cfg.device}".strip(),
    }
    save_weights(path, model_name, model.state_dict(), asdict(cfg.model), training)
