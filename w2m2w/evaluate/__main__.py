"""`python -m w2m2w.evaluate task=NAME input=PATH ...`: score the pipeline's outputs.

task=transcription scores MIDI transcriptions (or audio, transcribed first with
the shipped transcriber) against same-named reference .mid/.midi or MAPS .tsv
files with mir_eval. Each scored file is one JSON line on stdout; the last line
of stdout is one JSON object with the mean metrics. Where a reference carries a
sustain pedal (a MIDI file's CC64, or NAME.pedal.tsv beside NAME.tsv) that was
pressed at least once, the pedal is scored too (metrics.pedal_metrics).
task=generation reports the Music Transformer's mean NLL per event; task=synthesis
renders MIDI and reports speed, round-trip note F1 and log-mel distance.

Hydra stays in settings_of(), main() and cli(); the task functions take EvaluateSettings
(w2m2w/evaluate/settings.py), the measurements plain arguments.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from w2m2w import hydra_edge, paths
from w2m2w.audio import AUDIO_EXTENSIONS
from w2m2w.decoding import DecodeConfig
from w2m2w.evaluate.settings import EvaluateSettings
from w2m2w.finding import MIDI_EXTENSIONS, ReferenceIndex
from w2m2w.settings import SettingsError, check

# the shipped model a task scores with when weights=null (synthesis: the synthesizer's own, render.registry's)
DEFAULT_WEIGHTS = {
    "transcription": str(paths.DEFAULT_WEIGHTS["onsets_frames"]),
    "generation": str(paths.DEFAULT_WEIGHTS["music_transformer"]),
}

# conf/evaluate.yaml names its schema as /schema/evaluate, as conf/config.yaml names the run's
ConfigStore.instance().store(group="schema", name="evaluate", node=EvaluateSettings)


class EvaluateError(ValueError):
    """A usage or input problem; the message is one line that names the path involved."""


@dataclass
class Item:
    """One input file and the reference it is scored against (None when unmatched)."""

    path: Path
    rel: str  # path relative to the input root, with extension: what the report names
    key: str  # rel without extension: what references are matched on
    reference: Path | None = None


@dataclass
class TranscriptionReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def find_inputs(
    root: str | os.PathLike,
    extensions: Iterable[str],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    what: str = "MIDI",
) -> list[Item]:
    """Files under `root` (recursive; or `root` itself when it has one of `extensions`), as Items; EvaluateError when none.

    finding.find_files finds them (hidden names are temporaries of atomic writes or
    editor files, never inputs); no globs or lists here: input= is a folder or one file.
    """
    from w2m2w.finding import InputError, find_files

    try:
        found = find_files(
            root, tuple(extensions), what=what, lists=False, named_any_type=False, include=include, exclude=exclude
        )
    except InputError as exc:
        raise EvaluateError(f"input {exc}") from None
    return [Item(f.path, f.rel, f.rel[: -len(f.path.suffix)]) for f in found]


def _round(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items()}


def evaluate_transcription(
    input_path: str | os.PathLike,
    reference: str | os.PathLike,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    source: str = "auto",
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    decode: DecodeConfig | None = None,
    onset_tolerance: float = 0.05,
    pedal_onset_tolerance: float | None = None,
    frame_rate: float = 100.0,
    apply_pedal: bool = True,
    emit: Callable[[dict[str, Any]], None] = lambda row: None,
    warn: Callable[[str], None] = lambda msg: None,
) -> TranscriptionReport:
    """Score every MIDI (or audio) file under `input_path` against `reference`.

    `emit` receives each per-file row as it is scored, `warn` a one-line
    message for each file that is skipped. Raises EvaluateError for a missing
    input or reference, an input without usable files, or unusable weights.
    pedal_onset_tolerance: seconds; None is Kong et al.'s 0.2 (metrics.PEDAL_ONSET_TOLERANCE).
    """
    from w2m2w.metrics import PEDAL_ONSET_TOLERANCE

    input_path, reference = Path(input_path), Path(reference)
    items, source = _inputs(input_path, reference, source, include, exclude)
    report = TranscriptionReport()
    matched = _matched(items, _references(reference), report)
    scoring = _Scoring(
        model=_load_model(weights, device) if source == "audio" and matched else None,
        decode=decode or DecodeConfig(),
        apply_pedal=apply_pedal,
        onset_tolerance=onset_tolerance,
        pedal_onset_tolerance=PEDAL_ONSET_TOLERANCE if pedal_onset_tolerance is None else pedal_onset_tolerance,
        frame_rate=frame_rate,
    )
    timings = {"audio_s": 0.0, "transcribe_s": 0.0}  # summed over the transcribed files
    for item in matched:
        row = _score_file(item, scoring, report, warn, timings)
        if row is not None:
            report.rows.append(row)
            emit(row)
    report.summary = {
        "task": "transcription",
        "input": str(input_path),
        "reference": str(reference),
        "source": source,
        **_means(report, scoring),
    }
    if scoring.model is not None:
        report.summary.update(_speed(weights, timings))
    report.summary.update(unmatched=report.unmatched, failed=report.failed)
    return report


@dataclass(frozen=True)
class _Scoring:
    """How each file of one evaluate_transcription call is scored."""

    model: Any  # the transcriber for audio inputs; None: the inputs are MIDI
    decode: DecodeConfig
    apply_pedal: bool
    onset_tolerance: float
    pedal_onset_tolerance: float
    frame_rate: float


def _inputs(
    input_path: Path, reference: Path, source: str, include: Sequence[str], exclude: Sequence[str]
) -> tuple[list[Item], str]:
    """The files to score and what they are, midi or audio; EvaluateError for a missing input or reference."""
    if not input_path.exists():
        raise EvaluateError(f"input {input_path}: no such file or folder")
    if not reference.exists():
        raise EvaluateError(f"reference {reference}: no such file or folder")
    if source not in ("auto", "midi", "audio"):
        raise EvaluateError(f"source={source}: choose auto, midi or audio")
    exts, what = {"midi": (MIDI_EXTENSIONS, "MIDI"), "audio": (AUDIO_EXTENSIONS, "audio")}.get(
        source, (MIDI_EXTENSIONS + AUDIO_EXTENSIONS, "MIDI or audio")
    )
    items = find_inputs(input_path, exts, include, exclude, what=what)
    if source == "auto":  # MIDI transcriptions when there are any; else audio, transcribed first
        midi = [i for i in items if i.path.suffix.lower() in MIDI_EXTENSIONS]
        items, source = (midi, "midi") if midi else (items, "audio")
    return items, source


def _references(reference: Path) -> ReferenceIndex:
    index = ReferenceIndex(reference)
    if len(index) == 0:
        raise EvaluateError(f"reference {reference}: no .mid, .midi or .tsv files found")
    return index


def _matched(items: list[Item], index: ReferenceIndex, report: TranscriptionReport) -> list[Item]:
    """The items with a reference, each given its own; the others are listed in report.unmatched."""
    matched = []
    for item in items:
        item.reference = index.find(item.key)
        if item.reference is None:
            report.unmatched.append(item.rel)
        else:
            matched.append(item)
    return matched


def _score_file(
    item: Item,
    scoring: _Scoring,
    report: TranscriptionReport,
    warn: Callable[[str], None],
    timings: dict[str, float],
) -> dict[str, Any] | None:
    """One file's row, or None when it is skipped (a bad reference or input: in report.failed, and warned)."""
    from w2m2w.midi import load_notes
    from w2m2w.pedal import load_pedal

    try:
        ref = load_notes(item.reference, apply_pedal=scoring.apply_pedal)
        ref_pedal = load_pedal(item.reference)  # None: the reference says nothing about the pedal
    except Exception as exc:  # a bad reference skips its piece, never the whole evaluation
        _fail(report, warn, item, f"reference {_naming(item.reference, exc)}")
        return None
    # a reference whose pedal is never pressed has nothing to find
    pressed = ref_pedal if ref_pedal is not None and len(ref_pedal) else None
    try:
        est, est_pedal, extra = _estimate(item.path, scoring, pedal=pressed is not None)
    except ValueError as exc:  # MidiError, AudioError
        _fail(report, warn, item, _naming(item.path, exc))
        return None
    for key, seconds in extra.items():
        timings[key] += seconds
    return _row(item, ref, pressed, est, est_pedal, extra, scoring)


