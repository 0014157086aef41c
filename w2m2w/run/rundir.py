"""The run-directory contract: stage paths, sidecars, current-output checks, lock paths.

RUN_DIR/run.json, RUN_DIR/<n>-<stage>/<piece>.<ext> and a <piece>.json sidecar
next to each output (see DESIGN.md). Everything here is a plain function of
paths and dicts so the pipeline, the tests and other tools share one definition;
writing goes through w2m2w.files (atomic, guarded by the run folder as `root`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from w2m2w.files import temp_name
from w2m2w.run.discovery import input_kind
from w2m2w.run.piece_ids import check_piece_id

STAGES = ("transcribe", "generate", "synthesize")
STAGE_EXT = {"transcribe": ".mid", "generate": ".mid", "synthesize": ".wav"}


def stage_dir(run_dir: str | os.PathLike, stage: str) -> Path:
    """RUN_DIR/1-transcribe, RUN_DIR/2-generate, RUN_DIR/3-synthesize."""
    return Path(run_dir) / f"{STAGES.index(stage) + 1}-{stage}"


def output_path(run_dir: str | os.PathLike, stage: str, piece: str) -> Path:
    """RUN_DIR/<n>-<stage>/<piece><ext>; the piece id is checked first (UnsafePieceIdError)."""
    return stage_dir(run_dir, stage) / f"{check_piece_id(piece)}{STAGE_EXT[stage]}"


# where each kind of input enters the pipeline: audio at transcribe; MIDI at generate (continue it) or synthesize (render it)
ENTRY_STAGES = {"audio": ("transcribe",), "midi": ("generate", "synthesize")}


class MissingInputError(RuntimeError):
    """A stage's input is not there: the previous stage's output, or the source file; the message says which."""


def stage_input(run_dir: str | os.PathLike, stage: str, piece: str, source: str | os.PathLike) -> Path:
    """The file `stage` reads for `piece`: the nearest earlier stage's output in the run folder, else the source.

    This is the contract that makes a rerun of a later stage read the run folder: `stages=[generate]`
    over a run made from a recording reads 1-transcribe/, `[synthesize]` reads 2-generate/. Only where
    no earlier output exists does a stage read the user's file, and only a stage that file can enter
    (ENTRY_STAGES); otherwise MissingInputError names the output that is missing.
    """
    earlier = STAGES[: STAGES.index(stage)]
    for prev in reversed(earlier):
        out = output_path(run_dir, prev, piece)
        if out.is_file():
            return out
    source = Path(source)
    if stage in ENTRY_STAGES.get(input_kind(source) or "", ()):
        if not source.is_file():
            raise MissingInputError(f"{source}: source not found (moved, renamed or unmounted?); the outputs already made for it are kept")
        return source
    prev = earlier[-1] if earlier else stage
    raise MissingInputError(f"{source}: no {prev} output at {output_path(run_dir, prev, piece)}; run stages=[{prev}] first")


def is_run_folder(folder: str | os.PathLike) -> bool:
    """True for a w2m2w run folder (run.json beside a stage folder): its files are outputs, never inputs."""
    folder = Path(folder)
    return (folder / "run.json").is_file() and any(stage_dir(folder, s).is_dir() for s in STAGES)


def sidecar_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name[: -len(output.suffix)] + ".json")


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


def writable_problem(run_dir: str | os.PathLike) -> str | None:
    """None when the run folder can be created and written (a probe file is made and deleted), else the reason."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = temp_name(run_dir / "probe")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{run_dir}: run folder is not writable ({exc.strerror or exc})"
    return None


def lock_path(run_dir: str | os.PathLike, stage: str, piece: str) -> Path:
    """RUN_DIR/.locks/<n>-<stage>/<piece>.lock: one lock per piece and stage, out of the stage folders (outputs only there)."""
    return Path(run_dir) / ".locks" / stage_dir(run_dir, stage).name / f"{check_piece_id(piece)}.lock"
