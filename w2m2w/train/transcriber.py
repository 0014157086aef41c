"""Training data and settings of the Onsets and Frames transcriber; the loop is loop.py's.

    python -m w2m2w.train train=transcriber [train.KEY=VALUE ...]

MAPS software pianos, MAESTRO and/or MIDI rendered with FluidSynth soundfonts; one MAPS piano
(with its pieces) and one soundfont are held out for validation. Folders of recordings beside their
labels (`audio_dirs`: real pianos with a teacher's labels) join training at a share of the draws
of their own (`audio_share`), and `val_audio_dirs` are validation sets of the same kind.
best.safetensors keeps the best note F1 on the set `select_by` names (the first set by default).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from w2m2w.data.augment import STAGES as AUGMENT_STAGES
from w2m2w.data.rooms import TRAIN_ROOMS
from w2m2w.data.transcription import (
    Example,
    SegmentSampler,
    audio_dir_examples,
    load_examples_audio_notes,
    maestro_examples,
    maps_examples,
    maps_piece,
    rendered_examples,
)
from w2m2w.decoding import DecodeConfig
from w2m2w.models.onsets_frames import MODEL_NAME, OnsetsFrames, OnsetsFramesConfig
from w2m2w.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, PROBABILITY_UPPER, Range, SettingsError, setting
from w2m2w.train.corpora import midi_files
from w2m2w.train.loop import Task, TrainingError, draw_seed, fit, init_unless_resuming, loss_log, start

log = logging.getLogger(__name__)


@dataclass
class LossWeights:
    """Each head's weight in the summed training loss (OnsetsFrames.training_step); 1 is the MAESTRO paper's plain sum."""

    onset: float = setting(1.0, range=NON_NEGATIVE)
    offset: float = setting(1.0, range=NON_NEGATIVE)
    frame: float = setting(1.0, range=NON_NEGATIVE)
    velocity: float = setting(1.0, range=NON_NEGATIVE)
    pedal: float = setting(1.0, range=NON_NEGATIVE)


@dataclass
class TranscriberTrainConfig:
    """Every default of `train=transcriber`; conf/train/transcriber.yaml adds only where the team's data is."""

    out_dir: str = setting("runs/train_transcriber", affects_output=False)
    model: OnsetsFramesConfig = field(default_factory=OnsetsFramesConfig)
    # data
    maps_root: str | None = setting(None)
    maps_holdout_piano: str = setting("SptkBGCl")
    maestro_root: str | None = setting(None)
    midi_globs: list[str] = setting(default_factory=list)  # MIDI rendered with FluidSynth
    midi_max_files: int = setting(150, range=NON_NEGATIVE)  # 0: all
    render_seconds: float = setting(60.0, range=POSITIVE)
    soundfonts: list[str] = setting(default_factory=lambda: ["fluidr3", "timgm6mb", "musescore"])
    holdout_soundfont: str = setting("csound")
    holdout_midi_files: int = setting(8, range=NON_NEGATIVE)
    render_cache: str = setting("cache/renders")
    # folders of recordings beside same-named labels (.mid/.tsv; scripts/real_piano_folder.py makes one of
    # the real recordings with their teacher labels); their pedal (CC64) is learnt too, none pressed included
    audio_dirs: list[str] = setting(default_factory=list)
    audio_share: float | None = setting(
        None, range=Range(0, 1, hi_open=True)
    )  # of the draws, from audio_dirs; None: by length
    # the weight of audio_dirs' pedal labels in the pedal loss (renders' and MAPS' weigh 1): a teacher's labels that
    # hold no press teach "never pressed" on real audio, which below 1 weighs less against the renders' presses
    audio_pedal_weight: float = setting(1.0, range=Range(0, 1))
    val_audio_dirs: list[str] = setting(default_factory=list)  # each a validation set "audio_<folder name>"
    val_audio_seconds: float = setting(0.0, range=NON_NEGATIVE)  # of each val_audio_dirs piece; 0: whole pieces
    select_by: str | None = setting(None)  # the validation set whose note F1 picks best.safetensors; None: the first
    # optimisation
    batch_size: int = setting(8, range=AT_LEAST_ONE)  # global: split over the processes under torchrun
    segment_seconds: float = setting(5.0, range=POSITIVE)
    learning_rate: float = setting(6e-4, range=POSITIVE)
    lr_decay: float = setting(0.98, range=PROBABILITY_UPPER)  # every lr_decay_steps
    lr_decay_steps: int = setting(1000, range=AT_LEAST_ONE)
    clip_grad_norm: float = setting(3.0, range=POSITIVE)
    # each head's weight in the summed loss, e.g. train.loss_weights.frame=2 to push a duration head
    loss_weights: LossWeights = field(default_factory=lambda: LossWeights())
    # each note's onset frames weigh 1 + this x (1 - velocity/127) in the onset loss: soft notes count more
    soft_onset_boost: float = setting(0.0, range=NON_NEGATIVE)
    augment_p: float = setting(0.5, range=Range(0, 1))
    room_bank: int = setting(
        64, range=NON_NEGATIVE
    )  # simulated rooms (data/rooms.py) the augmentation draws from; 0: no rooms
    room_cache: str = setting("cache/rooms", affects_output=False)
    # the training rooms' ranges (data/rooms.py TRAIN_ROOMS by default); wider ones build another bank
    room_rt60: list[float] = setting(default_factory=lambda: list(TRAIN_ROOMS.rt60))  # s, [lo, hi]
    room_far_distance: list[float] = setting(
        default_factory=lambda: list(TRAIN_ROOMS.far_distance)
    )  # m, ambient microphone
    room_p: float | None = setting(None, range=Range(0, 1))  # probability of a room; None: augment_p
    # stages of the chain left out (data/augment.py STAGES), for ablations: the draws stay the same, segment for segment
    augment_skip: list[str] = setting(default_factory=list, choices=AUGMENT_STAGES)
    val_frame_thresholds: list[float] = setting(
        default_factory=lambda: [0.3, 0.2]
    )  # validation also scores durations decoded at these
    init_weights: str | None = setting(
        None
    )  # start from these weights (every tensor whose shape fits; new heads start fresh)
    max_steps: int = setting(100000, range=AT_LEAST_ONE)
    max_minutes: float = setting(0.0, range=NON_NEGATIVE)  # 0 = no time limit
    validate_every: int = setting(500, range=AT_LEAST_ONE)
    validation_seconds: float = setting(60.0, range=POSITIVE)  # first N s of each validation piece during training
    seed: int = setting(0, range=NON_NEGATIVE)  # also picks the held-out MIDI files and the room bank
    # a second draw of the same run (initial weights, segments, augmentation, dropout) with the same
    # held-out files and rooms, for twins repeated with another seed; None: seed
    sample_seed: int | None = setting(None, range=NON_NEGATIVE)
    threads: int = setting(0, range=NON_NEGATIVE, affects_output=False)  # 0 = torch default
    device: str = setting("cpu", affects_output=False)
    # processes that draw batches ahead of the step (train/prefetch.py): the same batches, drawn in
    # parallel, so a GPU is not held back by one CPU core cutting segments and convolving rooms
    data_workers: int = setting(0, range=NON_NEGATIVE, affects_output=False)
    bf16: bool = setting(
        False
    )  # autocast matmuls/convs to bfloat16: faster on AVX512-BF16 CPUs and on GPUs (how much: weights/README.md)

    def check_more(self, prefix: str = "train") -> None:
        """The room ranges are [low, high] pairs (settings.check calls this, so a bad one is refused before any rendering)."""
        for name in ("room_rt60", "room_far_distance"):
            _pair(getattr(self, name), f"{prefix}.{name}" if prefix else name)


