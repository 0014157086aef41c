"""Label the real piano recordings (shared/data/audio/real_cc0) with a teacher transcriber, Transkun V2: notes and sustain pedal.

    nohup nice -n 19 python scripts/label_real_teacher.py --threads 1 > /tmp/teacher.log 2>&1 &
    python scripts/label_real_teacher.py --only ishizaka_wtc1_prelude_no_3_in_c_sharp_major_bwv848   # one file
    python scripts/label_real_teacher.py --audio DIR --out DIR [--threads N] [--only NAME ...]

Needs the teacher in the venv: pip install --no-deps transkun==2.0.1 && pip install moduleconf soxr
(MIT; its weights, pretrained/2.0.pt, ship in the wheel). Transkun runs as benchmarks/transcribe_peers.py
runs it (load_transkun_model: the torchaudio stand-in first on sys.path in this process only, the checkpoint's
mel filterbank checked to have replaced the stand-in's; audio read with soundfile, resampled with soxr to
Transkun's 44.1 kHz, transcribed whole with discardSecondHalf=False).

For each audio file of --audio, OUT/<stem>.mid holds the teacher's notes (velocities as it predicts them)
and its sustain pedal as CC64 127 at each press and 0 at each lift (Transkun V2 transcribes the pedals as
events, pitch -64 for the sustain, -67 for the soft pedal; the soft pedal is counted in the sidecar, not
written). Notes are not lengthened by the pedal: the MIDI is what the teacher heard, as a performance MIDI
is. OUT/<stem>.json is the sidecar: teacher name, version and checkpoint sha256, audio sha256, duration,
note and pedal-press counts, wall seconds, command line. A file whose sidecar names the same audio and
checkpoint sha256 (and whose .mid is there) is skipped, so a rerun resumes. Both files are written under a
temporary name and renamed into place. A file that fails is one line on stderr naming it; the others go on,
and the exit status is 1. OUT/manifest.json sums up every piece and the split. These are pseudo-labels: a
transcriber's guess, not ground truth.

The split (scripts/real_cc0_split.json), by work, chosen once by hand and fixed: validation is 4 of the 12
files, 542 s of 1489 s (36%): the Goldberg Aria da Capo (the only Goldberg piece here), BWV 846 whole
(Prelude No. 1 in C, the clean prelude the team has already listened to, with its Fugue No. 1: a prelude
and its fugue share key and BWV number, so they stay on one side), and Prelude No. 5 in D (the shortest
WTC piece without a partner here, bringing the set to about a third). Training is the other 8 files,
947 s: BWV 847, 848 (prelude and fugue), 849, 851, 852, 855 (prelude and fugue). The script prints the minutes, notes
and pedal presses of each split from the sidecars.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

DEFAULT_AUDIO = ROOT / ".." / "shared" / "data" / "audio" / "real_cc0"
DEFAULT_OUT = Path("~/.cache/w2m2w/teacher/real_cc0")
SPLIT_FILE = Path(__file__).resolve().parent / "real_cc0_split.json"
AUDIO_EXTENSIONS = (".ogg", ".flac", ".wav", ".mp3", ".opus", ".m4a", ".aiff", ".aif")
TEACHER = "Transkun"
SUSTAIN_PITCH = -64  # Transkun's event "pitch" for the sustain pedal (minus the controller number)
SOFT_PITCH = -67


# --- pure parts -----------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def split_events(events: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transkun's events (objects with start, end, pitch, velocity) -> notes (n, 4), sustain (m, 2), soft pedal (k, 2).

    Keys have pitch > 0; a pedal event has minus its controller number as pitch (-64 sustain, -67 soft).
    """
    notes = np.array([[e.start, e.end, e.pitch, e.velocity] for e in events if e.pitch > 0], dtype=np.float64).reshape(
        -1, 4
    )
    sustain = np.array([[e.start, e.end] for e in events if e.pitch == SUSTAIN_PITCH], dtype=np.float64).reshape(-1, 2)
    soft = np.array([[e.start, e.end] for e in events if e.pitch == SOFT_PITCH], dtype=np.float64).reshape(-1, 2)
    return notes, sustain, soft


def labels_to_midi(notes: np.ndarray, sustain: np.ndarray):
    """A PrettyMIDI of `notes` (n, 4: onset, offset, pitch, velocity) with `sustain` (m, 2: press, lift seconds) as CC64 127/0.

    w2m2w.midi.notes_to_pretty_midi writes it: velocities rounded into 1..127, overlapping or touching
    presses joined, a press shorter than one MIDI tick left out.
    """
    from w2m2w.midi import notes_to_pretty_midi

    return notes_to_pretty_midi(notes, pedal=np.asarray(sustain, dtype=np.float64).reshape(-1, 2))


