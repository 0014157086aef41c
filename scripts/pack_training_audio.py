"""Pack a compact copy of a transcriber run's training audio, to train where the data and FluidSynth are not.

A cluster node or a rented GPU often has neither `../shared/data` nor FluidSynth and its
soundfonts, and some limit what can be copied to it. This takes the examples a
`train=transcriber` run would use (the same overrides as `python -m w2m2w.train`), draws about
--minutes of training audio from them (one --seconds window of each example drawn, examples
drawn so that each piano and soundfont keeps its share of the audio) and adds the first
validation set whole, and writes them in MAPS layout:

    OUT/flac/MAPS_MUS-PIECE_GROUP.(flac|ogg) + OUT/tsv/MAPS_MUS-PIECE_GROUP.tsv (+ .pedal.tsv)

GROUP is the piano or soundfont, so training on the pack is

    python -m w2m2w.train train=transcriber train.maps_root=OUT train.maps_holdout_piano=HELD \\
        train.midi_globs=[] ...

where HELD is the validation set's soundfont or piano (printed at the end); its pieces are kept
out of training as they are in the full run. --codec vorbis (Ogg Vorbis, libsndfile's) makes the
pack about 3x smaller than FLAC; at the default quality the log-mel of a render moves by about
0.1 nat on its sounding bins (measured on a FluidR3 render), well under what a room does to it.

    python scripts/pack_training_audio.py --out /tmp/pack --minutes 80 --codec vorbis \\
        'train.midi_globs=[${data_root}/midi/asap/**/*.mid,...]' train.midi_max_files=120
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2m2w import SAMPLE_RATE  # noqa: E402
from w2m2w.audio import load_audio  # noqa: E402
from w2m2w.data.transcription import Example, crop_notes, maps_piece  # noqa: E402
from w2m2w.files import atomic_path  # noqa: E402
from w2m2w.midi import load_notes, save_tsv_notes  # noqa: E402
from w2m2w.pedal import crop_pedal, load_pedal, pedal_tsv_path, save_pedal_tsv  # noqa: E402


def pack_name(ex: Example) -> str:
    """MAPS_MUS-PIECE_GROUP: the group (piano or soundfont) last, as maps_examples reads it."""
    piece = maps_piece(ex.name) if ex.name.startswith("MAPS_MUS-") else ex.name.removesuffix(f"_{ex.group}")
    return f"MAPS_MUS-{piece}_{ex.group}"


def choose(
    examples: list[Example], seconds_of: dict[str, float], minutes: float, window: float, rng: np.random.Generator
) -> list[Example]:
    """About `minutes` of `window`-second cuts, each group's share of them its share of the audio.

    Training draws a segment from an example with probability in proportion to its length
    (SegmentSampler), so a group's share of the audio is its share of what a run trains on; the
    pack keeps those shares. Within a group, examples are taken in a random order.
    """
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.group, []).append(ex)
    total = sum(seconds_of[ex.audio] for ex in examples)
    chosen: list[Example] = []
    for _, members in sorted(groups.items()):
        target = minutes * 60 * sum(seconds_of[ex.audio] for ex in members) / total
        got = 0.0
        for i in rng.permutation(len(members)):
            if got >= target:
                break
            chosen.append(members[i])
            got += min(window, seconds_of[members[i].audio])
    return chosen


def write_example(
    ex: Example, out: Path, start: float, seconds: float, codec: str, quality: float, folder: Path | None = None
) -> float:
    """Write `seconds` of `ex` from `start` into the pack (MAPS layout, or with `folder` as
    folder/NAME.ext beside folder/NAME.tsv, as train.audio_dirs reads it); returns the seconds written."""
    import soundfile as sf

    y = load_audio(ex.audio)
    a = int(round(start * SAMPLE_RATE))
    y = y[a : a + int(round(seconds * SAMPLE_RATE))]
    name = pack_name(ex) if folder is None else ex.name
    suffix, kw = (
        (".ogg", {"format": "OGG", "subtype": "VORBIS", "compression_level": 1.0 - quality})
        if codec == "vorbis"
        else (".flac", {})
    )
    notes = crop_notes(load_notes(ex.notes), start, seconds)
    pedal = load_pedal(ex.notes)
    tsv = (out / "tsv" if folder is None else folder) / f"{name}.tsv"
    audio = (out / "flac" if folder is None else folder) / f"{name}{suffix}"
    with atomic_path(audio, root=None) as tmp_audio, atomic_path(tsv, root=None) as tmp_tsv:
        sf.write(str(tmp_audio), y, SAMPLE_RATE, **kw)
        save_tsv_notes(tmp_tsv, notes)
    if pedal is not None:
        with atomic_path(pedal_tsv_path(tsv), root=None) as tmp:
            save_pedal_tsv(tmp, crop_pedal(pedal, start, seconds))
    return len(y) / SAMPLE_RATE


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--minutes", type=float, default=60.0, help="training audio to pack (default 60)")
    ap.add_argument(
        "--seconds", type=float, default=60.0, help="the window cut from each training example (default 60)"
    )
    ap.add_argument("--codec", choices=("flac", "vorbis"), default="flac")
    ap.add_argument(
        "--quality", type=float, default=0.7, help="Vorbis quality, 0..1 (default 0.7: about 6 kB/s at 16 kHz)"
    )
    ap.add_argument(
        "--val",
        help="the validation set to pack whole (default: the run's first; its names are printed when it is not found)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "overrides", nargs="*", help="train.KEY=VALUE, as `python -m w2m2w.train train=transcriber` takes them"
    )
    args = ap.parse_args(argv)
    import soundfile as sf
    from hydra import compose, initialize_config_dir

    from w2m2w.paths import CONF
    from w2m2w.train.__main__ import precheck, settings_of
    from w2m2w.train.loop import TrainingError
    from w2m2w.train.transcriber import build_datasets

    overrides = ["train=transcriber", *args.overrides]
    if precheck(overrides):  # a wrong key, type or range: one line on stderr, as the training command does
        return 2
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="pack"):
        cfg = settings_of(compose("train", overrides=overrides))
    try:
        train, val_sets = build_datasets(cfg)
    except (TrainingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    held = args.val or next(iter(val_sets), None)
    if held is not None and held not in val_sets:  # checked before anything is written
        print(f"error: --val {held}: the run's validation sets are {sorted(val_sets)}", file=sys.stderr)
        return 2
    val = val_sets.get(held, []) if held else []
    # recordings with labels (train.audio_dirs, train.val_audio_dirs: real pianos) are packed whole, in
    # folders of their own, so that their share of the draws stays train.audio_share's
    real = [ex for ex in train if ex.group == "audio_dir"]
    train = [ex for ex in train if ex.group != "audio_dir"]
    real_val = {k: v for k, v in val_sets.items() if k.startswith("audio_") and k != held}
    whole = [(ex, args.out / "audio_dirs" / "real_train") for ex in real]
    whole += [(ex, args.out / "audio_dirs" / k.removeprefix("audio_")) for k, v in real_val.items() for ex in v]
    real_seconds = sum(write_example(ex, args.out, 0.0, 1e9, args.codec, args.quality, folder) for ex, folder in whole)
    rng = np.random.default_rng(args.seed)
    seconds_of = {ex.audio: sf.info(ex.audio).duration for ex in train}
    packed = 0.0
    for ex in choose(train, seconds_of, args.minutes, args.seconds, rng):
        start = float(rng.uniform(0.0, max(0.0, seconds_of[ex.audio] - args.seconds)))
        packed += write_example(ex, args.out, start, args.seconds, args.codec, args.quality)
    val_seconds = sum(write_example(ex, args.out, 0.0, cfg.validation_seconds, args.codec, args.quality) for ex in val)
    groups = sorted({ex.group for ex in val})
    extra = ""
    if real:
        extra += f" 'train.audio_dirs=[{args.out / 'audio_dirs' / 'real_train'}]' train.audio_share={cfg.audio_share}"
    if real_val:
        extra += (
            " 'train.val_audio_dirs=["
            + ",".join(str(args.out / "audio_dirs" / k.removeprefix("audio_")) for k in real_val)
            + "]'"
        )
        extra += f" train.select_by={cfg.select_by}" if cfg.select_by else ""
    print(
        f"{args.out}: {packed / 60:.1f} min of training audio, {val_seconds / 60:.1f} min of validation ({held}), "
        f"{real_seconds / 60:.1f} min of labelled recordings whole; train with train.maps_root={args.out} "
        f"train.maps_holdout_piano={','.join(groups)} 'train.midi_globs=[]'{extra}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
