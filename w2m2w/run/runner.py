"""A pipeline run from its settings: check them, find the pieces, load the stages once, run the pieces
(here, in worker processes or on Ray), then write the summary and the report. No Hydra here: the command (cli.py)
hands in a RunSettings (w2m2w.run.settings) whose stage groups are the stages' settings dataclasses.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from w2m2w.constants import __version__
from w2m2w.files import LockedError
from w2m2w.finding import InputError, input_kind
from w2m2w.paths import DEMO_INPUT
from w2m2w.run.discovery import discover_inputs
from w2m2w.run.freshness import folder_staleness
from w2m2w.run.io_errors import write_failure
from w2m2w.run.local import run_local, usable_cores
from w2m2w.run.piece import Hashes, PieceResult, Plan, merge_summaries, settle_locked, summarize
from w2m2w.run.piece_ids import UnsafePieceIdError, check_piece_id, tag_with_path_hash
from w2m2w.run.progress import BatchProgress, print_summary
from w2m2w.run.report import write_report
from w2m2w.run.rundir import RunDir, is_run_folder
from w2m2w.run.settings import RunSettings, check_run, record, resolve_devices, run_folder
from w2m2w.run.stage import Configured, Stage
from w2m2w.run.stopping import Interrupted, StopSignals
from w2m2w.settings import SettingsError

log = logging.getLogger("w2m2w")


def resolve_inputs(s: RunSettings, run_dirs: list[Path]) -> dict[str, Path]:
    """Pieces from s.input, else from the first run.json in `run_dirs` (a rerun), else the bundled demo.

    Run folders inside the input folder (this one and any other) hold outputs, never inputs: they are not searched.
    """
    if s.input is not None:
        here = {os.path.realpath(d) for d in run_dirs}
        # realpath, not resolve(): it never raises, and the walk asks about symlink loops too (it skips those itself)
        return discover_inputs(str(s.input), skip_folder=lambda f: os.path.realpath(f) in here or is_run_folder(f))
    for d in run_dirs:
        if (d / "run.json").is_file():
            return read_run_json(d / "run.json")
    return discover_inputs(str(DEMO_INPUT))


def read_run_json(path: Path) -> dict[str, Path]:
    """Piece id -> source of a run.json, every id checked: a damaged or edited file must not send writes elsewhere."""
    try:
        inputs = json.loads(path.read_text()).get("inputs", {})
        if not isinstance(inputs, dict):
            raise ValueError("'inputs' is not an object")
        return {check_piece_id(k): Path(v["source"]) for k, v in inputs.items()}
    except UnsafePieceIdError as exc:
        raise InputError(
            f"{path}: {exc}; the file is damaged or was edited by hand, fix or remove that entry"
        ) from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(f"{path}: not a readable run.json ({type(exc).__name__}: {exc})") from None


def shard_of(pieces: dict[str, Path], shard: int, num_shards: int) -> dict[str, Path]:
    """Every num_shards-th piece (sorted by id) starting at `shard`: N jobs, one per shard, cover the input once."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in 0..num_shards-1, got shard={shard} num_shards={num_shards}")
    return {pid: pieces[pid] for i, pid in enumerate(sorted(pieces)) if i % num_shards == shard}


def configured_stages(s: RunSettings, stages: Sequence[Stage]) -> list[Configured]:
    """The run's stages (those `s.stages` names, from the ones the edge hands in, in order) with their settings."""
    by_name = {stage.name: stage for stage in stages}
    return [Configured(by_name[name], getattr(s, name)) for name in s.stages]


