"""Beats, downbeats and meter of a note list or a recording (issue #32).

Two trackers behind one API:
  - learned (the default when weights/beat_tracker.safetensors exists): the CRNN of
    w2m2w.models.beat_tracker reads a note list (MIDI, a continuation, or a recording's transcription)
    and gives beat and downbeat activations per frame; dbn_beats decodes the beats with a bar-pointer
    style HMM over (beat period, phase) (after Krebs et al. 2015 and madmom's DBN: tempo may drift
    from beat to beat, but only at beats), and downbeats_from_activation picks the meter and the bar
    lines by a Viterbi pass over the position in the bar fed by the downbeat activation at each beat.
  - hand-made (audio alone, and notes when no learned weights exist): an onset-strength envelope
    through librosa's dynamic-programming tracker; downbeats from per-beat accents (loudness, bass,
    harmonic change, note length) through the same bar Viterbi, run for 2, 3 and 4 beats per bar.

Times in seconds. A note list is (n, 4): onset, offset, pitch, velocity (w2m2w.midi's layout).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from w2m2w.models.beat_tracker import FPS as MODEL_FPS
from w2m2w.models.beat_tracker import MODEL_NAME, BeatTracker, BeatTrackerConfig

FPS = 100  # envelope frames per second: 10 ms, finer than the 70 ms F-measure window
METERS = (2, 3, 4)  # beats per bar considered; compound meters come out as their beat count in quarters


@dataclass(frozen=True)
class Beats:
    """Tracked beats: times (n,) seconds, is_downbeat (n,) bool, meter (beats per bar)."""

    times: np.ndarray
    is_downbeat: np.ndarray
    meter: int

    @property
    def downbeats(self) -> np.ndarray:
        """Downbeat times (m,) seconds."""
        return self.times[self.is_downbeat]

    @property
    def tempo(self) -> float:
        """Median tempo, beats per minute (0 when fewer than two beats)."""
        return float(60.0 / np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0


# ---------------------------------------------------------------- onset envelopes


def audio_onset_envelope(y: np.ndarray, sr: int, fps: int = FPS) -> np.ndarray:
    """Spectral-flux onset strength of mono audio y (samples,), shape (frames,) at `fps`.

    Log-mel flux with a 3-band maximum filter (SuperFlux-like): piano partials that wobble between
    neighbouring bands do not read as onsets.
    """
    import librosa

    hop = int(round(sr / fps))
    return librosa.onset.onset_strength(
        y=y,
        sr=sr,
        hop_length=hop,
        n_fft=4 * hop if hop >= 256 else 1024,
        n_mels=128,
        fmax=min(8000, sr // 2),
        lag=2,
        max_size=3,
    )


def note_onset_envelope(
    notes: np.ndarray, fps: int = FPS, duration: float | None = None, sigma: float = 0.02
) -> np.ndarray:
    """Onset envelope (frames,) drawn from a note list (n, 4): velocity-weighted impulses, smoothed.

    A chord's weight grows as the square root of its summed velocity, as a chord's spectral flux grows
    less than linearly with its notes; the Gaussian (sigma seconds) plays the part of the flux's width.
    """
    from scipy.ndimage import gaussian_filter1d

    end = float(duration if duration is not None else (notes[:, 1].max() if len(notes) else 0.0))
    env = np.zeros(int(np.ceil(end * fps)) + 2)
    if len(notes):
        idx = np.clip(np.round(notes[:, 0] * fps).astype(int), 0, len(env) - 1)
        np.add.at(env, idx, notes[:, 3] / 127.0)
    return gaussian_filter1d(np.sqrt(env), sigma * fps)


# ---------------------------------------------------------------- beats


def track_beats(
    env: np.ndarray, fps: int = FPS, start_bpm: float = 100.0, tightness: float = 100.0, local_tempo: bool = False
) -> np.ndarray:
    """Beat times (n,) seconds from an onset envelope (frames,) at `fps`.

    librosa's dynamic programme, given a tempo curve estimated over 8-s windows (median-smoothed over
    ~10 s), so the grid can follow rubato and tempo changes that one global tempo cannot.
    """
    import librosa
    from scipy.ndimage import median_filter

    if len(env) < fps or not np.any(env > 0):
        return np.zeros(0)
    bpm = None
    if local_tempo:
        curve = librosa.feature.tempo(
            onset_envelope=env, sr=fps, hop_length=1, start_bpm=start_bpm, ac_size=8.0, aggregate=None
        )
        bpm = median_filter(curve, size=10 * fps + 1, mode="nearest")
    _, beats = librosa.beat.beat_track(
        onset_envelope=env,
        sr=fps,
        hop_length=1,
        start_bpm=start_bpm,
        tightness=tightness,
        bpm=bpm,
        trim=False,
        units="time",
    )
    return np.asarray(beats, dtype=np.float64)


RECENT_SECONDS = 20.0  # the stretch whose typical beat a continuation carries on: the primer's default length


def extrapolate_beats(
    times: np.ndarray, end: float, start: float = 0.0, n_recent: int = 8, recent_seconds: float = RECENT_SECONDS
) -> np.ndarray:
    """Beats (m,) covering [start, end]: `times` (n,) carried on at the median interval of its last
    `recent_seconds` (at least its last `n_recent` intervals), and back to `start` at the median of its
    first `n_recent`. A continuation keeps the primer's tempo: the median over the primer's span, not its
    last few beats, so a tracker that switches to half beats in the final bars (the demo's last 3 s) does not
    double the continuation's tempo."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) < 2:
        return times
    gaps = np.diff(times)
    recent = max(n_recent, int(np.sum(times[1:] >= times[-1] - recent_seconds)))
    tail = float(np.median(gaps[-recent:]))
    head = float(np.median(gaps[:n_recent]))
    after = times[-1] + tail * np.arange(1, max(0, int(np.ceil((end - times[-1]) / tail))) + 1)
    before = times[0] - head * np.arange(max(0, int(np.floor((times[0] - start) / head))), 0, -1)
    return np.concatenate([before, times, after])


# ---------------------------------------------------------------- downbeats


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def _chroma_change(chroma: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of each beat's chroma (n, 12) with the previous beat's, (n,)."""
    norm = chroma / np.maximum(np.linalg.norm(chroma, axis=1, keepdims=True), 1e-9)
    change = np.ones(len(chroma))
    change[1:] = 1.0 - np.sum(norm[1:] * norm[:-1], axis=1)
    return change


def note_beat_features(notes: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Per-beat accents (n_beats, 4) of a note list: loudness, bass, harmonic change, note length.

    Onsets count for the beat whose window (half an interval either side) holds them. Bars tend to
    start with a louder chord, a bass note, a new harmony and a longer note.
    """
    n = len(beats)
    feats = np.zeros((n, 4))
    if n == 0 or len(notes) == 0:
        return feats
    edges = np.concatenate([[-np.inf], (beats[1:] + beats[:-1]) / 2, [np.inf]])
    which = np.searchsorted(edges, notes[:, 0], side="right") - 1
    near = np.abs(notes[:, 0] - beats[np.clip(which, 0, n - 1)]) < 0.07  # on the beat, not between
    vel = notes[:, 3] / 127.0
    np.add.at(feats[:, 0], which[near], vel[near])
    bass = near & (notes[:, 2] < 53)
    np.add.at(feats[:, 1], which[bass], vel[bass])
    dur = np.minimum(notes[:, 1] - notes[:, 0], 4.0)
    np.maximum.at(feats[:, 3], which[near], dur[near])
    chroma = np.zeros((n, 12))
    # chroma of what sounds from each beat to the next, weighted by overlap: the harmony of the beat
    bounds = np.concatenate([beats, [beats[-1] + (beats[-1] - beats[-2] if n > 1 else 0.5)]])
    for (on, off, pitch, _vel), w in zip(notes, which):
        lo, hi = max(w, 0), min(np.searchsorted(bounds, off, side="left"), n)
        for b in range(lo, hi):
            overlap = min(off, bounds[b + 1]) - max(on, bounds[b])
            if overlap > 0:
                chroma[b, int(pitch) % 12] += overlap * (1.5 if pitch < 53 else 1.0)
    feats[:, 2] = _chroma_change(chroma)
    return feats


def audio_beat_features(y: np.ndarray, sr: int, beats: np.ndarray, fps: int = FPS) -> np.ndarray:
    """Per-beat accents (n_beats, 3) of audio: onset strength, low-band onset strength, chroma change."""
    import librosa

    hop = int(round(sr / fps))
    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, hop_length=hop, n_fft=2048, n_mels=64, fmax=min(8000, sr // 2))
    )
    flux = np.maximum(0.0, mel[:, 2:] - mel[:, :-2])
    flux = np.pad(flux, ((0, 0), (2, 0)))
    full, low = flux.mean(axis=0), flux[:12].mean(axis=0)  # the lowest 12 of 64 mel bands: under ~250 Hz
    frames = np.clip(np.round(beats * fps).astype(int), 0, flux.shape[1] - 1)
    win = 5  # +-50 ms
    pick = lambda x: np.array([x[max(0, f - win) : f + win + 1].max() for f in frames])  # noqa: E731
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, hop_length=hop, n_fft=2048)
    bounds = np.concatenate([frames, [chroma.shape[1]]])
    beat_chroma = (
        np.stack([chroma[:, a : max(b, a + 1)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])])
        if len(frames)
        else np.zeros((0, 12))
    )
    return np.stack([pick(full), pick(low), _chroma_change(beat_chroma)], axis=1) if len(frames) else np.zeros((0, 3))


