"""Takes pieces through stages following the run-directory contract (no Hydra here).

A stage (w2m2w.run.stage.Stage, paired with its settings as a Configured) writes one
piece's output to a temporary path and returns stats. This module decides what is
current, reuses what another run directory already computed, writes atomically,
records sidecars and keeps going when a piece fails.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2m2w.constants import __version__
from w2m2w.files import LockedError, file_sha256
from w2m2w.finding import input_kind
from w2m2w.run.io_errors import write_failure
from w2m2w.run.rundir import MissingInputError, RunDir, is_current, read_sidecar, sidecar_path
from w2m2w.run.stage import Configured, StageError, StageJob
from w2m2w.run.stopping import Interrupted

log = logging.getLogger("w2m2w")


@dataclass
class PieceResult:
    piece: str
    source: str
    status: str = "done"  # done | current | failed | skipped | locked | interrupted
    error: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Plan:
    """What every piece of a run goes through, and where; picklable, so it travels to worker processes and Ray actors."""

    stages: list[Configured]
    run_dir: RunDir  # a Path is taken as its RunDir
    force: bool = False  # recompute current outputs
    reuse_dirs: list[Path] = field(default_factory=list)  # other run directories whose current outputs are copied

    def __post_init__(self) -> None:
        if not isinstance(self.run_dir, RunDir):
            self.run_dir = RunDir(self.run_dir)


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


@dataclass
class _Step:
    """One stage of one piece: where it reads and writes, and the hashes that decide whether its output is current."""

    stage: Configured
    input: Path
    output: Path
    in_hash: str = ""
    weights: Path | None = None
    w_hash: str | None = None

    def hash(self, hashes: Hashes) -> _Step:
        self.weights = self.stage.weights_file()
        self.w_hash = hashes(self.weights) if self.weights is not None and self.weights.is_file() else None
        self.in_hash = hashes(self.input)
        return self

    @property
    def extras(self) -> dict[str, Path]:
        """The side outputs' final paths, by suffix: beside the output, same name."""
        return {sfx: self.output.with_suffix(sfx) for sfx in self.stage.side_outputs()}

    def is_current(self) -> bool:
        return is_current(self.output, self.in_hash, self.stage.settings_hash, self.w_hash) and all(
            p.is_file() for p in self.extras.values()
        )


def stages_for(source: Path, stages: list[Configured]) -> list[Configured]:
    """The stages a piece goes through: MIDI enters at generate."""
    return stages[1:] if input_kind(source) == "midi" and stages and stages[0].name == "transcribe" else list(stages)


def _step(stage: Configured, source: Path, run_dir: RunDir, piece: str) -> _Step:
    """What `stage` reads (RunDir.stage_input: the run folder's previous output, else the source) and writes."""
    return _Step(stage, run_dir.stage_input(stage.name, piece, source), run_dir.output(stage.name, piece))


def _reuse(step: _Step, piece: str, plan: Plan) -> Path | None:
    """Copy a current output of another run directory (same input, settings and weights) into step.output.

    This is how a sweep over a later stage's settings computes the earlier stages once:
    its jobs look in each other's run directories before computing anything.
    """
    out, run_dir = step.output, plan.run_dir
    for d in plan.reuse_dirs:
        cand = RunDir(d).output(step.stage.name, piece)
        extras = {final: cand.with_suffix(sfx) for sfx, final in step.extras.items()}
        if (
            cand.resolve() == out.resolve()
            or not is_current(cand, step.in_hash, step.stage.settings_hash, step.w_hash)
            or not all(src.is_file() for src in extras.values())
        ):
            continue
        side = read_sidecar(cand) or {}
        for final, src in [*extras.items(), (out, cand)]:  # the output last: its sidecar follows it
            with run_dir.atomic(final) as tmp:
                try:
                    os.link(src, tmp)  # same file system: no copy at all
                except OSError:
                    shutil.copyfile(src, tmp)
        run_dir.write_json(sidecar_path(out), {**side, "reused_from": str(cand)})
        return cand
    return None