def build_datasets(cfg: TranscriberTrainConfig) -> tuple[list[Example], dict[str, list[Example]]]:
    """Training examples and named validation sets, each on a piano or soundfont kept out of training."""
    train: list[Example] = []
    val: dict[str, list[Example]] = {}
    if cfg.maps_root:
        held = maps_examples(cfg.maps_root, include=[cfg.maps_holdout_piano])
        held_pieces = {maps_piece(e.name) for e in held}
        # the held-out piano's pieces are kept out too, so validation is unseen piano *and* unseen music
        train += maps_examples(cfg.maps_root, exclude=[cfg.maps_holdout_piano], exclude_pieces=held_pieces)
        val[f"maps_{cfg.maps_holdout_piano}"] = held
    if cfg.maestro_root:
        train += maestro_examples(cfg.maestro_root, "train")
        val["maestro_validation"] = maestro_examples(cfg.maestro_root, "validation")
    midi = midi_files(cfg.midi_globs, "train.midi_globs")
    if midi:
        rng = np.random.default_rng(cfg.seed)
        midi = list(rng.permutation(midi))
        held_midi = midi[: cfg.holdout_midi_files]
        train_midi = midi[cfg.holdout_midi_files :]
        if cfg.midi_max_files:
            train_midi = train_midi[: cfg.midi_max_files]
        train += rendered_examples(train_midi, list(cfg.soundfonts), cfg.render_cache, cfg.render_seconds)
        val[f"render_{cfg.holdout_soundfont}"] = rendered_examples(
            held_midi, [cfg.holdout_soundfont], cfg.render_cache, cfg.render_seconds
        )
    for d in cfg.audio_dirs:
        found = audio_dir_examples(d)
        if not found:
            raise TrainingError(f"{d}: no recording with a same-named label (.mid, .midi or .tsv) in train.audio_dirs")
        train += found
    for d in cfg.val_audio_dirs:
        found = audio_dir_examples(d)
        if not found:
            raise TrainingError(
                f"{d}: no recording with a same-named label (.mid, .midi or .tsv) in train.val_audio_dirs"
            )
        val[audio_set_name(d)] = found
    seen = {Path(e.audio).resolve() for e in train}
    leaked = sorted(e.name for v in val.values() for e in v if Path(e.audio).resolve() in seen)
    if leaked:
        raise TrainingError(f"validation pieces also in training: {leaked[:5]}")
    if not train:
        raise TrainingError(
            "no training data: set train.maps_root, train.maestro_root, train.midi_globs or train.audio_dirs"
        )
    if cfg.select_by is not None and cfg.select_by not in val:
        raise TrainingError(f"train.select_by={cfg.select_by}: no such validation set (there are {sorted(val)})")
    return train, val