def bar_positions(strength: np.ndarray, meter: int, switch_penalty: float = 4.0) -> np.ndarray:
    """Position in the bar (n,) in 0..meter-1 of each beat: Viterbi over the bar position.

    strength (n,): how much each beat looks like a downbeat (z-scored accents). Each step moves one
    position on; jumping elsewhere (a beat the tracker skipped or doubled) costs `switch_penalty`.
    """
    n = len(strength)
    if n == 0:
        return np.zeros(0, dtype=int)
    score = np.where(np.arange(meter) == 0, strength[0], 0.0)
    back = np.zeros((n, meter), dtype=int)
    for i in range(1, n):
        cand = np.full((meter, meter), -np.inf)  # cand[to, from]
        for frm in range(meter):
            cand[:, frm] = score[frm] - switch_penalty
            cand[(frm + 1) % meter, frm] = score[frm]
        back[i] = np.argmax(cand, axis=1)
        score = cand[np.arange(meter), back[i]] + np.where(np.arange(meter) == 0, strength[i], 0.0)
    path = np.zeros(n, dtype=int)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def estimate_downbeats(
    features: np.ndarray,
    meters: tuple[int, ...] = METERS,
    weights: np.ndarray | None = None,
    prior: dict[int, float] | None = None,
) -> tuple[int, np.ndarray]:
    """(meter, is_downbeat (n,) bool) from per-beat accents (n, k).

    Each meter gets its Viterbi bar positions; it scores the contrast of the accents on its downbeats
    against the other beats, plus a prior (4/4 and 3/4 are the common case in piano music).
    """
    n = len(features)
    if n == 0:
        return 4, np.zeros(0, dtype=bool)
    weights = np.ones(features.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    strength = np.sum(
        np.stack([_zscore(features[:, j]) for j in range(features.shape[1])], axis=1) * weights, axis=1
    ) / max(weights.sum(), 1e-9)
    prior = {2: 0.0, 3: 0.05, 4: 0.1} if prior is None else prior
    best = (-np.inf, 4, np.zeros(n, dtype=bool))
    for m in meters:
        db = bar_positions(strength, m) == 0
        if db.all() or not db.any():
            continue
        contrast = strength[db].mean() - strength[~db].mean() + prior.get(m, 0.0)
        if contrast > best[0]:
            best = (contrast, m, db)
    return best[1], best[2]


# ---------------------------------------------------------------- the learned tracker's decoding


def dbn_beats(
    activation: np.ndarray,
    fps: int = MODEL_FPS,
    min_bpm: float = 40.0,
    max_bpm: float = 220.0,
    transition_lambda: float = 30.0,
    observation_lambda: int = 16,
    threshold: float = 0.1,
) -> np.ndarray:
    """Beat times (n,) seconds of a beat activation (frames,) in [0, 1]: Viterbi over (period, phase) states.

    transition_lambda was chosen on the tuning pieces (scripts/tune_beat_decoder.py; the card's
    beat-tracker section has the sweep): a looser tempo change than madmom's 100 follows rubato better.

    A state is a beat period of k frames (60 fps / max_bpm <= k <= 60 fps / min_bpm) and a phase 0..k-1;
    each frame the phase moves one on, and only at the end of a beat may the period change, from i to j
    with probability ~ exp(-transition_lambda |j/i - 1|) (tempo drifts smoothly, as in a performance).
    A state in the first 1/observation_lambda of its beat sees the activation a, the others
    (1 - a) / (observation_lambda - 1) (madmom's RNNBeatTrackingObservationModel). Beats are the
    strongest frames of each stretch of the best path in those first states, searched from the first to
    the last frame whose activation reaches `threshold`.
    """
    activation = np.asarray(activation, dtype=np.float64)
    above = np.flatnonzero(activation >= threshold)
    if len(above) == 0:
        return np.zeros(0)
    # only from the first to the last frame that looks like a beat (madmom's threshold): no path runs on into silence
    lo = int(above[0])
    act = np.clip(activation[lo : above[-1] + 1], 1e-6, 1 - 1e-6)
    n = len(act)
    periods = np.arange(max(1, int(np.floor(60.0 * fps / max_bpm))), int(np.ceil(60.0 * fps / min_bpm)) + 1)
    if n < 2:
        return np.array([lo / fps])
    first = np.concatenate([[0], np.cumsum(periods)[:-1]])  # index of each period's phase 0
    last = first + periods - 1
    n_states = int(periods.sum())
    phase = np.arange(n_states) - np.repeat(first, periods)
    is_beat = phase < np.repeat(periods, periods) / observation_lambda
    ratio = periods[None, :] / periods[:, None]  # [from, to]
    log_trans = -transition_lambda * np.abs(ratio - 1.0)
    log_trans -= np.log(np.exp(log_trans).sum(axis=1, keepdims=True))
    moves = np.setdiff1d(np.arange(n_states), first)  # states reached from the state before them
    obs_beat, obs_other = np.log(act), np.log((1.0 - act) / (observation_lambda - 1))
    score = np.where(is_beat, obs_beat[0], obs_other[0]) - np.log(n_states)
    back = np.zeros((n, len(periods)), dtype=np.int32)  # for each phase-0 state: the period it came from
    new = np.empty(n_states)
    for t in range(1, n):
        new[moves] = score[moves - 1]
        cand = score[last][:, None] + log_trans
        back[t] = np.argmax(cand, axis=0)
        new[first] = cand[back[t], np.arange(len(periods))]
        score = new + np.where(is_beat, obs_beat[t], obs_other[t])
    state = int(np.argmax(score))
    path = np.empty(n, dtype=np.int64)
    first_of = {int(f): k for k, f in enumerate(first)}
    for t in range(n - 1, -1, -1):
        path[t] = state
        if t:
            k = first_of.get(state)
            state = int(last[back[t, k]]) if k is not None else state - 1
    # each run of beat states on the path is one beat, at its strongest frame (madmom's `correct`): the
    # first 1/observation_lambda of a beat all see the activation alike, so phase 0 alone may sit a frame early
    on = is_beat[path]
    starts = np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))
    ends = np.flatnonzero(on & ~np.concatenate([on[1:], [False]])) + 1
    peaks = [a + int(np.argmax(act[a:b])) for a, b in zip(starts, ends)]
    return (lo + np.array(peaks, dtype=np.float64)) / fps


