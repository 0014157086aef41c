"""Which outputs of a run folder are stale, and why: the view the summary and the report give of the folder.

A failure never deletes an output (DESIGN.md: only the user deletes), so a run folder can hold
outputs that no longer follow from what is upstream of them: a stage that failed kept its last
good output, a new transcription left the old continuation in 2-generate/, a new continuation
left the audio of the old one in 3-synthesize/. Each such output is named here with the reason,
so the report never passes one off as made from what it sits next to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from w2m2w.run.rundir import STAGES, MissingInputError, output_path, read_sidecar, stage_dir, stage_input

# this call's result for one stage of a piece ({"status": ..., "error": ...}), if the call ran it
StageInfo = Mapping[str, Any]


def _kept_because(info: StageInfo, stage: str) -> str | None:
    """Why this call left an older output in place (it failed or was stopped), or None."""
    status = info.get("status")
    if status == "failed":
        return f"kept from an earlier run: {stage} failed this time ({info.get('error') or 'unknown error'})"
    if status == "interrupted":
        return f"kept from an earlier run: {stage} was interrupted this time"
    return None


def _made_from_other(side: dict[str, Any], expected: Path, hash_of: Callable[[Path], str]) -> str | None:
    """Why an output's sidecar does not match what its stage would read now, or None when it does."""
    if side.get("input_sha256") == hash_of(expected):
        return None
    folder = expected.parent.name
    if folder in {stage_dir("", s).name for s in STAGES}:
        return f"made from an earlier {folder}/ output; rerun this stage to bring it up to date"
    return "made from an earlier version of the source file; rerun to bring it up to date"


def piece_staleness(
    run_dir: Path, piece: str, source: Path, infos: Mapping[str, StageInfo], hash_of: Callable[[Path], str]
) -> dict[str, str]:
    """Stage -> why its output for `piece` is stale (or cannot be checked); stages whose output is current are left out.

    infos: this call's result per stage (empty for stages it did not run). An output is stale when
    this call's run of its stage failed or was stopped (the old output was kept), when its sidecar
    is missing or was made from another input than the stage would read now (rundir.stage_input),
    or when the output it was made from is itself stale.
    """
    stale: dict[str, str] = {}
    upstream: str | None = None
    for stage in STAGES:
        out = output_path(run_dir, stage, piece)
        if not out.is_file():
            continue
        why = _kept_because(infos.get(stage) or {}, stage)
        if why is None and upstream is not None:
            why = f"made from a stale {stage_dir('', upstream).name}/ output"
        if why is None:
            side = read_sidecar(out)
            try:
                expected = stage_input(run_dir, stage, piece, source)
            except MissingInputError as exc:
                stale[stage] = f"unchecked: {exc}"
                continue
            why = "no readable sidecar next to it" if side is None else _made_from_other(side, expected, hash_of)
        if why is not None:
            stale[stage] = why
            upstream = stage
    return stale


def folder_staleness(
    run_dir: Path,
    sources: Mapping[str, Path],
    results: Mapping[str, Mapping[str, StageInfo]],
    hash_of: Callable[[Path], str],
) -> dict[str, dict[str, str]]:
    """Piece -> {stage: why} for every piece of the run folder (`sources`: run.json's) with a stale output.

    results: this call's per-stage results of the pieces it ran (piece -> stage -> info).
    """
    found = {pid: piece_staleness(run_dir, pid, src, results.get(pid) or {}, hash_of) for pid, src in sources.items()}
    return {pid: s for pid, s in found.items() if s}
