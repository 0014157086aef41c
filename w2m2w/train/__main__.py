"""`python -m w2m2w.train train=NAME [train.KEY=VALUE ...]`: the Hydra edge of every training run.

Each run's settings are a dataclass in its train module (every default and allowed range), registered
below as the structured schema of conf/train/NAME.yaml, so Hydra refuses wrong types and unknown keys. Before Hydra writes anything,
the overrides are composed once and range-checked: a bad one exits 2 with one line naming the key.
Under torchrun, every process runs this; only rank 0 lets Hydra write its output folder.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from w2m2w import hydra_edge
from w2m2w.checkpoint import WeightsError
from w2m2w.paths import CONF
from w2m2w.settings import SettingsError, check
from w2m2w.train import beat_tracker, music_transformer, source_filter, transcriber, wavenet
from w2m2w.train.loop import TrainingError


@dataclass(frozen=True)
class Trainer:
    config: type  # the settings dataclass
    train: Callable[[Any], dict]  # settings -> the last validation row


# the training runs, by the name `train=NAME` picks (conf/train/NAME.yaml)
TRAINERS: dict[str, Trainer] = {
    "transcriber": Trainer(transcriber.TranscriberTrainConfig, transcriber.train_transcriber),
    "music_transformer": Trainer(music_transformer.MusicTransformerTrainConfig, music_transformer.train),
    "wavenet": Trainer(wavenet.WaveNetTrainConfig, wavenet.train_wavenet),
    "source_filter": Trainer(source_filter.SourceFilterTrainConfig, source_filter.train_source_filter),
    "beat_tracker": Trainer(beat_tracker.BeatTrackerTrainConfig, beat_tracker.train_beat_tracker),
}

# conf/train/NAME.yaml names its schema as /schema/train/NAME: a group of its own, so it is never offered as a `train=` choice
for _name, _trainer in TRAINERS.items():
    ConfigStore.instance().store(group="schema/train", name=_name, node=_trainer.config)


def settings_of(cfg: DictConfig) -> Any:
    """The composed `train` node as its dataclass, range-checked (SettingsError names the key)."""
    obj = OmegaConf.to_object(cfg.train)
    check(obj, "train")
    return obj


def _check(cfg: DictConfig) -> None:
    name = cfg.hydra.runtime.choices["train"]
    if name not in TRAINERS:
        raise TrainingError(f"train={name}: unknown training run; one of {', '.join(TRAINERS)}")
    settings_of(cfg)


def precheck(overrides: list[str]) -> int:
    """Compose the config as Hydra will and check its ranges; 0 when it is good, else 2 after one line on stderr.

    Runs before Hydra creates its output folder, so a bad override writes nothing."""
    problem = hydra_edge.precheck(
        overrides, "train", _check, job_name="train_check", refused=(SettingsError, TrainingError)
    )
    if problem:
        hydra_edge.say(problem)
        return 2
    return 0


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="train")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    rank = int(os.environ.get("RANK", "0"))
    logging.getLogger().setLevel(cfg.log_level if rank == 0 else "WARNING")
    name = HydraConfig.get().runtime.choices["train"]
    trainer = TRAINERS[name]
    try:
        summary = trainer.train(settings_of(cfg))
    except (TrainingError, WeightsError, SettingsError) as exc:
        hydra_edge.fail(str(exc))
    if rank == 0:
        print(json.dumps(summary))


def cli() -> None:
    args = sys.argv[1:]
    # flags (--help, --cfg, --multirun and sweeps) go to Hydra as they are; plain overrides are checked first
    if not any(a.startswith("-") for a in args):
        code = precheck([a for a in args if not a.startswith("hydra.") and not a.startswith("hydra/")])
        if code:
            raise SystemExit(code)
    if int(os.environ.get("RANK", "0")) > 0:
        # under torchrun, one output folder per run: rank 0's
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra.run.dir=."]
    main()


if __name__ == "__main__":
    cli()