ACCENT_WEIGHTS = (1.0, 0.5)  # harmonic change, note length: chosen on the tuning and validation pieces


def note_accents(notes: np.ndarray, beats: np.ndarray, weights: tuple[float, float] = ACCENT_WEIGHTS) -> np.ndarray:
    """Per-beat evidence for a bar line (n_beats,) from a note list (n, 4): the z-scored harmonic change
    and longest note starting at each beat (note_beat_features), weighted and summed.

    The learned tracker's downbeat activation is nearly as high on beat 3 of a 4/4 bar as on beat 1
    (weights/README.md), so it often reads two bars of 2/4; harmony tends to change, and long notes to
    start, at the bar line rather than half way through it.
    """
    f = note_beat_features(notes, beats)
    return weights[0] * _zscore(f[:, 2]) + weights[1] * _zscore(f[:, 3])


def downbeats_from_activation(
    times: np.ndarray,
    activation: np.ndarray,
    fps: int = MODEL_FPS,
    meters: tuple[int, ...] = METERS,
    switch_penalty: float = 3.0,
    window: int = 2,
    bias: float = 0.0,
    accents: np.ndarray | None = None,
) -> tuple[int, np.ndarray]:
    """(meter, is_downbeat (n,) bool) of beats (n,) seconds from a downbeat activation (frames,) in [0, 1].

    Each beat's downbeat probability p is the activation's maximum within `window` frames of it. For
    each meter, bar_positions finds the bar path that maximises the summed log-odds log(p / (1 - p)) - bias
    (+ `accents` (n,), further log-odds per beat, e.g. note_accents) on its downbeats less `switch_penalty`
    per jump (a beat skipped or doubled); that sum plus the sum of log(1 - p) over all beats is the path's
    log-likelihood, so the meter whose path scores highest wins. `bias` undoes the loss's weight on
    downbeat frames (weights/README.md: a positive weight w shifts the network's log-odds up by about
    log w, which makes every other beat look like a bar line and favours the shorter meter).
    """
    n = len(times)
    if n == 0:
        return 4, np.zeros(0, dtype=bool)
    frames = np.clip(np.round(np.asarray(times) * fps).astype(int), 0, len(activation) - 1)
    p = np.array([activation[max(0, f - window) : f + window + 1].max() for f in frames])
    p = np.clip(p, 1e-4, 1 - 1e-4)
    logit = np.log(p / (1 - p)) - bias
    if accents is not None:
        logit = logit + accents
    best = (-np.inf, 4, np.zeros(n, dtype=bool))
    for m in meters:
        pos = bar_positions(logit, m, switch_penalty)
        jumps = int(np.sum(pos[1:] != (pos[:-1] + 1) % m))
        total = float(logit[pos == 0].sum()) - switch_penalty * jumps
        if total > best[0]:
            best = (total, m, pos == 0)
    return best[1], best[2]


