"""The Python API: the pipeline's three stages as functions, and a whole run.

    import w2m2w
    midi = w2m2w.transcribe("waltz.ogg")                  # pretty_midi.PrettyMIDI
    longer = w2m2w.continue_midi(midi, seconds=20)         # primer + 20 s of new music
    audio, sr = w2m2w.synthesize(longer, sample_rate=44100)
    result = w2m2w.run("my_takes", "runs/my_takes", generate={"seconds": 30})   # what the `w2m2w` command does

Each function does what its stage does in a run (the same code: stages/), so its output for an input is the
command's for that input. Settings are the stage's keys (`w2m2w --cfg job` lists them), as keyword arguments.
Models are loaded once per process and kept (per weights file and device), so calling a function again on
other inputs reuses the loaded model. `device`: auto (a GPU when torch has one), cpu, cuda or cuda:N.
A bad setting raises w2m2w.settings.SettingsError naming the key; an input a stage cannot use, StageError.
Like the command, this module is an edge: it hands the stages to the library (which never imports them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import stages
from stages import generate as _generate
from stages import synthesize as _synthesize
from stages import transcribe as _transcribe
from w2m2w.constants import SAMPLE_RATE
from w2m2w.run.settings import (
    LocalExecutor,
    RayExecutor,
    RunSettings,
    check_run,
    default_run_dir,
    run_folder,
    stage_device,
)
from w2m2w.settings import SettingsError, check

if TYPE_CHECKING:
    import pretty_midi

AudioLike = str | os.PathLike | np.ndarray


def _settings(cls: type, group: str, values: dict[str, Any]) -> Any:
    """The stage's settings dataclass from keyword arguments, checked; SettingsError names `group.key`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise SettingsError(
            f"{group}.{unknown[0]}", values[unknown[0]], f"a setting of {group} (one of {', '.join(sorted(names))})"
        )
    s = cls(**values)
    check(s, group)
    return s


def _audio(audio: AudioLike, sample_rate: int | None, max_seconds: float | None) -> tuple[np.ndarray, str]:
    """16 kHz mono float32 samples of a path (any format the command reads) or an array, and a name for messages."""
    from w2m2w.audio import load_audio

    if not isinstance(audio, np.ndarray):
        return load_audio(audio, max_seconds=max_seconds), str(audio)
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 2:  # channels first or last, whichever is the shorter side: mixed to mono as a file would be
        y = y.mean(axis=0 if y.shape[0] < y.shape[1] else 1)
    if y.ndim != 1 or not len(y):
        raise ValueError(f"audio: expected mono samples (n,) or channels (n, c) / (c, n), got shape {np.shape(audio)}")
    rate = SAMPLE_RATE if sample_rate is None else int(sample_rate)
    if rate != SAMPLE_RATE:
        import soxr

        y = soxr.resample(y, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)  # the resampler the files go through
    return y, "audio"


def _notes(midi: str | os.PathLike | np.ndarray | pretty_midi.PrettyMIDI) -> np.ndarray:
    """A note list (n, 4): a MIDI file or a PrettyMIDI read as the stages read them (pedal applied, drums dropped)."""
    from w2m2w.midi import load_midi_notes, notes_from_pretty_midi

    if isinstance(midi, np.ndarray):
        return np.asarray(midi, dtype=np.float64).reshape(-1, 4)
    if isinstance(midi, (str, os.PathLike)):
        return load_midi_notes(midi)
    return notes_from_pretty_midi(midi)


def transcribe(
    audio: AudioLike,
    sample_rate: int | None = None,
    *,
    device: str = "auto",
    weights: str | None = None,
    **settings: Any,
) -> pretty_midi.PrettyMIDI:
    """Audio -> MIDI, as the transcribe stage writes it: notes, the sustain pedal as CC64, the tracked beats as
    its tempo map (tempo_map=False: a plain 120 bpm file).

    audio: a path (wav, flac, ogg, mp3, ...; any rate, stereo mixed down) or an array of samples, mono (n,) or with
    channels; sample_rate: the array's rate (default 16000; other rates are resampled with soxr).
    settings: the stage's keys, e.g. onset_threshold=0.4, pedal=False (conf/transcribe/onsets_frames.yaml).
    """
    from w2m2w.beats import track_beats_of
    from w2m2w.midi import notes_to_pretty_midi
    from w2m2w.tempo_map import with_tempo_map

    s = _settings(_transcribe.TranscribeSettings, "transcribe", {"weights": weights, **settings})
    s = dataclasses.replace(s, device=stage_device(device))
    y, name = _audio(audio, sample_rate, s.max_seconds)
    notes, pedal = _transcribe.transcribe_audio(_transcribe.STAGE.load(s), y, s, name)
    beats = track_beats_of(notes) if s.tempo_map else None
    return notes_to_pretty_midi(notes, pedal=pedal) if beats is None else with_tempo_map(notes, beats, pedal)


def continue_midi(
    midi: str | os.PathLike | np.ndarray | pretty_midi.PrettyMIDI,
    seconds: float = 20.0,
    *,
    seed: int | None = None,
    device: str = "auto",
    weights: str | None = None,
    **settings: Any,
) -> pretty_midi.PrettyMIDI:
    """MIDI -> MIDI: the end of `midi` continued by the Music Transformer, as the generate stage writes it.

    midi: a MIDI file, a pretty_midi.PrettyMIDI or a note list (n, 4: start s, end s, pitch, velocity).
    The result holds the primer (the last primer_seconds of the input) and `seconds` of new music
    (include_primer=False: the new music alone). seed: None draws a fresh one, as the command does
    (the sampling seed of the command's run is in its sidecar). settings: temperature=0.9, top_p=0.95, ...
    """
    from w2m2w.midi import notes_to_pretty_midi
    from w2m2w.tempo_map import with_tempo_map

    s = _settings(
        _generate.GenerateSettings, "generate", {"weights": weights, "seconds": seconds, "seed": seed, **settings}
    )
    s = dataclasses.replace(s, device=stage_device(device))
    notes = _notes(midi)
    result = _generate.continue_piece(_generate.STAGE.load(s), notes, _generate.generation_config(s), s)
    beats, _ = _generate.output_beats(None if isinstance(midi, np.ndarray) else midi, notes, result, s.tempo_map)
    return notes_to_pretty_midi(result.notes) if beats is None else with_tempo_map(result.notes, beats)