def _estimate(path: Path, scoring: _Scoring, pedal: bool) -> tuple[Any, Any, dict[str, float]]:
    """Notes, pedal (None where not wanted or not known) and timings (transcribed files only) of one input file."""
    from w2m2w.midi import load_midi_notes
    from w2m2w.pedal import load_pedal

    if scoring.model is not None:
        return _transcribe_file(scoring.model, path, scoring.decode)
    return load_midi_notes(path, apply_pedal=scoring.apply_pedal), load_pedal(path) if pedal else None, {}


def _row(
    item: Item, ref: Any, ref_pedal: Any, est: Any, est_pedal: Any, extra: dict[str, float], scoring: _Scoring
) -> dict[str, Any]:
    """One scored file: its notes' metrics and, where its reference has a pressed pedal, the pedal's."""
    from w2m2w.metrics import pedal_metrics, transcription_metrics
    from w2m2w.pedal import empty_pedal

    metrics = transcription_metrics(ref, est, onset_tolerance=scoring.onset_tolerance, frame_rate=scoring.frame_rate)
    row = {
        "file": item.rel,
        "reference": str(item.reference),
        "ref_notes": int(len(ref)),
        "est_notes": int(len(est)),
        **extra,
        **_round(metrics),
    }
    if ref_pedal is not None:
        # an estimate without pedal (a transcriber without a pedal head, a MIDI without CC64) found none: it scores 0
        est_pedal = empty_pedal() if est_pedal is None else est_pedal
        pedal = pedal_metrics(ref_pedal, est_pedal, scoring.pedal_onset_tolerance, frame_rate=scoring.frame_rate)
        row.update(ref_pedal=int(len(ref_pedal)), est_pedal=int(len(est_pedal)), **_round(pedal))
    return row


