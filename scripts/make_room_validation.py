"""Build the room-like held-out validation set: pieces played into simulated rooms, then through the effects chain.

Each input piece (audio + notes sharing a stem) is cut to its first --seconds, convolved with a
room from the VALIDATION bank (rooms.VALIDATION_ROOMS, seed rooms.VALIDATION_SEED or --bank-seed: disjoint from
the training rooms, longer reverberation, a farther ambient microphone), every piece in another
room, and passed through the whole Augmenter chain at p=1 with a seed fixed per piece. Written to
--out as NAME.flac (16 kHz) + NAME.tsv (the notes cut to the same span, the input's header) and
NAME.pedal.tsv when the input has one; rooms.json says which room each piece got.

    python scripts/make_room_validation.py --input /work/shared/data/audio/maps_synth --include '*SptkBGCl*' \\
        --input cache/renders --include '*_csound*' --seconds 60 --out cache/room_val
    (or: --set DIR:GLOB, repeated)

MIDI files can come in too, rendered first through a soundfont (FluidSynth, cached like training's renders):

    python scripts/make_room_validation.py --midi scripts/room_tune_midi.txt --soundfont csound \\
        --render-cache cache/renders_tune --bank-seed 3 --out cache/room_tune

(a render cache of its own, so that room_val's `cache/renders:'*_csound*'` does not take these too).

--skip leaves stages of the chain out (rooms only: --skip eq compression reverb codec noise gain).

Input folders: MAPS layout (DIR/flac/NAME.flac + DIR/tsv/NAME.tsv) or audio and NAME.tsv side by side.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2m2w import SAMPLE_RATE  # noqa: E402
from w2m2w.audio import load_audio  # noqa: E402
from w2m2w.data.augment import STAGES, Augmenter  # noqa: E402
from w2m2w.data.rooms import VALIDATION_ROOMS, VALIDATION_SEED, RoomBank  # noqa: E402
from w2m2w.data.transcription import crop_notes, rendered_examples  # noqa: E402
from w2m2w.files import atomic_path  # noqa: E402
from w2m2w.pedal import crop_pedal, pedal_tsv_path  # noqa: E402

AUDIO_SUFFIXES = (".flac", ".wav")
DEFAULT_NOTES_HEADER = "# onset,offset,note,velocity"
DEFAULT_PEDAL_HEADER = "# down,up"


@dataclass(frozen=True)
class Piece:
    name: str
    audio: Path
    notes: Path


class _Input(argparse.Action):
    """--input DIR starts a set; an --include GLOB after it narrows that set (pairs in command-line order)."""

    def __call__(self, parser, namespace, value, option_string=None):
        sets = getattr(namespace, "sets", None) or []
        if option_string == "--include":
            if not sets or sets[-1][1] != "*":
                parser.error("--include GLOB must follow its --input DIR (one --include per --input)")
            sets[-1] = (sets[-1][0], value)
        elif option_string == "--set":
            folder, sep, glob = value.rpartition(":")
            sets.append((folder, glob) if sep else (value, "*"))
        else:
            sets.append((value, "*"))
        namespace.sets = sets


def find_pieces(folder: Path, glob: str) -> list[Piece]:
    """Audio files in `folder` whose stem matches `glob` and that have notes: MAPS layout or side by side."""
    if (folder / "flac").is_dir() and (folder / "tsv").is_dir():
        audio_dir, notes_dir = folder / "flac", folder / "tsv"
    else:
        audio_dir = notes_dir = folder
    out = []
    for audio in sorted(audio_dir.iterdir()):
        if (
            audio.suffix.lower() in AUDIO_SUFFIXES
            and not audio.name.startswith(".")
            and fnmatch.fnmatch(audio.stem, glob)
        ):
            notes = notes_dir / f"{audio.stem}.tsv"
            if notes.is_file():
                out.append(Piece(audio.stem, audio, notes))
    return out


def read_table(path: Path, columns: int, default_header: str) -> tuple[str, np.ndarray]:
    """(header line, rows (n, columns)) of a tab-separated file whose first line may be a '#' header."""
    lines = path.read_text().splitlines()
    header = lines[0] if lines and lines[0].startswith("#") else default_header
    try:
        with warnings.catch_warnings():  # an empty table (a piece without pedal) is read as 0 rows, not warned about
            warnings.simplefilter("ignore", UserWarning)
            rows = np.loadtxt(path, delimiter="\t", comments="#", ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a tab-separated table of numbers ({exc})") from None
    if rows.size == 0:
        rows = np.zeros((0, columns))
    if rows.shape[1] < columns:
        raise ValueError(f"{path}: {rows.shape[1]} columns, expected {columns}")
    return header, rows[:, :columns]


def write_table(path: Path, header: str, rows: np.ndarray) -> None:
    text = header + "\n" + "".join("\t".join(f"{v:.6f}" for v in row) + "\n" for row in rows)
    path.write_text(text)


def make_piece(piece: Piece, out_dir: Path, seconds: float, augmenter: Augmenter, room: int, seed: int) -> dict:
    """Write out_dir/NAME.flac, NAME.tsv (and NAME.pedal.tsv) for one piece; returns what rooms.json records."""
    import soundfile as sf

    y = load_audio(piece.audio)[: int(round(seconds * SAMPLE_RATE))]
    duration = len(y) / SAMPLE_RATE
    header, notes = read_table(piece.notes, 4, DEFAULT_NOTES_HEADER)
    notes = crop_notes(notes, 0.0, duration)
    pedal_in = pedal_tsv_path(piece.notes)
    pedal = read_table(pedal_in, 2, DEFAULT_PEDAL_HEADER) if pedal_in.is_file() else None

    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(piece.name.encode())]))
    wet = augmenter(y, rng, room=room)

    flac, tsv = out_dir / f"{piece.name}.flac", out_dir / f"{piece.name}.tsv"
    # the audio is renamed into place last: a reader that finds NAME.flac finds its notes too
    with atomic_path(flac, root=None) as tmp_flac:
        with atomic_path(tsv, root=None) as tmp_tsv:
            write_table(tmp_tsv, header, notes)
            if pedal is not None:
                with atomic_path(pedal_tsv_path(tsv), root=None) as tmp_pedal:
                    write_table(tmp_pedal, pedal[0], crop_pedal(pedal[1], 0.0, duration))
        sf.write(str(tmp_flac), wet, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    rms_db = 10 * np.log10(np.mean(np.square(wet, dtype=np.float64)) + 1e-20)
    return {
        "source": str(piece.audio),
        "seconds": round(duration, 3),
        "notes": len(notes),
        "pedal": pedal is not None,
        "rms_dbfs": round(rms_db, 1),
        "peak": round(float(np.max(np.abs(wet))), 3),
    }


def render_midi_list(listing: Path, root: Path, soundfont: str, cache: Path, seconds: float) -> tuple[list[Piece], int]:
    """Pieces rendered from the MIDI files a list names (one path per line, '#' comments), and how many failed."""
    try:
        lines = listing.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: {listing}: cannot read the MIDI list ({exc})", file=sys.stderr)
        return [], 1
    pieces, errors = [], 0
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        midi = root / entry
        try:
            if not midi.is_file():
                raise FileNotFoundError("no such file")
            examples = rendered_examples([str(midi)], [soundfont], cache, seconds)
        except Exception as exc:  # one bad file is reported and skipped; the others go on
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"error: {midi}: {reason}", file=sys.stderr)
            errors += 1
            continue
        if not examples:
            print(f"error: {midi}: no notes in its first {seconds:g} s", file=sys.stderr)
            errors += 1
        pieces += [Piece(e.name, Path(e.audio), Path(e.notes)) for e in examples]
    return pieces, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", action=_Input, metavar="DIR", help="a folder of pieces (repeatable)")
    ap.add_argument(
        "--include", action=_Input, metavar="GLOB", help="names to take from the --input before it (default *)"
    )
    ap.add_argument("--set", action=_Input, metavar="DIR:GLOB", help="folder and glob in one (repeatable)")
    ap.add_argument("--seconds", type=float, default=60.0, help="first N seconds of each piece")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0, help="seeds the effects per piece and which room each piece gets")
    ap.add_argument(
        "--rooms", type=int, default=32, help="size of the validation room bank (at least the number of pieces)"
    )
    ap.add_argument("--cache", type=Path, default=Path("cache/rooms"), help="where room banks are cached")
    ap.add_argument(
        "--bank-seed",
        type=int,
        default=VALIDATION_SEED,
        help=f"seeds the room bank (default {VALIDATION_SEED}, room_val's rooms); another seed gives other rooms, e.g. for a tuning set kept apart from room_val",
    )
    ap.add_argument(
        "--midi",
        type=Path,
        metavar="LIST",
        help="a text file of MIDI paths (one per line, relative to --midi-root), rendered through --soundfont",
    )
    ap.add_argument(
        "--midi-root", type=Path, default=Path("../shared/data"), help="what the --midi list's paths are relative to"
    )
    ap.add_argument("--soundfont", default="csound", help="soundfont name or .sf2 path for --midi (a held-out one)")
    ap.add_argument("--render-cache", type=Path, default=Path("cache/renders"), help="where --midi renders are cached")
    ap.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=STAGES,
        metavar="STAGE",
        help=f"stages of the chain left out ({', '.join(STAGES)})",
    )
    args = ap.parse_args(argv)
    if not getattr(args, "sets", None) and args.midi is None:
        ap.error("give at least one --input DIR (or --set DIR:GLOB, or --midi LIST)")

    pieces: dict[str, Piece] = {}
    errors = 0
    if args.midi is not None:
        rendered, failed = render_midi_list(args.midi, args.midi_root, args.soundfont, args.render_cache, args.seconds)
        errors += failed
        pieces.update({p.name: p for p in rendered})
    for folder, glob in getattr(args, "sets", None) or []:
        if not Path(folder).is_dir():
            print(f"error: {folder}: not a folder", file=sys.stderr)
            errors += 1
            continue
        found = find_pieces(Path(folder), glob)
        if not found:
            print(f"warning: {folder}: nothing matches {glob!r} (with a .tsv beside it)", file=sys.stderr)
        for p in found:
            if p.name in pieces:
                print(
                    f"error: {p.audio}: name {p.name} already taken by {pieces[p.name].audio}; skipped", file=sys.stderr
                )
                errors += 1
            else:
                pieces[p.name] = p
    if not pieces:
        print("error: no pieces found", file=sys.stderr)
        return 1

    bank = RoomBank(max(args.rooms, len(pieces)), args.bank_seed, VALIDATION_ROOMS, args.cache)
    if bank.build_seconds:
        print(f"room bank: {len(bank)} validation rooms built in {bank.build_seconds:.1f} s, cached at {bank.path}")
    # a permutation, so that every piece gets a room of its own
    order = np.random.default_rng(args.seed).permutation(len(bank))
    augmenter = Augmenter(1.0, bank, skip=tuple(args.skip))
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for k, piece in enumerate(sorted(pieces.values(), key=lambda p: p.name)):
        room = int(order[k])
        try:
            info = make_piece(piece, args.out, args.seconds, augmenter, room, args.seed)
        except Exception as exc:  # one bad input is reported and skipped; the others go on
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            named = any(str(p) in reason for p in (piece.audio, piece.notes, pedal_tsv_path(piece.notes)))
            print(f"error: {reason if named else f'{piece.audio}: {reason}'}", file=sys.stderr)
            errors += 1
            continue
        source, close, far = bank.positions[room]
        info.update(
            room=room, rt60=round(float(bank.rt60[room]), 2), size=[round(float(v), 1) for v in bank.sizes[room]]
        )
        info.update(
            close_m=round(float(np.linalg.norm(close - source)), 2), far_m=round(float(np.linalg.norm(far - source)), 2)
        )
        if args.skip:
            info["skipped_stages"] = list(args.skip)
        manifest[piece.name] = info
        print(
            f"{args.out / piece.name}.flac: {info['seconds']:.1f} s, {info['notes']} notes{' + pedal' if info['pedal'] else ''}, "
            f"room {room} (RT60 {info['rt60']} s, {'x'.join(str(v) for v in info['size'])} m, mics {info['close_m']}/{info['far_m']} m), "
            f"RMS {info['rms_dbfs']} dBFS, peak {info['peak']}"
        )
    manifest_path = args.out / "rooms.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    with atomic_path(manifest_path, root=None) as tmp:
        tmp.write_text(json.dumps({**old, **manifest}, indent=2, sort_keys=True) + "\n")
    total = sum(v["seconds"] for v in manifest.values())
    print(f"{len(manifest)} pieces, {total:.0f} s, in {args.out}" + (f"; {errors} error(s)" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