def _reason(exc: BaseException, source: Path, out: Path) -> str:
    """The one line a failure shows: the source first, then what went wrong (a full disk named as such)."""
    msg = write_failure(exc, out) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if not isinstance(exc, (StageError, ValueError, OSError, RuntimeError)):
        log.debug("%s", traceback.format_exc())
    if not msg.startswith(str(source)) and str(source) not in msg:
        msg = f"{source}: {msg}"
    return msg


def _stats(out: Path) -> dict[str, Any]:
    return (read_sidecar(out) or {}).get("stats") or {}


def _compute(step: _Step, piece: str, source: Path, plan: Plan, hashes: Hashes) -> dict[str, Any]:
    """Run the stage into a temporary file, then move it into place and write its sidecar; the stage's result."""
    out, run_dir, name = step.output, plan.run_dir, step.stage.name
    run_dir.make_dirs(out.parent)
    tmp = run_dir.temp_for(out)
    extras = {sfx: (final, run_dir.temp_for(final)) for sfx, final in step.extras.items()}
    t0 = time.time()
    try:
        stats = step.stage.run(StageJob(piece, source, step.input, tmp, {sfx: t for sfx, (_, t) in extras.items()}))
        if not tmp.is_file():
            raise StageError(f"{source}: stage {name} wrote no output")
        missing = [sfx for sfx, (_, t) in extras.items() if not t.is_file()]
        if missing:
            raise StageError(f"{source}: stage {name} wrote no {', '.join(missing)} file")
        elapsed = round(time.time() - t0, 3)
        if step.weights is not None and step.w_hash is None:
            step.w_hash = hashes(step.weights)  # a stage may create its weights (e.g. fluidsynth has none)
        side = {
            "stage": name,
            "piece": piece,
            "source": str(source),
            "input": str(step.input),
            "input_sha256": step.in_hash,
            "config_hash": step.stage.settings_hash,
            "settings": step.stage.output_settings,
            "weights": str(step.weights) if step.weights is not None else None,
            "weights_sha256": step.w_hash,
            "w2m2w_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "timings": {"seconds": elapsed},
            "stats": stats,
        }
        # the old sidecar goes first, the new one comes last: an output without its sidecar is never taken as
        # current, and the old output is replaced in one rename, never deleted before its successor exists
        run_dir.remove(sidecar_path(out))
        for final, t in extras.values():
            run_dir.replace(t, final)
        run_dir.replace(tmp, out)
        run_dir.write_json(sidecar_path(out), side)
    finally:
        for t in [tmp, *(t for _, t in extras.values())]:
            run_dir.remove(t)  # also when told to stop: no half-written file stays behind
    log.info(
        "[%s] %s: %s", name, piece, ", ".join(f"{k}={v}" for k, v in stats.items() if not isinstance(v, (dict, list)))
    )
    return {"status": "done", "seconds": elapsed, **stats}


def _run_step(step: _Step, piece: str, source: Path, plan: Plan, hashes: Hashes) -> dict[str, Any]:
    """One stage of one piece under its lock: current, reused from another run directory, or computed."""
    name = step.stage.name
    with plan.run_dir.lock(name, piece, f"{piece} ({name})"):
        step.hash(hashes)
        if not plan.force and step.is_current():
            log.info("[%s] %s: current, skipped", name, piece)
            return {"status": "current", **_stats(step.output)}
        if not plan.force and plan.reuse_dirs and (found := _reuse(step, piece, plan)) is not None:
            log.info("[%s] %s: reused %s", name, piece, found)
            return {"status": "reused", "from": str(found), **_stats(step.output)}
        return _compute(step, piece, source, plan, hashes)


