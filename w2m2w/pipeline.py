"""Runs stages over pieces following the run-directory contract (no Hydra here).

A stage is a module with NAME, `settings(cfg) -> dict` (what decides its
output, hashed into the sidecar), `weights_file(cfg) -> Path | None`, and
`run(cfg, job, run_dir) -> dict` that writes `job.output` and returns stats.
The pipeline decides what is current, writes atomically, records sidecars and
keeps going when a piece fails.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from . import __version__
from .io_errors import write_failure
from .staging import (STAGES, LockedError, atomic_path, file_lock, file_sha256, input_kind, inside_run_dir, is_current, lock_path, make_dirs,
                      output_path, read_sidecar, remove_file, remove_output, replace_file, sidecar_path, temp_name, write_json)
from .stopping import Interrupted

log = logging.getLogger("w2m2w")


class StageError(RuntimeError):
    """A piece cannot go through a stage; the message is the one line the user sees."""


@dataclass
class StageJob:
    piece: str
    source: Path  # the user's input file
    input: Path  # the file this stage reads (source or an earlier stage's output)
    output: Path  # temporary path the stage writes; renamed into place on success


@dataclass
class PieceResult:
    piece: str
    source: str
    status: str = "done"  # done | current | failed | skipped | locked | interrupted
    error: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_stages(stages: list[str]) -> list[str]:
    """Validate a contiguous, ordered subset of STAGES."""
    stages = list(stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"stages must be a non-empty contiguous subset of {list(STAGES)}, got {stages}")
    idx = [STAGES.index(s) for s in stages]
    if idx != list(range(idx[0], idx[0] + len(idx))):
        raise ValueError(f"stages must be contiguous and in order {list(STAGES)}, got {stages}")
    return stages


class Hashes:
    """sha256 of files, each computed once per process (weights files are large)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, float, int], str] = {}

    def __call__(self, path: Path) -> str:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime, st.st_size)
        if key not in self._cache:
            self._cache[key] = file_sha256(path)
        return self._cache[key]


Event = Callable[[str, str, dict[str, Any]], None]  # (piece, stage, stage result) after each stage


def _reuse(out: Path, stage: str, piece: str, run_dir: Path, reuse_dirs: list[Path], in_hash: str, c_hash: str, w_hash: str | None) -> Path | None:
    """Copy a current output of another run directory (same input, settings and weights) into `out`.

    This is how a sweep over a later stage's settings computes the earlier stages once:
    its jobs look in each other's run directories before computing anything.
    """
    for d in reuse_dirs:
        cand = output_path(d, stage, piece)
        if cand.resolve() == out.resolve() or not is_current(cand, in_hash, c_hash, w_hash):
            continue
        side = read_sidecar(cand) or {}
        with atomic_path(out, root=run_dir) as tmp:
            try:
                os.link(cand, tmp)  # same file system: no copy at all
            except OSError:
                shutil.copyfile(cand, tmp)
        write_json(sidecar_path(out), {**side, "reused_from": str(cand)}, root=run_dir)
        return cand
    return None


def stages_for(source: Path, stages: list[str]) -> list[str]:
    """The stages a piece goes through: MIDI enters at generate."""
    return stages[1:] if input_kind(source) == "midi" and stages and stages[0] == "transcribe" else list(stages)


def stage_input(stage: str, first: str, source: Path, run_dir: Path, piece: str) -> Path:
    """What `stage` reads: the user's file for the piece's first stage, else the previous stage's output."""
    if stage == first:
        return source
    return output_path(run_dir, STAGES[STAGES.index(stage) - 1], piece)


def _hashes(mod: ModuleType, cfg: Any, inp: Path, hashes: Hashes) -> tuple[dict[str, Any], Path | None, str, str, str | None]:
    """settings, weights file, and the three hashes that decide whether an output is current."""
    from .staging import config_hash

    settings = mod.settings(cfg)
    weights = mod.weights_file(cfg)
    w_hash = hashes(weights) if weights is not None and weights.is_file() else None
    return settings, weights, hashes(inp), config_hash(settings), w_hash


def _reason(exc: BaseException, source: Path, out: Path) -> str:
    """The one line a failure shows: the source first, then what went wrong (a full disk named as such)."""
    msg = write_failure(exc, out) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if not isinstance(exc, (StageError, ValueError, OSError, RuntimeError)):
        log.debug("%s", traceback.format_exc())
    if not msg.startswith(str(source)) and str(source) not in msg:
        msg = f"{source}: {msg}"
    return msg