def run(
    s: RunSettings, stages: Sequence[Stage], run_dir: Path | None = None, reuse_dirs: list[Path] | None = None
) -> int:
    """Run the configured stages over every piece; 0 when all went through, 1 if any failed, 2 for bad settings or
    arguments, 130 or 143 when stopped by SIGINT or SIGTERM (after writing the summary and report of what completed)."""
    logging.getLogger("w2m2w").setLevel(s.log_level)
    logging.captureWarnings(True)  # a library's warning is a log line too: above the bars, in run.log
    try:
        check_run(s)  # the command checks before Hydra writes anything; a caller of the library gets the same check
    except SettingsError as exc:
        log.error("%s", exc)
        return 2
    s = resolve_devices(
        s
    )  # device=auto (and every stage left to the top-level switch) made explicit, as the sidecars record it
    with StopSignals() as stop:
        return _run(s, stages, Path(run_dir or run_folder(s)), reuse_dirs or [], stop)


def _run(s: RunSettings, registered: Sequence[Stage], run_dir: Path, reuse_dirs: list[Path], stop: StopSignals) -> int:
    t0 = time.time()
    rd = RunDir(run_dir)
    problem = rd.writable_problem()
    if problem:
        log.error("%s", problem)
        return 2
    try:
        stages = configured_stages(s, registered)
        pieces = shard_of(resolve_inputs(s, [run_dir, *reuse_dirs]), s.shard, s.num_shards)
    except (ValueError, InputError) as exc:
        log.error("%s", exc)
        return 2
    try:
        # load models (and check weights) once, before any piece: a bad weights file is one clear error
        with stop.interruptible():
            for stage in stages:
                stage.load()
    except Exception as exc:
        log.error("%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 2
    except Interrupted:  # told to stop while loading: nothing ran
        log.warning("stopped by %s before any piece ran", _signame(stop))
        return stop.exit_code
    for stage in stages:
        rd.remove_stale_temps(stage.name)
    hashes = Hashes()
    try:
        pieces = _record_inputs(rd, pieces, hashes)
    except LockedError as exc:  # another process holds run.json: one line, nothing run
        log.error("%s", exc)
        return 2
    except OSError as exc:  # a read-only or full run.json: one line, nothing run
        log.error("%s", write_failure(exc, rd.run_json) or f"{rd.run_json}: cannot be updated ({exc.strerror or exc})")
        return 2
    plan = Plan(stages, RunDir(run_dir.resolve()), s.force, [d.resolve() for d in reuse_dirs])
    results = _execute(s, pieces, plan, stop)
    # what another run finished while this one ran counts as done: the summary describes the folder as it is
    results = [settle_locked(r, plan, hashes) for r in results]
    return _finish(s, rd, pieces, results, stop, t0, hashes)


def _hash_or_none(hashes: Hashes, src: Path) -> str | None:
    try:
        return hashes(src) if src.is_file() else None
    except OSError:
        return None


def _record_inputs(rd: RunDir, pieces: dict[str, Path], hashes: Hashes) -> dict[str, Path]:
    """Merge this call's pieces into run.json without ever replacing another source's piece; the pieces, ids final.

    A piece id that run.json already gives to another source file keeps that meaning: the new file
    gets an id of its own (keep_apart). The same file moved elsewhere (same sha256) keeps its id.
    """
    entries = {
        pid: {"source": str(src.resolve()), "kind": input_kind(src), "sha256": _hash_or_none(hashes, src)}
        for pid, src in pieces.items()
    }
    final: dict[str, Path] = {}

    def merge(data: dict) -> dict:
        known = data.setdefault("inputs", {})
        for pid, entry in entries.items():
            new_id = keep_apart(pid, entry, known)
            if new_id != pid:
                log.warning(
                    "%s: run.json's piece '%s' is %s; this file is kept apart as '%s'",
                    entry["source"],
                    pid,
                    (known.get(pid) or {}).get("source"),
                    new_id,
                )
            known[new_id] = entry
            final[new_id] = pieces[pid]
        data["w2m2w_version"] = __version__
        return data

    rd.update_json(rd.run_json, merge)
    return final


def keep_apart(pid: str, entry: dict, known: dict) -> str:
    """`pid`, or an id of its own when run.json (`known`) already gives `pid` to a different source file.

    The same source path, or the same content (sha256) at a new path (the inputs were moved), is the
    same piece. Another file gets `pid~HASH` (a hash of its path, as piece_ids tells clashing inputs apart).
    """
    old = known.get(pid)
    if not isinstance(old, dict) or old.get("source") == entry["source"]:
        return pid
    if entry["sha256"] is not None and old.get("sha256") == entry["sha256"]:
        return pid
    tagged = tag_with_path_hash(pid, entry["source"])
    other = known.get(tagged)
    if isinstance(other, dict) and other.get("source") not in (None, entry["source"]):
        raise InputError(
            f"{entry['source']}: cannot give it an id of its own in run.json ({tagged} is taken); use another run_dir"
        )
    return tagged


def _execute(s: RunSettings, pieces: dict[str, Path], plan: Plan, stop: StopSignals) -> list[PieceResult]:
    """The pieces through the plan on the configured executor, with progress bars."""
    progress = BatchProgress(list(pieces), [st.name for st in plan.stages], enabled=s.progress)
    try:
        with logging_redirect_tqdm():  # log lines above the bars, not through them
            if s.executor.name == "ray":
                from w2m2w.run.ray import run_ray

                return run_ray(pieces, plan, s.executor, progress, stop)
            return run_local(pieces, plan, s.workers or usable_cores(), progress, stop)
    finally:
        progress.close()


def _stale_outputs(rd: RunDir, results: list[PieceResult], hashes: Hashes) -> dict[str, dict[str, str]]:
    """Piece -> {stage: why} for the stale outputs of every piece in run.json (freshness); {} if that cannot be read."""
    try:
        sources = read_run_json(rd.run_json)
        return folder_staleness(rd.path, sources, {r.piece: r.stages for r in results}, hashes)
    except (OSError, InputError) as exc:  # a view of the folder: failing to draw it must not fail the run
        log.warning("%s: stale outputs not checked (%s)", rd.path, exc)
        return {}


def _finish(
    s: RunSettings,
    rd: RunDir,
    pieces: dict[str, Path],
    results: list[PieceResult],
    stop: StopSignals,
    t0: float,
    hashes: Hashes,
) -> int:
    """Summary, report and exit code."""
    summary = summarize(results)
    summary.update(stages=list(s.stages), run_dir=str(rd.path), seconds=round(time.time() - t0, 3), config=record(s))
    summary["stale"] = _stale_outputs(rd, results, hashes)
    if stop.requested:
        summary["stopped"] = f"{_signame(stop)}: {len(pieces) - len(results)} of {len(pieces)} pieces not started"
    print_summary(summary, list(s.stages))
    code = _write_summary(s, rd, summary)
    try:
        report = write_report(rd, summary)
        log.info("report: %s", report)
    except Exception as exc:  # the report is a view of the run; failing to draw it must not fail the run
        log.warning("%s: report not written: %s", rd.report_html, write_failure(exc, rd.report_html) or exc)
    if stop.requested:
        log.warning("stopped by %s: %s", _signame(stop), _counts(summary))
        return stop.exit_code
    mine = [p["status"] for pid, p in summary["pieces"].items() if pid in pieces]
    return max(code, 1 if "failed" in mine or "locked" in mine else 0)


def _signame(stop: StopSignals) -> str:
    return signal.Signals(stop.signum).name if stop.signum else "a signal"


def _counts(summary: dict) -> str:
    done = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items())) or "no piece finished"
    return "; ".join([done, summary["stopped"].split(": ", 1)[1], "summary and report written"])


def _write_summary(s: RunSettings, rd: RunDir, summary: dict) -> int:
    """Write summary.json (merged with the other shards' when sharded); 1 with one line if the disk refuses."""
    try:
        if s.num_shards > 1:  # the other shards' pieces stay in summary.json (and so in the report)
            summary["shard"] = f"{s.shard} of {s.num_shards}"
            summary.update(rd.update_json(rd.summary_json, lambda old: merge_summaries(old, summary)))
        else:
            rd.write_json(rd.summary_json, summary)
    except OSError as exc:
        log.error("%s", write_failure(exc, rd.summary_json) or f"{rd.summary_json}: {exc}")
        return 1
    return 0