def run_piece(
    piece: str, source: Path, plan: Plan, hashes: Hashes | None = None, on_event: Event | None = None
) -> PieceResult:
    """Take one piece through the plan's stages; never raises for a bad input, the result says what happened.

    Each stage of the piece runs under a lock (RUN_DIR/.locks/<stage>/<piece>.lock), so two runs
    sharing a run directory never write the same output; the second one reports the piece as locked.
    A stop request (Interrupted) ends the piece with its temporary files removed, status 'interrupted'.
    """
    hashes = hashes or Hashes()
    result = PieceResult(piece, str(source))
    todo = stages_for(source, plan.stages)
    if not todo:
        result.status, result.error = "skipped", f"{source}: MIDI input, nothing to transcribe"
        return result
    any_ran = False
    for stage in todo:
        out = plan.run_dir.output(stage.name, piece)
        try:
            if input_kind(source) is None:
                raise StageError(f"{source}: not an audio or MIDI file (extension {source.suffix or 'none'})")
            info = _run_step(_step(stage, source, plan.run_dir, piece), piece, source, plan, hashes)
        except LockedError as exc:  # another run is writing this output: leave it alone, say so
            result.status, result.error, info = "locked", str(exc), {"status": "locked", "error": str(exc)}
            log.warning("[%s] %s", stage.name, exc)
        except (Interrupted, KeyboardInterrupt):  # told to stop: this piece ends here, its old outputs as they were
            result.status, result.error, info = (
                "interrupted",
                f"{source}: interrupted during {stage.name}",
                {"status": "interrupted"},
            )
            log.warning("[%s] %s: interrupted", stage.name, piece)
        except (
            Exception
        ) as exc:  # one bad piece never stops the batch; its last good outputs stay (marked stale by state.py)
            msg = _reason(exc, source, out)
            result.status, result.error, info = "failed", msg, {"status": "failed", "error": msg}
            log.error("[%s] %s", stage.name, msg)
        result.stages[stage.name] = info
        if on_event:
            on_event(piece, stage.name, info)
        if info["status"] in ("locked", "interrupted", "failed"):
            return result
        any_ran = any_ran or info["status"] != "current"
    result.status = "done" if any_ran else "current"
    return result


def settle_locked(result: PieceResult, plan: Plan, hashes: Hashes | None = None) -> PieceResult:
    """A piece that another run held: done if every stage's output is now current, whoever computed it.

    The summary and report describe the run folder as it is at the end of the run, not as it
    was when this run found the piece locked. A piece still being written stays 'locked'.
    """
    if result.status != "locked":
        return result
    hashes = hashes or Hashes()
    source = Path(result.source)
    todo = stages_for(source, plan.stages)
    infos: dict[str, dict[str, Any]] = {}
    for stage in todo:
        mine = result.stages.get(stage.name) or {}
        if mine.get("status") in ("done", "current", "reused"):
            infos[stage.name] = mine
            continue
        try:
            step = _step(stage, source, plan.run_dir, result.piece)
            current = step.hash(hashes).is_current()
        except (OSError, MissingInputError):
            return result
        if not current:
            return result
        side = read_sidecar(step.output) or {}
        infos[stage.name] = {
            "status": "done",
            "by": "another run",
            "seconds": (side.get("timings") or {}).get("seconds"),
            **(side.get("stats") or {}),
        }
    return PieceResult(result.piece, result.source, "done", None, infos)


def summarize(results: list[PieceResult]) -> dict[str, Any]:
    """counts per status, failed piece -> reason, and every piece's status, error and per-stage results."""
    return count_pieces(
        {r.piece: {"source": r.source, "status": r.status, "error": r.error, "stages": r.stages} for r in results}
    )


def count_pieces(pieces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for p in pieces.values():
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    return {
        "counts": counts,
        "failed": {k: p["error"] for k, p in pieces.items() if p["status"] == "failed"},
        "pieces": pieces,
    }


def merge_summaries(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` over `old`, piece by piece (the shards of one input each add theirs), counts recomputed."""
    return {**old, **new, **count_pieces({**old.get("pieces", {}), **new["pieces"]})}