def decode_activations(activations: np.ndarray, fps: int = MODEL_FPS, notes: np.ndarray | None = None) -> Beats:
    """Beats, downbeats and meter of beat and downbeat activations (frames, 2); the bar lines also weigh
    the accents (note_accents) of `notes` (n, 4), the note list the activations came from, when given."""
    times = dbn_beats(activations[:, 0], fps)
    accents = note_accents(notes, times) if notes is not None and len(times) else None
    meter, db = downbeats_from_activation(times, activations[:, 1], fps, accents=accents)
    return Beats(times, db, meter)


@functools.lru_cache(maxsize=4)
def load_beat_tracker(path: str | os.PathLike, device: str = "cpu") -> BeatTracker:
    """The learned tracker's weights (checkpoint.load_model's errors name the file), loaded once per process."""
    from w2m2w.checkpoint import load_model

    return load_model(path, MODEL_NAME, lambda c: BeatTracker(BeatTrackerConfig(**c)), device, what="the beat tracker")


def default_weights() -> str | None:
    """The shipped learned tracker's weights when they exist, else None (the hand-made tracker then serves)."""
    from w2m2w.paths import DEFAULT_WEIGHTS

    path = DEFAULT_WEIGHTS[MODEL_NAME]
    return str(path) if path.is_file() else None


