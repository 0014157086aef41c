"""The run-directory contract: stage paths, sidecars, current-output checks, lock paths.

RUN_DIR/run.json, RUN_DIR/<n>-<stage>/<piece>.<ext> and a <piece>.json sidecar
next to each output (see DESIGN.md). Everything here is a plain function of
paths and dicts so the pipeline, the tests and other tools share one definition;
writing goes through w2m2w.files (atomic, guarded by the run folder as `root`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2m2w.files import (
    atomic_path,
    file_lock,
    inside_run_dir,
    make_dirs,
    remove_file,
    remove_stale_temps,
    replace_file,
    temp_name,
    update_json,
    write_json,
)
from w2m2w.finding import input_kind
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
            raise MissingInputError(
                f"{source}: source not found (moved, renamed or unmounted?); the outputs already made for it are kept"
            )
        return source
    prev = earlier[-1] if earlier else stage
    raise MissingInputError(
        f"{source}: no {prev} output at {output_path(run_dir, prev, piece)}; run stages=[{prev}] first"
    )


def is_run_folder(folder: str | os.PathLike) -> bool:
    """True for a w2m2w run folder (run.json beside a stage folder): its files are outputs, never inputs."""
    folder = Path(folder)
    return (folder / "run.json").is_file() and any(stage_dir(folder, s).is_dir() for s in STAGES)


def sidecar_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name[: -len(output.suffix)] + ".json")


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
    return (
        side.get("input_sha256") == input_sha256
        and side.get("config_hash") == cfg_hash
        and side.get("weights_sha256") == weights_sha256
    )


PROBE_BYTES = 64 * 1024  # about what Hydra's record of a call takes: a disk that cannot hold it is full for a run


def writable_problem(run_dir: str | os.PathLike) -> str | None:
    """None when the run folder can be created and written (a probe of PROBE_BYTES is written and deleted), else the reason.

    The probe holds bytes, not nothing: an empty file is created even on a full disk, and then
    Hydra's first write of its record would fail with a traceback instead of this one line.
    """
    run_dir = Path(run_dir)
    probe = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = temp_name(run_dir / "probe")
        with open(probe, "wb") as f:
            f.write(bytes(PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return f"{run_dir}: the disk is full (no space left on device); free some space or give another run_dir"
        return f"{run_dir}: run folder is not writable ({exc.strerror or exc})"
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.unlink()
    return None


def lock_path(run_dir: str | os.PathLike, stage: str, piece: str) -> Path:
    """RUN_DIR/.locks/<n>-<stage>/<piece>.lock: one lock per piece and stage, out of the stage folders (outputs only there)."""
    return Path(run_dir) / ".locks" / stage_dir(run_dir, stage).name / f"{check_piece_id(piece)}.lock"


@dataclass(frozen=True)
class RunDir:
    """One run folder and every write into it: the paths of the contract above, and w2m2w.files' guarded writes
    with the folder as their `root`, so a caller holds one object instead of passing `root=run_dir` to each helper."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def summary_json(self) -> Path:
        return self.path / "summary.json"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    def stage_dir(self, stage: str) -> Path:
        return stage_dir(self.path, stage)

    def output(self, stage: str, piece: str) -> Path:
        return output_path(self.path, stage, piece)

    def stage_input(self, stage: str, piece: str, source: str | os.PathLike) -> Path:
        return stage_input(self.path, stage, piece, source)

    def lock(self, stage: str, piece: str, what: str = "") -> AbstractContextManager[None]:
        """The lock of one piece's output of `stage` (lock_path), held while it is written."""
        return file_lock(lock_path(self.path, stage, piece), what, root=self.path)

    def writable_problem(self) -> str | None:
        return writable_problem(self.path)

    def atomic(self, path: str | os.PathLike) -> AbstractContextManager[Path]:
        return atomic_path(path, root=self.path)

    def write_json(self, path: str | os.PathLike, data: Any) -> None:
        write_json(path, data, root=self.path)

    def update_json(
        self, path: str | os.PathLike, update: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        return update_json(path, update, root=self.path)

    def make_dirs(self, folder: str | os.PathLike) -> Path:
        return make_dirs(folder, root=self.path)

    def replace(self, src: str | os.PathLike, dst: str | os.PathLike) -> None:
        replace_file(src, dst, root=self.path)

    def remove(self, path: str | os.PathLike) -> bool:
        return remove_file(path, root=self.path)

    def temp_for(self, path: Path) -> Path:
        """The temporary name `path` is written under before its rename, checked to lie inside the folder."""
        return inside_run_dir(self.path, temp_name(path))

    def remove_stale_temps(self, stage: str) -> list[Path]:
        return remove_stale_temps(self.stage_dir(stage), root=self.path)
