"""`python -m w2m2w.train train=NAME ...`: Hydra entry point for every training loop."""
from __future__ import annotations

import importlib
import json
import logging

import hydra
from omegaconf import DictConfig, OmegaConf


def _dataclass_from(cls, node: DictConfig):
    """Merge a config node over the dataclass defaults (unknown keys are an error)."""
    schema = OmegaConf.structured(cls)
    merged = OmegaConf.merge(schema, {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "name"})
    return OmegaConf.to_object(merged)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    logging.getLogger().setLevel(cfg.log_level)
    name = cfg.train.name
    try:
        # each training loop is a module w2m2w/train/<name>.py exposing CONFIG (a dataclass) and train(config)
        mod = importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError:
        raise SystemExit(f"unknown training target {name!r}: no module w2m2w/train/{name}.py") from None
    summary = mod.train(_dataclass_from(mod.CONFIG, cfg.train))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
