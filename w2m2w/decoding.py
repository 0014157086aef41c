"""Onset/frame/velocity probabilities -> notes (Hawthorne et al. 2018 decoding)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from w2m2w.midi import MIN_MIDI, empty_notes, sort_notes
from w2m2w.pedal import PEDAL_MIN_DURATION
from w2m2w.settings import NON_NEGATIVE, PROBABILITY_OPEN, PROBABILITY_UPPER, setting


@dataclass
class DecodeConfig:
    """The transcriber's decoding thresholds (decode_notes, pedal.decode_pedal), each with its allowed range: the one
    declaration the transcribe stage's settings and `evaluate`'s decode block take theirs from."""

    # Chosen for the shipped weights by scripts/tune_decoding.py on the dry held-out piano and
    # soundfont (weights/README.md); a low frame threshold and the offset head together end notes
    # where the key is let go, where 0.5 alone ended them too early (the figures: weights/README.md, onsets_frames,
    # "Figures behind the code's choices"). The onset threshold: 0.3 since December 8, for the campaign's step 1,700,
    # where 0.3 and 0.4 tie on room_tune's note F1 and 0.3 keeps the recall (weights/README.md, the campaign).
    onset_threshold: float = setting(0.3, range=PROBABILITY_OPEN)
    frame_threshold: float = setting(0.05, range=PROBABILITY_OPEN)
    min_duration: float = setting(0.0, range=NON_NEGATIVE)
    # a note also ends where the offset head is above this (1.0: never; decode_notes)
    offset_threshold: float = setting(0.2, range=PROBABILITY_UPPER)
    # the pedal head's (pedal.decode_pedal), chosen the same way
    pedal_onset_threshold: float = setting(0.3, range=PROBABILITY_OPEN)
    pedal_offset_threshold: float = setting(0.06, range=PROBABILITY_OPEN)
    pedal_frame_threshold: float = setting(0.3, range=PROBABILITY_OPEN)
    pedal_min_duration: float = setting(PEDAL_MIN_DURATION, range=NON_NEGATIVE)
    # s; an offset under a still-high frame head is a pedal change: down again this much later (0: never)
    pedal_change_gap: float = setting(0.25, range=NON_NEGATIVE)


def decode_notes(
    onset: np.ndarray,
    frame: np.ndarray,
    velocity: np.ndarray | None,
    frame_rate: float,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.5,
    min_duration: float = 0.0,
    offset: np.ndarray | None = None,
    offset_threshold: float = 1.0,
) -> np.ndarray:
    """Decode (frames, 88) probabilities to a note list (n, 4).

    A note starts at the first frame of each run of onset probability above
    `onset_threshold` and lasts while the frame probability stays above
    `frame_threshold` (the onset run itself counts as sounding). Above means
    strictly: a probability equal to a threshold does not count. Its velocity
    is the mean velocity-head output over the onset run, scaled to 1..127.

    With `offset` (frames, 88) probabilities, a note also ends at the first frame after its
    onset run where the offset head is above `offset_threshold` (where the key, or the pedal,
    let the string go), even if the frame head still hears it; 1.0 (the default) never fires.
    """
    onset = np.asarray(onset)
    frame = np.asarray(frame)
    T, K = onset.shape
    on = onset > onset_threshold
    fr = frame > frame_threshold
    if offset is not None:  # an offset frame is not sounding: the note ends there
        fr = fr & ~(np.asarray(offset) > offset_threshold)
    # first frame of each onset run
    starts = on & ~np.vstack([np.zeros((1, K), bool), on[:-1]])
    notes = []
    for t, k in zip(*np.nonzero(starts)):
        run_end = t
        while run_end + 1 < T and on[run_end + 1, k]:
            run_end += 1
        end = run_end + 1
        while end < T and fr[end, k] and not starts[end, k]:
            end += 1
        if velocity is not None:
            v = float(np.mean(velocity[t : run_end + 1, k]))
            vel = float(np.clip(round(v * 127), 1, 127))
        else:
            vel = 64.0
        onset_s = t / frame_rate
        offset_s = end / frame_rate
        if offset_s - onset_s >= min_duration:
            notes.append((onset_s, offset_s, k + MIN_MIDI, vel))
    if not notes:
        return empty_notes()
    return sort_notes(np.array(notes, dtype=np.float64))