def _scores(row: dict[str, Any], pedal: bool) -> dict[str, float]:
    """A row's precision, recall and F1 figures: the pedal's, or the notes'."""
    return {
        k: v for k, v in row.items() if k.endswith(("_precision", "_recall", "_f1")) and k.startswith("pedal_") is pedal
    }


def _means(report: TranscriptionReport, scoring: _Scoring) -> dict[str, Any]:
    """The summary's figures: the notes' means over every scored file, the pedal's over those with a pressed pedal."""
    from w2m2w.metrics import mean_metrics

    means: dict[str, Any] = {"files": len(report.rows)}
    means.update(_round(mean_metrics([_scores(r, pedal=False) for r in report.rows])))
    means["onset_tolerance"] = scoring.onset_tolerance
    # pedal figures: absent when no reference has a pressed pedal
    pedal_rows = [_scores(r, pedal=True) for r in report.rows if "ref_pedal" in r]
    if pedal_rows:
        means.update(
            pedal_files=len(pedal_rows),
            **_round(mean_metrics(pedal_rows)),
            pedal_onset_tolerance=scoring.pedal_onset_tolerance,
        )
    return means


def _speed(weights: str | os.PathLike, timings: dict[str, float]) -> dict[str, Any]:
    """The transcriber that transcribed the inputs, and how fast it was."""
    from w2m2w.files import sha256_file

    audio_s, transcribe_s = timings["audio_s"], timings["transcribe_s"]
    return {
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "audio_s": round(audio_s, 3),
        "transcribe_s": round(transcribe_s, 3),
        "x_real_time": round(audio_s / transcribe_s, 3) if transcribe_s else None,
    }


def _naming(path: Path, exc: Exception) -> str:
    """One line that starts with `path`, whether or not the exception already names it."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg if msg.startswith(str(path)) else f"{path}: {msg}"


def _fail(report: TranscriptionReport, warn: Callable[[str], None], item: Item, reason: str) -> None:
    report.failed.append({"file": item.rel, "error": reason})
    warn(f"skipped {item.rel}: {reason}")


def _load_model(weights: str | os.PathLike | None, device: str) -> Any:
    from w2m2w.checkpoint import WeightsError
    from w2m2w.transcription import load_transcriber

    if not weights:
        raise EvaluateError("the input holds audio: set weights=PATH to a transcriber weights file")
    try:
        return load_transcriber(weights, device=device)
    except WeightsError as exc:
        raise EvaluateError(str(exc)) from None


def _transcribe_file(model: Any, path: Path, decode: DecodeConfig) -> tuple[Any, Any, dict[str, float]]:
    """Notes (n, 4), pedal (m, 2) or None without a pedal head, and timings of one audio file."""
    from w2m2w.audio import load_audio
    from w2m2w.constants import SAMPLE_RATE
    from w2m2w.transcription import transcribe_with_pedal

    y = load_audio(path)
    t0 = time.perf_counter()
    notes, pedal = transcribe_with_pedal(model, y, decode)
    dt = time.perf_counter() - t0
    return notes, pedal, {"audio_s": round(len(y) / SAMPLE_RATE, 3), "transcribe_s": round(dt, 3)}


def _error(msg: str, code: int = 2) -> NoReturn:
    hydra_edge.fail(msg, code, prefix="w2m2w.evaluate")


def _emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def _warn(msg: str) -> None:
    print(f"w2m2w.evaluate: {msg}", file=sys.stderr, flush=True)


def settings_of(cfg: DictConfig) -> EvaluateSettings:
    """The composed config as EvaluateSettings, Hydra's own node left out; SettingsError names a key out of range."""
    if "hydra" in cfg:  # the precheck composes it with Hydra's node, the task function gets it without
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    settings = OmegaConf.to_object(cfg)
    check(settings)
    return settings


def run(s: EvaluateSettings) -> int:
    """The command behind main(), on checked settings; returns the exit status."""
    if s.input is None:
        _error(f"task={s.task} needs input=PATH (a folder of MIDI or audio files, or one file)")
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    return _TASKS[s.task](s)


