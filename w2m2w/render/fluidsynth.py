"""Render note lists to piano audio with FluidSynth (PyPI pyfluidsynth) and Debian soundfonts.

One renderer for two users: the synthesize stage's reference synthesizer
(renderers.FluidSynthRenderer) and the transcriber's training audio (data.transcription).
`import fluidsynth` below is pyfluidsynth (absolute import), not this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from w2m2w.constants import SAMPLE_RATE
from w2m2w.midi import notes_to_pretty_midi

# Debian packages: fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont, csound-soundfont
SOUNDFONTS = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "csound": "/usr/share/sounds/sf2/sf_GMbank.sf2",
}


class RenderError(RuntimeError):
    pass


def soundfont_path(name_or_path: str) -> str:
    """Resolve a soundfont short name (see SOUNDFONTS) or a path; RenderError if it is not installed."""
    path = SOUNDFONTS.get(name_or_path, name_or_path)
    if not os.path.isfile(path):
        if name_or_path == "timgm6mb":  # pretty_midi's wheel ships this one
            import pretty_midi

            path = str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")
        if not os.path.isfile(path):
            raise RenderError(
                f"soundfont {name_or_path!r} not found at {path}; install it (apt-get install fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont csound-soundfont)"
            )
    return path


def render_notes(notes: np.ndarray, soundfont: str = "fluidr3", sr: int = SAMPLE_RATE, program: int = 0) -> np.ndarray:
    """FluidSynth render of a note list on a General MIDI piano program, float32 (samples,) in [-1, 1].

    Durations should already include the sustain pedal (midi.apply_sustain).
    """
    problem = pyfluidsynth_problem()
    if problem:
        raise RenderError(problem)
    pm = notes_to_pretty_midi(notes, program=program)
    if len(notes) == 0:
        return np.zeros(int(sr * 0.5), dtype=np.float32)
    y = pm.fluidsynth(fs=sr, synthesizer=str(soundfont_path(soundfont)))
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0:
        y = y / peak * 0.9  # FluidSynth's level depends on polyphony; normalise peaks
    return y.astype(np.float32)


def pyfluidsynth_problem() -> str | None:
    """Why FluidSynth cannot render here (pyfluidsynth or its C library missing), in one line; None when it can."""
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; it loads libfluidsynth on import)
    except Exception as exc:  # ImportError, or OSError from a missing libfluidsynth
        return f"pyfluidsynth is not usable ({exc}); pip install 'w2m2w[render]' and apt-get install libfluidsynth3"
    return None


def _synth(soundfont: str, sr: int, program: int):
    problem = pyfluidsynth_problem()
    if problem:
        raise RenderError(problem)
    import fluidsynth  # (pyfluidsynth)

    path = soundfont_path(soundfont)
    synth = fluidsynth.Synth(samplerate=sr)
    sfid = synth.sfload(path)
    if sfid < 0:
        synth.delete()
        raise RenderError(f"soundfont {path} could not be loaded by FluidSynth")
    synth.program_select(0, sfid, 0, program)
    return synth


def _raw_chunks(notes: np.ndarray, soundfont: str, sr: int, program: int, chunk: int, tail_seconds: float = 1.0):
    """FluidSynth's raw output (float64, int16 scale) in chunks of at most `chunk` samples.

    Same events, order and sample positions as pretty_midi's Instrument.fluidsynth
    (note-offs first at equal times, then tail_seconds: pretty_midi's is one second),
    so with the default the samples equal render_notes' before normalisation.
    """
    pm = notes_to_pretty_midi(notes, program=program)
    events = []
    for n in pm.instruments[0].notes:
        events += [[n.start, "note on", n.pitch, n.velocity], [n.end, "note off", n.pitch]]
    events.sort(key=lambda e: (e[0], e[1] != "note off"))
    current_time = events[0][0]
    nxt = [e[0] for e in events[1:]]
    for ev, end in zip(events[:-1], nxt):
        ev[0] = end - ev[0]
    events[-1][0] = float(tail_seconds)
    total = int(np.ceil(sr * (current_time + np.sum([e[0] for e in events]))))
    synth = _synth(soundfont, sr, program)
    try:
        lead = int(sr * current_time)
        for a in range(0, lead, chunk):  # silence before the first event
            yield np.zeros(min(chunk, lead - a))
        for ev in events:
            if ev[1] == "note on":
                synth.noteon(0, ev[2], ev[3])
            else:
                synth.noteoff(0, ev[2])
            n = int(sr * (current_time + ev[0])) - int(sr * current_time)
            while n > 0:
                k = min(n, chunk)
                yield np.asarray(synth.get_samples(k)[::2], dtype=np.float64)
                n -= k
            current_time += ev[0]
        end = int(sr * current_time)
        if total > end:  # pretty_midi's buffer is rounded up; its last samples stay zero
            yield np.zeros(total - end)
    finally:
        synth.delete()


def stream_notes(
    notes: np.ndarray,
    soundfont: str = "fluidr3",
    sr: int = SAMPLE_RATE,
    program: int = 0,
    chunk_seconds: float = 10.0,
    tail_seconds: float = 1.0,
    undither: bool = False,
):
    """render_notes in bounded memory: yields float32 chunks whose concatenation equals render_notes(notes)
    (with tail_seconds other than 1, the same render ringing that long after the last note-off).

    undither: FluidSynth's 16-bit output carries +-1 LSB of dither everywhere, in silence too; at a quiet
    render's peak normalisation that floor is only ~60 dB down, so a render would never fall silent. Samples
    of magnitude 1 LSB or less are set to 0: silence is exact, and a sound ends where it falls to that floor.

    Two passes over FluidSynth (which is deterministic): the first only measures
    the peak, the second yields the audio scaled as render_notes scales it.
    """
    if len(notes) == 0:
        yield np.zeros(int(sr * 0.5), dtype=np.float32)
        return
    chunk = max(1, int(chunk_seconds * sr))
    peak = 0.0
    for y in _raw_chunks(notes, soundfont, sr, program, chunk, tail_seconds):
        if y.size:
            peak = max(peak, float(np.max(np.abs(y))))
    scale = 0.9 / peak if peak > 0 else 0.0  # pretty_midi normalises to 1, render_notes to 0.9
    for y in _raw_chunks(notes, soundfont, sr, program, chunk, tail_seconds):
        if undither:
            y = np.where(np.abs(y) <= 1.0, 0.0, y)
        yield (y * scale).astype(np.float32)