def selection_key(select_by: str | None, val_sets: list[str]) -> str | None:
    """The log key that picks best.safetensors: note F1 on `select_by`, or on the first validation set
    when none is named; None without validation (the loss then picks)."""
    name = select_by or next(iter(val_sets), None)
    return None if name is None else f"{name}/note_f1"


def audio_set_name(folder: str) -> str:
    """The validation set a val_audio_dirs folder makes: 'audio_<folder name>'."""
    return "audio_" + Path(folder).expanduser().resolve().name


def load_validation(
    examples: list[Example], seconds: float | None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(audio, notes, pedal or None) of the first `seconds` of each validation example (None: all of it)."""
    from w2m2w.pedal import crop_pedal, load_pedal

    out = []
    for (_, y, notes), ex in zip(load_examples_audio_notes(examples, seconds), examples):
        pedal = load_pedal(ex.notes)
        out.append((y, notes, None if pedal is None or seconds is None else crop_pedal(pedal, 0.0, seconds)))
    return out


def decoding_scores(
    probs: list[dict[str, np.ndarray]],
    data: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    frame_rate: float,
    decode: DecodeConfig,
) -> dict[str, float]:
    """Mean F1s over the pieces of the notes (and, where the references have one, the pedal) that
    `decode` makes of each piece's probabilities (model.predict's, one dict per piece of `data`)."""
    from w2m2w.metrics import mean_metrics, pedal_metrics, transcription_metrics
    from w2m2w.transcription import decode_probabilities

    rows, pedal_rows = [], []
    for p, (_, ref, ref_pedal) in zip(probs, data):
        notes, pedal = decode_probabilities(p, frame_rate, decode)
        rows.append({k: v for k, v in transcription_metrics(ref, notes).items() if k.endswith("f1")})
        if pedal is not None and ref_pedal is not None and len(ref_pedal):
            pedal_rows.append({k: v for k, v in pedal_metrics(ref_pedal, pedal).items() if k.endswith("f1")})
    return {**mean_metrics(rows), **mean_metrics(pedal_rows)}


def validation_scores(
    model: OnsetsFrames, data: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], frame_thresholds: list[float]
) -> dict[str, float]:
    """Mean F1s over the pieces: notes at the default decoding, offsets and frames at each frame
    threshold (decoding is cheap next to the network, so one forward pass serves them all), and
    the pedal where the references have one."""
    was = model.training
    probs = [model.predict(y) for y, _, _ in data]
    model.train(was)
    row = decoding_scores(probs, data, model.frame_rate, DecodeConfig())
    for t in frame_thresholds:
        alt = decoding_scores(probs, data, model.frame_rate, DecodeConfig(frame_threshold=t))
        row.update({f"note_offset_f1@{t}": alt["note_offset_f1"], f"frame_f1@{t}": alt["frame_f1"]})
    return row


def make_augmenter(cfg: TranscriberTrainConfig):
    """The training augmentation: simulated rooms and an effects chain (data/augment.py)."""
    from w2m2w.data.augment import Augmenter
    from w2m2w.data.rooms import RoomBank

    ranges = replace(
        TRAIN_ROOMS,
        rt60=_pair(cfg.room_rt60, "train.room_rt60"),
        far_distance=_pair(cfg.room_far_distance, "train.room_far_distance"),
    )
    bank = RoomBank.training(cfg.room_bank, cfg.room_cache, seed=cfg.seed, ranges=ranges) if cfg.room_bank else None
    return Augmenter(cfg.augment_p, bank, room_p=cfg.room_p, skip=tuple(cfg.augment_skip))


def augments(cfg: TranscriberTrainConfig) -> bool:
    """Whether training draws through an Augmenter: any effect, or rooms of their own probability (room_p with augment_p 0)."""
    return cfg.augment_p > 0 or bool(cfg.room_bank and cfg.room_p)


def _pair(v: list[float], key: str) -> tuple[float, float]:
    if len(v) != 2 or not 0 < v[0] <= v[1]:
        raise SettingsError(key, list(v), "[low, high] with 0 < low <= high")
    return float(v[0]), float(v[1])


def train_transcriber(cfg: TranscriberTrainConfig) -> dict:
    """Train (resuming from cfg.out_dir if it holds a checkpoint); returns the last validation row.

    Writes out_dir/checkpoint/, out_dir/log.jsonl, out_dir/best.safetensors (best note F1 on the
    first validation set; the lowest loss without one) and out_dir/last.safetensors (loop.fit).
    """
    run = start(cfg, MODEL_NAME)
    with run.main_first():  # rank 0 renders MIDI into the cache, the others then read it
        train_ex, val_sets = build_datasets(cfg)
    if run.main:
        log.info(
            "training on %d examples (%s); validation sets: %s",
            len(train_ex),
            sorted({e.group for e in train_ex}),
            {k: len(v) for k, v in val_sets.items()},
        )
    model = OnsetsFrames(cfg.model).to(run.device)
    init_unless_resuming(model, run, cfg.init_weights, MODEL_NAME)
    sampler = SegmentSampler(
        train_ex,
        cfg.segment_seconds,
        model.frame_rate,
        model.mel_cfg.hop_length,
        seed=draw_seed(cfg),
        augmenter=make_augmenter(cfg) if augments(cfg) else None,
        pedal=cfg.model.pedal,
        level_db=cfg.model.input_level_db,
        shares=None if cfg.audio_share is None else {"audio_dir": cfg.audio_share},
        pedal_weights={"audio_dir": cfg.audio_pedal_weight},
    )

    def seconds(name: str) -> float | None:
        if name.startswith("audio_") and name in {audio_set_name(d) for d in cfg.val_audio_dirs}:
            return cfg.val_audio_seconds or None
        return cfg.validation_seconds

    val_data = {k: load_validation(v, seconds(k)) for k, v in val_sets.items() if v} if run.main else {}
    f1_key = selection_key(cfg.select_by, list(val_data))

    def validation(m: OnsetsFrames) -> dict:
        row = {}
        for name, data in val_data.items():
            row.update(
                {f"{name}/{k}": round(v, 4) for k, v in validation_scores(m, data, cfg.val_frame_thresholds).items()}
            )
        return row

    task = Task(
        model_name=MODEL_NAME,
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.learning_rate),
        sampler=sampler,
        step=lambda m, batch: m.training_step(batch, cfg.bf16, asdict(cfg.loss_weights), cfg.soft_onset_boost),
        lr=lambda step, _: cfg.learning_rate * cfg.lr_decay ** (step / cfg.lr_decay_steps),
        validate=validation,
        train_log=loss_log,
        score=lambda row: row[f1_key] if f1_key else row["loss"],
        maximize=f1_key is not None,
        description="train transcriber",
    )
    return fit(run, cfg, task)


train = train_transcriber