def run_piece(piece: str, source: Path, stages: list[str], modules: dict[str, ModuleType], cfgs: dict[str, Any], run_dir: Path,
              force: bool = False, hashes: Hashes | None = None, reuse_dirs: list[Path] | None = None, on_event: Event | None = None) -> PieceResult:
    """Take one piece through `stages`; never raises for a bad input, the result says what happened.

    Each stage of the piece runs under a lock (RUN_DIR/.locks/<stage>/<piece>.lock), so two runs
    sharing a run directory never write the same output; the second one reports the piece as locked.
    A stop request (Interrupted) ends the piece with its temporary files removed, status 'interrupted'.
    """
    hashes = hashes or Hashes()
    result = PieceResult(piece, str(source))
    kind = input_kind(source)
    todo = stages_for(source, stages)
    if not todo:
        result.status = "skipped"
        result.error = f"{source}: MIDI input, nothing to transcribe"
        return result
    any_ran = False

    def finish(stage: str, info: dict[str, Any]) -> None:  # record a stage's result and tell the listener
        result.stages[stage] = info
        if on_event:
            on_event(piece, stage, info)

    for stage in todo:
        mod, cfg = modules[stage], cfgs[stage]
        out = output_path(run_dir, stage, piece)
        inp = stage_input(stage, todo[0], source, run_dir, piece)
        tmp: Path | None = None
        try:
            if kind is None:
                raise StageError(f"{source}: not an audio or MIDI file (extension {source.suffix or 'none'})")
            with file_lock(lock_path(run_dir, stage, piece), f"{piece} ({stage})", root=run_dir):
                if not inp.is_file():
                    raise StageError(f"{source}: no such file" if inp == source else f"{source}: no {STAGES[STAGES.index(stage) - 1]} output at {inp}; run that stage first")
                settings, weights, in_hash, c_hash, w_hash = _hashes(mod, cfg, inp, hashes)
                if not force and is_current(out, in_hash, c_hash, w_hash):
                    finish(stage, {"status": "current", **((read_sidecar(out) or {}).get("stats") or {})})
                    log.info("[%s] %s: current, skipped", stage, piece)
                    continue
                if not force and reuse_dirs and (found := _reuse(out, stage, piece, run_dir, reuse_dirs, in_hash, c_hash, w_hash)) is not None:
                    finish(stage, {"status": "reused", "from": str(found), **((read_sidecar(out) or {}).get("stats") or {})})
                    log.info("[%s] %s: reused %s", stage, piece, found)
                    any_ran = True
                    continue
                make_dirs(out.parent, root=run_dir)
                tmp = inside_run_dir(run_dir, temp_name(out))
                t0 = time.time()
                try:
                    stats = mod.run(cfg, StageJob(piece, source, inp, tmp), run_dir)
                    if not tmp.is_file():
                        raise StageError(f"{source}: stage {stage} wrote no output")
                    elapsed = time.time() - t0
                    if weights is not None and w_hash is None:
                        w_hash = hashes(weights)  # a stage may create its weights (e.g. fluidsynth has none)
                    side = {
                        "stage": stage, "piece": piece, "source": str(source), "input": str(inp),
                        "input_sha256": in_hash, "config_hash": c_hash, "settings": settings,
                        "weights": str(weights) if weights is not None else None, "weights_sha256": w_hash,
                        "w2m2w_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "timings": {"seconds": round(elapsed, 3)}, "stats": stats,
                    }
                    # output first, sidecar last: an output without its sidecar is never taken as current
                    remove_output(out, root=run_dir)
                    replace_file(tmp, out, root=run_dir)
                    write_json(sidecar_path(out), side, root=run_dir)
                finally:
                    remove_file(tmp, root=run_dir)
            any_ran = True
            finish(stage, {"status": "done", "seconds": round(elapsed, 3), **stats})
            log.info("[%s] %s: %s", stage, piece, ", ".join(f"{k}={v}" for k, v in stats.items() if not isinstance(v, (dict, list))))
        except LockedError as exc:  # another run is writing this output: leave it alone, say so
            result.status, result.error = "locked", str(exc)
            log.warning("[%s] %s", stage, exc)
            finish(stage, {"status": "locked", "error": str(exc)})
            return result
        except (Interrupted, KeyboardInterrupt):  # told to stop: this piece ends here, its old outputs as they were
            if tmp is not None:
                remove_file(tmp, root=run_dir)
            result.status, result.error = "interrupted", f"{source}: interrupted during {stage}"
            log.warning("[%s] %s: interrupted", stage, piece)
            finish(stage, {"status": "interrupted"})
            return result
        except Exception as exc:  # one bad piece never stops the batch
            msg = _reason(exc, source, out)
            remove_output(out, root=run_dir)  # a stale result of an older input must not look like this one's
            result.status, result.error = "failed", msg
            log.error("[%s] %s", stage, msg)
            finish(stage, {"status": "failed", "error": msg})
            return result
    result.status = "done" if any_ran else "current"
    return result


def settle_locked(result: PieceResult, stages: list[str], modules: dict[str, ModuleType], cfgs: dict[str, Any], run_dir: Path,
                  hashes: Hashes | None = None) -> PieceResult:
    """A piece that another run held: done if every stage's output is now current, whoever computed it.

    The summary and report describe the run folder as it is at the end of the run, not as it
    was when this run found the piece locked. A piece still being written stays 'locked'.
    """
    if result.status != "locked":
        return result
    hashes = hashes or Hashes()
    source = Path(result.source)
    todo = stages_for(source, stages)
    infos: dict[str, dict[str, Any]] = {}
    for stage in todo:
        mine = result.stages.get(stage) or {}
        if mine.get("status") in ("done", "current", "reused"):
            infos[stage] = mine
            continue
        out = output_path(run_dir, stage, result.piece)
        inp = stage_input(stage, todo[0], source, run_dir, result.piece)
        try:
            _, _, in_hash, c_hash, w_hash = _hashes(modules[stage], cfgs[stage], inp, hashes)
        except OSError:
            return result
        if not is_current(out, in_hash, c_hash, w_hash):
            return result
        side = read_sidecar(out) or {}
        infos[stage] = {"status": "done", "by": "another run", "seconds": (side.get("timings") or {}).get("seconds"), **(side.get("stats") or {})}
    return PieceResult(result.piece, result.source, "done", None, infos)


def summarize(results: list[PieceResult]) -> dict[str, Any]:
    """counts per status, failed piece -> reason, and every piece's status, error and per-stage results."""
    return count_pieces({r.piece: {"source": r.source, "status": r.status, "error": r.error, "stages": r.stages} for r in results})


def count_pieces(pieces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for p in pieces.values():
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    return {"counts": counts, "failed": {k: p["error"] for k, p in pieces.items() if p["status"] == "failed"}, "pieces": pieces}


def merge_summaries(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` over `old`, piece by piece (the shards of one input each add theirs), counts recomputed."""
    return {**old, **new, **count_pieces({**old.get("pieces", {}), **new["pieces"]})}
