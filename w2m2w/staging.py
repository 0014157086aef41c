"""The run-directory contract: piece ids, stage paths, sidecars, current-output checks, atomic writes.

RUN_DIR/run.json, RUN_DIR/<n>-<stage>/<piece>.<ext> and a <piece>.json sidecar
next to each output (see DESIGN.md). Everything here is a plain function of
paths and dicts so the pipeline, the tests and other tools share one definition.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from .audio import AUDIO_EXTENSIONS
from .checkpoint import sha256_file

MIDI_EXTENSIONS = (".mid", ".midi")
LIST_EXTENSIONS = (".txt", ".lst", ".list")
STAGES = ("transcribe", "generate", "synthesize")
STAGE_EXT = {"transcribe": ".mid", "generate": ".mid", "synthesize": ".wav"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class InputError(ValueError):
    """The input specification found nothing usable; the message names it."""


def stage_dir(run_dir: str | os.PathLike, stage: str) -> Path:
    """RUN_DIR/1-transcribe, RUN_DIR/2-generate, RUN_DIR/3-synthesize."""
    return Path(run_dir) / f"{STAGES.index(stage) + 1}-{stage}"


def output_path(run_dir: str | os.PathLike, stage: str, piece: str) -> Path:
    return stage_dir(run_dir, stage) / f"{piece}{STAGE_EXT[stage]}"


def sidecar_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name[: -len(output.suffix)] + ".json")


def safe_component(name: str) -> str:
    """A path component with unsafe characters replaced; never empty, '.', '..' or hidden."""
    s = _UNSAFE.sub("_", name).strip()
    s = s.lstrip(".") or "_"
    return s


def piece_id(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """The input's path relative to `root`, without extension, made safe: 'a/b c.wav' -> 'a/b_c'."""
    rel = Path(os.path.relpath(Path(path).resolve(), Path(root).resolve()))
    parts = [p for p in rel.parts if p not in ("", ".")]
    if not parts or parts[0] == "..":
        parts = [Path(path).name]
    parts[-1] = Path(parts[-1]).stem if Path(parts[-1]).suffix else parts[-1]
    return "/".join(safe_component(p) for p in parts)


def input_kind(path: str | os.PathLike) -> str | None:
    """'audio', 'midi' or None by extension."""
    ext = Path(path).suffix.lower()
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in MIDI_EXTENSIONS:
        return "midi"
    return None


def _walk(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and input_kind(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def discover_inputs(spec: str | os.PathLike) -> dict[str, Path]:
    """Piece id -> input path for an audio/MIDI file, a folder (recursive), a glob or a text file of paths.

    Piece ids mirror the tree under the input root; two inputs that would map
    to one id (a.wav and a.flac) keep their extension to stay apart. Files of
    other types given explicitly are kept, so the pipeline reports them by name.
    """
    spec_s = str(spec)
    p = Path(spec_s).expanduser()
    if p.is_dir():
        files, root = _walk(p), p
        if not files:
            raise InputError(f"{p}: folder holds no audio or MIDI files")
    elif p.is_file() and p.suffix.lower() in LIST_EXTENSIONS:
        base = p.parent
        files = []
        for line in p.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                q = Path(line).expanduser()
                files.append(q if q.is_absolute() else base / q)
        if not files:
            raise InputError(f"{p}: list of inputs is empty")
        root = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
    elif p.is_file():
        files, root = [p], p.parent
    elif glob.has_magic(spec_s):
        matches = [Path(m) for m in sorted(glob.glob(spec_s, recursive=True))]
        files = sorted({f for m in matches for f in (_walk(m) if m.is_dir() else [m])})
        if not files:
            raise InputError(f"{spec_s}: pattern matches no files")
        prefix = spec_s[: min(spec_s.find(c) for c in "*?[" if c in spec_s)]
        root = Path(prefix) if prefix.endswith(os.sep) else (Path(prefix).parent if prefix else Path("."))
    else:
        raise InputError(f"{spec_s}: no such file or folder")
    out: dict[str, Path] = {}
    for f in files:
        pid = piece_id(f, root)
        if pid in out:
            pid = f"{pid}_{safe_component(f.suffix.lstrip('.'))}"
        out[pid] = f
    return out


def config_hash(cfg: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a stage's settings."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def read_sidecar(output: str | os.PathLike) -> dict[str, Any] | None:
    try:
        return json.loads(sidecar_path(output).read_text())
    except (OSError, ValueError):
        return None


def is_current(output: str | os.PathLike, input_sha256: str, cfg_hash: str, weights_sha256: str | None) -> bool:
    """True when the output and its sidecar exist and the sidecar's three hashes match."""
    if not Path(output).is_file():
        return False
    side = read_sidecar(output)
    if side is None:
        return False
    return side.get("input_sha256") == input_sha256 and side.get("config_hash") == cfg_hash and side.get("weights_sha256") == weights_sha256


def temp_name(path: Path) -> Path:
    """A hidden temporary name next to `path` that says which process made it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Atomically write `data` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}")


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by processes that no longer run (an interrupted run)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for f in folder.rglob(".*.tmp-*"):
        m = _TMP_RE.match(f.name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                removed.append(f)
    return removed


def remove_output(output: str | os.PathLike) -> None:
    """Drop an output and its sidecar (used when recomputing it failed, so no stale result stays)."""
    for f in (Path(output), sidecar_path(output)):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


class LockedError(RuntimeError):
    """Another process holds the lock; the message says which file and, when known, who."""


def lock_path(run_dir: str | os.PathLike, stage: str, piece: str) -> Path:
    """RUN_DIR/.locks/<n>-<stage>/<piece>.lock: one lock per piece and stage, out of the stage folders (outputs only there)."""
    return Path(run_dir) / ".locks" / stage_dir(run_dir, stage).name / f"{piece}.lock"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on `path` for the block, or raise LockedError.

    flock is released by the kernel when the holder exits, however it exits, so a
    crashed run never leaves a piece locked. Lock files stay behind on purpose:
    deleting one while another process opens it would let two holders in.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise LockedError(f"{what or path}: held by another process ({holder or 'unknown'}); skipped here, that run writes it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_json(path: str | os.PathLike, update: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Read JSON at `path` ({} if missing), apply `update`, write it back atomically, all under a lock.

    Runs that share a run directory (two users, or N cluster shards) merge their parts this way,
    so none drops what another wrote.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: holders only read and write a small file
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data = update(data)
        write_json(path, data)
    finally:
        os.close(fd)
    return data


def update_run_json(run_dir: str | os.PathLike, inputs: dict[str, dict[str, Any]], version: str) -> dict[str, Any]:
    """Merge piece inputs (id -> {source, sha256, kind}) into RUN_DIR/run.json and return it."""

    def merge(data: dict[str, Any]) -> dict[str, Any]:
        data.setdefault("inputs", {}).update(inputs)
        data["w2m2w_version"] = version
        return data

    return update_json(Path(run_dir) / "run.json", merge)


def file_sha256(path: str | os.PathLike) -> str:
    return sha256_file(path)