def learned_beats(notes: np.ndarray, weights: str | os.PathLike) -> Beats:
    """Beats, downbeats and meter of a note list (n, 4) by the learned tracker with the weights at `weights`."""
    import torch

    model = load_beat_tracker(str(weights))
    notes = np.asarray(notes, dtype=np.float64)
    with torch.inference_mode():
        return decode_activations(model.predict(notes), notes=notes)


# ---------------------------------------------------------------- whole pipelines


def beats_from_notes(notes: np.ndarray, start_bpm: float = 100.0, weights: str | os.PathLike | None = None) -> Beats:
    """Beats, downbeats and meter of a note list (n, 4): for MIDI with no usable tempo map.

    The learned tracker with `weights` (default: the shipped ones, where they exist); else the hand-made one.
    """
    weights = weights if weights is not None else default_weights()
    return learned_beats(notes, weights) if weights is not None else handmade_beats_from_notes(notes, start_bpm)


def beats_from_audio_and_notes(
    y: np.ndarray, sr: int, notes: np.ndarray, start_bpm: float = 100.0, weights: str | os.PathLike | None = None
) -> Beats:
    """Beats of audio y (samples,) and its transcription (n, 4): the transcribe stage has both.

    With the learned tracker (the default where its weights exist) the notes alone decide: it was
    trained on notes, and the transcription holds what the audio's onsets say. Without it, the
    hand-made tracker on the audio, with downbeats from the audio's and the notes' accents.
    """
    weights = weights if weights is not None else default_weights()
    return (
        learned_beats(notes, weights)
        if weights is not None
        else handmade_beats_from_audio_and_notes(y, sr, notes, start_bpm)
    )