def run_transcription(s: EvaluateSettings) -> int:
    """task=transcription: one JSON line per scored file, then the summary; 1 when no file was scored."""
    from w2m2w.files import write_json

    if s.reference is None:
        _error(f"task={s.task} needs reference=PATH (a folder of same-named .mid/.midi/.tsv files)")
    try:
        report = evaluate_transcription(
            s.input,
            s.reference,
            include=_as_list(s.include),
            exclude=_as_list(s.exclude),
            source=s.source,
            weights=s.weights or DEFAULT_WEIGHTS["transcription"],
            device=s.device,
            decode=s.decode,
            onset_tolerance=s.onset_tolerance,
            frame_rate=s.frame_rate,
            apply_pedal=s.apply_pedal,
            emit=_emit,
            warn=_warn,
        )
    except EvaluateError as exc:
        _error(str(exc))
    if s.output:
        write_json(s.output, {"rows": report.rows, "summary": report.summary}, root=None)
    print(json.dumps(report.summary), flush=True)
    if not report.rows:
        _warn(f"no file was scored ({len(report.unmatched)} without a reference, {len(report.failed)} failed)")
        return 1
    return 0


def run_generation(s: EvaluateSettings) -> int:
    """task=generation: one JSON line per file, then the summary (NLL per event and the continuation statistics)."""
    from w2m2w.checkpoint import WeightsError
    from w2m2w.evaluate.generation import evaluate_generation

    try:
        summary = evaluate_generation(
            s.input,
            s.weights or DEFAULT_WEIGHTS["generation"],
            device=s.device,
            include=_as_list(s.include),
            exclude=_as_list(s.exclude),
            emit=_emit,
            warn=_warn,
            continuation=s.continuation,
        )
    except (ValueError, WeightsError) as exc:
        _error(str(exc).splitlines()[0])
    print(json.dumps(summary), flush=True)
    return 0


def run_synthesis(s: EvaluateSettings) -> int:
    """task=synthesis: one JSON line per file, the side-by-side table, then the summary; 1 when no file was rendered."""
    from w2m2w.checkpoint import WeightsError
    from w2m2w.evaluate.synthesis import run_synthesis_evaluation, side_by_side
    from w2m2w.files import write_json
    from w2m2w.render.fluidsynth import RenderError

    # the autoregressive WaveNet's temperature is a key of its own, as synthesize.temperature is; settings= overrides it
    settings = {**({"temperature": s.temperature} if s.synthesizer == "wavenet" else {}), **(s.settings or {})}
    try:
        summary = run_synthesis_evaluation(
            s.input,
            synthesizer=s.synthesizer,
            weights=s.weights,
            transcriber=s.transcriber or DEFAULT_WEIGHTS["transcription"],
            soundfont=s.soundfont if s.soundfont is None or isinstance(s.soundfont, str) else _as_list(s.soundfont),
            source_alone=s.source_alone,
            reference=s.reference,
            basic_pitch=s.basic_pitch,
            max_seconds=s.max_seconds,
            device=s.device,
            threads=s.threads,
            audio_out=s.audio_out,
            include=_as_list(s.include),
            exclude=_as_list(s.exclude),
            emit=_emit,
            warn=_warn,
            settings=settings,
            loudness_lufs=s.loudness_lufs,
            also={str(k): str(v) for k, v in (s.also or {}).items()},
        )
    except (ValueError, WeightsError, RenderError) as exc:
        _error(str(exc).splitlines()[0])
    if s.output:
        write_json(s.output, summary, root=None)  # output= names any file, not one in a run folder
    if summary["files"]:
        print(side_by_side(summary, summary["systems"], summary["transcribers"]), flush=True)
    print(json.dumps(summary), flush=True)
    return 0 if summary["files"] else 1


# each task= value and the function that runs it (EvaluateSettings.task's choices are these)
_TASKS: dict[str, Callable[[EvaluateSettings], int]] = {
    "transcription": run_transcription,
    "generation": run_generation,
    "synthesis": run_synthesis,
}


@hydra.main(version_base="1.3", config_path=str(paths.CONF), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra's task: the settings of this call, checked, then run."""
    try:
        settings = settings_of(cfg)
    except SettingsError as exc:  # a call the precheck left to Hydra (flags, sweeps)
        _error(str(exc))
    code = run(settings)
    if code:
        sys.exit(code)


def cli() -> None:
    """`python -m w2m2w.evaluate`: every plain call's settings checked before Hydra starts (hydra_edge.precheck)."""
    args = sys.argv[1:]
    # flags (--help, --cfg) go to Hydra as they are; plain overrides are composed and checked first (hydra_edge)
    if not any(a.startswith("-") for a in args):
        overrides = [a for a in args if not a.startswith(("hydra.", "hydra/"))]
        problem = hydra_edge.precheck(overrides, "evaluate", settings_of, job_name="evaluate_check")
        if problem:
            hydra_edge.fail(problem, prefix="w2m2w.evaluate")
    main()


if __name__ == "__main__":
    cli()