def midi_presses(pm) -> int:
    """How many CC64 presses (value >= 64) a PrettyMIDI holds: what was actually written."""
    return sum(1 for inst in pm.instruments for c in inst.control_changes if c.number == 64 and c.value >= 64)


def is_current(sidecar: dict | None, audio_sha256: str, teacher_sha256: str, has_midi: bool = True) -> bool:
    """Whether a sidecar already labels this audio with this teacher checkpoint, its MIDI there (then the file is skipped)."""
    if not sidecar or not has_midi:
        return False
    return (
        sidecar.get("audio", {}).get("sha256") == audio_sha256
        and sidecar.get("teacher", {}).get("checkpoint_sha256") == teacher_sha256
    )


def read_sidecar(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path onto `path` (same folder, so the rename is atomic)."""
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: Path, obj) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1) + "\n"))


def load_split(path: str | os.PathLike = SPLIT_FILE, stems: list[str] | None = None) -> dict[str, list[str]]:
    """{"val": [...], "train": [...]} from `path`; ValueError when they overlap, repeat a stem, or (given `stems`) do not cover exactly those."""
    split = json.loads(Path(path).read_text())
    val, train = list(split.get("val", [])), list(split.get("train", []))
    if not val or not train:
        raise ValueError(f"{path}: needs non-empty 'val' and 'train' lists")
    for name, part in (("val", val), ("train", train)):
        if len(set(part)) != len(part):
            raise ValueError(f"{path}: '{name}' repeats a stem")
    both = sorted(set(val) & set(train))
    if both:
        raise ValueError(f"{path}: in both val and train: {both}")
    if stems is not None:
        missing, extra = sorted(set(stems) - set(val) - set(train)), sorted((set(val) | set(train)) - set(stems))
        if missing or extra:
            raise ValueError(
                f"{path}: the split does not match the audio files: not in the split {missing}, not among the files {extra}"
            )
    return {"val": val, "train": train}


def summarize(sidecars: dict[str, dict | None], split: dict[str, list[str]]) -> dict:
    """Per split: files, files labelled, minutes, notes, pedal presses (from the labelled files' sidecars)."""
    out = {}
    for name, stems in split.items():
        done = [sidecars[s] for s in stems if sidecars.get(s)]
        out[name] = {
            "files": len(stems),
            "labelled": len(done),
            "minutes": round(sum(d["duration_s"] for d in done) / 60, 2),
            "notes": sum(d["notes"] for d in done),
            "pedal_presses": sum(d["pedal_presses"] for d in done),
        }
    return out


def find_audio(audio_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Audio files directly in `audio_dir`, sorted; with `only`, those whose stem or name is listed (an unknown name is an error)."""
    files = sorted(
        p
        for p in audio_dir.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )
    if only:
        wanted = set(only)
        unknown = sorted(wanted - {p.stem for p in files} - {p.name for p in files})
        if unknown:
            raise SystemExit(f"--only: no such audio file in {audio_dir}: {unknown}")
        files = [p for p in files if p.stem in wanted or p.name in wanted]
    return files


# --- the teacher ----------------------------------------------------------------------------------


def teacher_checkpoint() -> Path:
    """The checkpoint load_transkun loads: transkun/pretrained/2.0.pt inside the installed wheel."""
    import importlib.util

    spec = importlib.util.find_spec("transkun")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "Transkun is not installed: pip install --no-deps transkun==2.0.1 && pip install moduleconf soxr"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained" / "2.0.pt"


def load_teacher(threads: int):
    """Transkun loaded by benchmarks.transcribe_peers.load_transkun_model (stand-in, checkpoint checks), and a
    function audio -> (events, seconds) that keeps the pedal events beside the keys."""
    from benchmarks.transcribe_peers import load_transkun_model

    model, info = load_transkun_model(threads)
    fs = info["sample_rate"]

    def transcribe(audio: Path) -> tuple[list, float]:
        import soundfile as sf
        import soxr
        import torch

        y, sr = sf.read(str(audio), dtype="float32", always_2d=True)  # (samples, channels), as load_transkun reads
        seconds = len(y) / sr
        if sr != fs:
            y = soxr.resample(y, sr, fs)
        with torch.inference_mode():
            events = model.transcribe(torch.from_numpy(np.ascontiguousarray(y)), discardSecondHalf=False)
        return events, seconds

    return transcribe, info


def label_file(
    audio: Path, out_dir: Path, transcribe, teacher: dict, audio_sha: str, command: str, threads: int
) -> dict:
    """Transcribe `audio`, write OUT/<stem>.mid then OUT/<stem>.json; the sidecar."""
    t0 = time.perf_counter()
    events, seconds = transcribe(audio)
    notes, sustain, soft = split_events(events)
    pm = labels_to_midi(notes, sustain)
    wall = time.perf_counter() - t0
    if len(notes) and (notes[:, 2].min() < 21 or notes[:, 2].max() > 108):
        raise ValueError(f"pitches outside the piano: {notes[:, 2].min():.0f}..{notes[:, 2].max():.0f}")
    written = sum(len(inst.notes) for inst in pm.instruments)
    sidecar = {
        "teacher": teacher,
        "audio": {"name": audio.name, "sha256": audio_sha},
        "duration_s": round(seconds, 3),
        "notes": written,
        "pedal_presses": midi_presses(pm),
        "teacher_sustain_events": len(sustain),
        "soft_pedal_presses": len(soft),  # counted, not written
        "pitch_range": [int(notes[:, 2].min()), int(notes[:, 2].max())] if len(notes) else None,
        "last_offset_s": round(float(notes[:, 1].max()), 3) if len(notes) else None,
        "wall_s": round(wall, 1),
        "threads": threads,
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(out_dir / f"{audio.stem}.mid", lambda tmp: pm.write(str(tmp)))
    write_json_atomic(out_dir / f"{audio.stem}.json", sidecar)
    return sidecar


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--audio",
        type=Path,
        default=DEFAULT_AUDIO,
        help="folder of the recordings (default: ../shared/data/audio/real_cc0 from the repo root)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where the labels go, outside the repository (default: %(default)s)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these files (stem or file name)")
    ap.add_argument(
        "--split",
        type=Path,
        default=SPLIT_FILE,
        help="the val/train split by piece (default: scripts/real_cc0_split.json)",
    )
    args = ap.parse_args(argv)

    audio_dir, out_dir = args.audio.expanduser().resolve(), args.out.expanduser().resolve()
    if not audio_dir.is_dir():
        print(f"no audio folder {audio_dir}", file=sys.stderr)
        return 2
    all_files = find_audio(audio_dir)
    split = load_split(args.split, [p.stem for p in all_files])
    files = find_audio(audio_dir, args.only)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = (
        shlex.join(["python", *sys.argv])
        if argv is None
        else shlex.join(["python", "scripts/label_real_teacher.py", *argv])
    )

    ckpt = teacher_checkpoint()
    teacher = {
        "name": TEACHER,
        "version": f"{version('transkun')} (pretrained 2.0.pt)",
        "checkpoint": "transkun/pretrained/2.0.pt",
        "checkpoint_sha256": sha256_file(ckpt),
    }
    todo = []
    for audio in files:
        audio_sha = sha256_file(audio)
        if is_current(
            read_sidecar(out_dir / f"{audio.stem}.json"),
            audio_sha,
            teacher["checkpoint_sha256"],
            (out_dir / f"{audio.stem}.mid").is_file(),
        ):
            print(f"{audio.stem}: labelled already, skipped", flush=True)
        else:
            todo.append((audio, audio_sha))
    print(
        f"{len(files)} file(s), {len(todo)} to label into {out_dir}; teacher checkpoint sha256 {teacher['checkpoint_sha256']}",
        flush=True,
    )

    failed = []
    if todo:
        transcribe, info = load_teacher(args.threads)
        print(
            f"Transkun loaded in {info['load_s']:.1f} s ({info['params_m']} M parameters), threads={args.threads}",
            flush=True,
        )
        for i, (audio, audio_sha) in enumerate(todo, 1):
            try:
                s = label_file(audio, out_dir, transcribe, teacher, audio_sha, command, args.threads)
            except Exception as e:  # one bad file is one line; the others go on
                failed.append(audio.name)
                print(f"FAILED {audio.name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                continue
            print(
                f"[{i}/{len(todo)}] {audio.stem}: {s['duration_s']:.1f} s audio, {s['notes']} notes, {s['pedal_presses']} pedal presses, "
                f"{s['soft_pedal_presses']} soft-pedal presses (not written), {s['wall_s']:.0f} s",
                flush=True,
            )

    sidecars = {p.stem: read_sidecar(out_dir / f"{p.stem}.json") for p in all_files}
    side_of = {s: name for name, stems in split.items() for s in stems}
    pieces = [
        {
            "stem": stem,
            "split": side_of[stem],
            **(
                {k: sc[k] for k in ("duration_s", "notes", "pedal_presses", "soft_pedal_presses", "wall_s")}
                if sc
                else {"missing": True}
            ),
        }
        for stem, sc in sidecars.items()
    ]
    totals = summarize(sidecars, split)
    manifest = {
        "teacher": teacher,
        "audio_dir": str(audio_dir),
        "split_file": str(args.split),
        "splits": totals,
        "pieces": pieces,
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    for name, t in totals.items():
        print(
            f"{name}: {t['labelled']}/{t['files']} files labelled, {t['minutes']:.1f} min, {t['notes']} notes, {t['pedal_presses']} pedal presses"
        )
    if failed:
        print(f"{len(failed)} file(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