def synthesize(
    midi: str | os.PathLike | np.ndarray | pretty_midi.PrettyMIDI,
    *,
    synthesizer: str = "source_filter",
    sample_rate: int = SAMPLE_RATE,
    device: str = "auto",
    weights: str | None = None,
    **settings: Any,
) -> tuple[np.ndarray, int]:
    """MIDI -> audio: (samples, sample rate), float32 mono in [-1, 1], as the synthesize stage renders it.

    synthesizer: source_filter (the default), wavenet or fluidsynth. sample_rate: 16000 is the models' own;
    44100 or 48000 resample with soxr (the band still ends at 8 kHz). Notes outside the piano's range are dropped.
    settings: that synthesizer's keys (conf/synthesize/NAME.yaml), e.g. source_only=True.
    """
    from w2m2w.render.wavenet import clean_notes

    options = _synthesize.STAGE.options
    if synthesizer not in options:
        raise SettingsError("synthesizer", synthesizer, "one of " + ", ".join(options))
    values = {"sample_rate": sample_rate, **settings}
    if "weights" in {f.name for f in dataclasses.fields(options[synthesizer])}:
        values["weights"] = weights
    s = _settings(options[synthesizer], "synthesize", values)
    if hasattr(s, "device"):
        s = dataclasses.replace(s, device=stage_device(device))
    s = _synthesize.STAGE.resolve(s)
    notes, _dropped = clean_notes(_notes(midi))
    renderer = _synthesize.STAGE.load(s) if len(notes) else None
    chunks = [y for y, _ in _synthesize.audio_chunks(s, notes, renderer)]
    return np.concatenate(chunks).astype(np.float32), int(s.sample_rate)


@dataclass
class RunResult:
    """What w2m2w.run did: its exit code (0 all done, 1 a piece failed, 2 bad input), its run folder and summary.json."""

    code: int
    run_dir: Path
    summary: dict[str, Any]

    def outputs(self, stage: str) -> list[Path]:
        """The files a stage wrote in the run folder (transcribe, generate: .mid; synthesize: .wav), sorted."""
        from w2m2w.run.rundir import stage_dir

        suffix = ".wav" if stage == "synthesize" else ".mid"
        return sorted(stage_dir(self.run_dir, stage).rglob(f"*{suffix}"))


def _group(name: str, value: Any) -> Any:
    """A stage's or the executor's settings from a dict (or, for synthesize and executor, an option name)."""
    options = {
        "executor": {"local": LocalExecutor, "ray": RayExecutor},
        **{st.name: st.options for st in stages.STAGES},
    }[name]
    values = {"name": value} if isinstance(value, str) else dict(value or {})
    choice = values.pop("name", None) if name in ("synthesize", "executor") else None
    default = {"synthesize": "source_filter", "executor": "local"}.get(name) or next(iter(options))
    choice = choice or default
    if choice not in options:
        raise SettingsError(name, choice, "one of " + ", ".join(options))
    if name in ("synthesize", "executor"):
        values["name"] = choice
    return _settings(options[choice], name, values)


def run(
    inputs: str | os.PathLike | Sequence[str | os.PathLike] | None,
    run_dir: str | os.PathLike | None = None,
    **settings: Any,
) -> RunResult:
    """The `w2m2w` command from Python: `inputs` through the stages into the run folder, with the summary and report.

    inputs: what the command's input= takes (a recording, a MIDI file, a folder, a glob, a list file), or a list
    of paths; None reruns the pieces already in run_dir. run_dir: None names it for the input (runs/<name>; for a
    list of paths, for its first path).
    settings: the command's top-level keys (stages=["generate"], force=True, device="cuda", workers=2, ...) and
    per stage a dict of its keys: transcribe={"onset_threshold": 0.4}, generate={"seconds": 30},
    synthesize={"name": "fluidsynth"} (or synthesize="fluidsynth"), executor="ray".
    """
    from w2m2w.run import runner

    groups = {
        name: _group(name, settings.pop(name, None)) for name in ("transcribe", "generate", "synthesize", "executor")
    }
    with tempfile.TemporaryDirectory(prefix="w2m2w_inputs_") as tmp:
        if inputs is not None and not isinstance(
            inputs, (str, os.PathLike)
        ):  # a list of paths: a list file, as the command takes
            inputs = list(inputs)
            if run_dir is None and inputs:
                run_dir = default_run_dir(str(inputs[0]))
            listed = Path(tmp) / "inputs.txt"
            listed.write_text("".join(f"{Path(p).resolve()}\n" for p in inputs), encoding="utf-8")
            inputs = listed
        try:
            s = RunSettings(
                input=None if inputs is None else str(inputs),
                run_dir=None if run_dir is None else str(run_dir),
                **settings,
                **groups,
            )
        except TypeError as exc:  # an unknown top-level keyword
            raise SettingsError("settings", sorted(settings), f"keys of the command's config ({exc})") from None
        check_run(s)
        folder = Path(run_folder(s))
        code = runner.run(s, stages.STAGES, folder)
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return RunResult(code, folder, summary)
