"""`python -m w2m2w.train train=NAME ...`: Hydra entry point for every training loop."""
from __future__ import annotations

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
    if name == "transcriber":
        from .transcriber import TranscriberTrainConfig, train_transcriber

        summary = train_transcriber(_dataclass_from(TranscriberTrainConfig, cfg.train))
    else:
        raise SystemExit(f"unknown training target {name!r}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