MIN_NOTES = 8  # fewer notes than this give no beats worth a tempo map


def track_beats_of(notes: np.ndarray) -> Beats | None:
    """beats_from_notes for a stage's output: None where the notes are too few (MIN_NOTES) or give under two
    beats, so the caller writes a plain file."""
    if len(notes) < MIN_NOTES:
        return None
    beats = beats_from_notes(notes)
    return beats if len(beats.times) >= 2 else None


def beat_stats(beats: Beats | None) -> dict:
    """What a sidecar records of the beats written: their count, median tempo (bpm) and meter; empty for none."""
    if beats is None:
        return {"beats": 0}
    return {"beats": int(len(beats.times)), "tempo_bpm": round(beats.tempo, 1), "meter": int(beats.meter)}


def handmade_beats_from_notes(notes: np.ndarray, start_bpm: float = 100.0) -> Beats:
    """The hand-made tracker on a note list (n, 4): the notes' onset envelope, downbeats from their accents."""
    times = track_beats(note_onset_envelope(notes), FPS, start_bpm=start_bpm)
    meter, db = estimate_downbeats(note_beat_features(notes, times))
    return Beats(times, db, meter)


def beats_from_audio(y: np.ndarray, sr: int, start_bpm: float = 100.0) -> Beats:
    """Beats, downbeats and meter of mono audio y (samples,) by the hand-made tracker (no notes at hand)."""
    times = track_beats(audio_onset_envelope(y, sr), FPS, start_bpm=start_bpm)
    meter, db = estimate_downbeats(audio_beat_features(y, sr, times))
    return Beats(times, db, meter)


def handmade_beats_from_audio_and_notes(y: np.ndarray, sr: int, notes: np.ndarray, start_bpm: float = 100.0) -> Beats:
    """The hand-made tracker on audio y (samples,), downbeats from the audio's and its transcription's (n, 4) accents."""
    times = track_beats(audio_onset_envelope(y, sr), FPS, start_bpm=start_bpm)
    feats = np.concatenate([audio_beat_features(y, sr, times), note_beat_features(notes, times)], axis=1)
    meter, db = estimate_downbeats(feats)
    return Beats(times, db, meter)


def extend_beats(beats: Beats, end: float, start: float = 0.0) -> Beats:
    """`beats` carried on to cover [start, end] at its first and recent tempo (extrapolate_beats), bars
    continued in its meter.

    A continuation keeps the primer's tempo map this way; with fewer than two beats a 120-bpm grid is
    assumed (the MIDI default).
    """
    times = beats.times if len(beats.times) >= 2 else np.array([0.0, 0.5])
    db = beats.is_downbeat if len(beats.times) >= 2 else np.array([True, False])
    full = extrapolate_beats(times, end, start)
    n_before = int(np.searchsorted(full, times[0] - 1e-9))
    first = int(np.flatnonzero(db)[0]) + n_before if db.any() else n_before
    last = int(np.flatnonzero(db)[-1]) + n_before if db.any() else n_before
    is_db = np.zeros(len(full), dtype=bool)
    is_db[n_before : n_before + len(times)] = db
    idx = np.arange(len(full))
    is_db[:n_before] = (idx[:n_before] - first) % beats.meter == 0
    is_db[n_before + len(times) :] = (idx[n_before + len(times) :] - last) % beats.meter == 0
    return Beats(full, is_db, beats.meter)
