"""Performance events (Oore et al. 2018): note lists <-> token ids.

Vocabulary (391 ids):

    0 PAD, 1 BOS, 2 EOS
    3..130    NOTE_ON  pitch 0..127
    131..258  NOTE_OFF pitch 0..127
    259..358  TIME_SHIFT 1..100 steps of 10 ms (10 ms .. 1 s)
    359..390  VELOCITY bin 0..31 (bins of 4 MIDI velocities, as Magenta's)

A velocity token comes before a NOTE_ON only when the bin changes; a gap
longer than 1 s is several TIME_SHIFTs. At one time step NOTE_OFFs come
before NOTE_ONs, so a key released and struck again on the same step reads
back as two notes.

The tokens can say only that a key goes down or up, so a note list maps to
its *canonical* form: times on the 10 ms grid, notes at least one step long,
velocities at their bin's value, and a key struck again while it sounds
ends the earlier note there (as `midi.apply_sustain` does for the pedal).
`tokens_to_notes(notes_to_tokens(x)) == canonical_notes(x)` exactly.
"""

from __future__ import annotations

import numpy as np

STEPS_PER_SECOND = 100
MAX_SHIFT = 100  # steps in one TIME_SHIFT token (1 s)
N_PITCHES = 128
N_VELOCITY_BINS = 32
VELOCITY_BIN_SIZE = 4  # ceil(127 / 32), Magenta's binning of 1..127

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
NOTE_ON = N_SPECIAL
NOTE_OFF = NOTE_ON + N_PITCHES
TIME_SHIFT = NOTE_OFF + N_PITCHES
VELOCITY = TIME_SHIFT + MAX_SHIFT
VOCAB_SIZE = VELOCITY + N_VELOCITY_BINS
DEFAULT_VELOCITY_BIN = 15  # until the first VELOCITY token: mezzo forte


def velocity_bin(velocity: np.ndarray | float) -> np.ndarray:
    """MIDI velocity 1..127 -> bin 0..31 (0 and out-of-range values are clipped)."""
    v = np.clip(np.rint(np.asarray(velocity, dtype=np.float64)), 1, 127).astype(np.int64)
    return (v - 1) // VELOCITY_BIN_SIZE


def bin_velocity(b: np.ndarray | int) -> np.ndarray:
    """Bin 0..31 -> the MIDI velocity that stands for it (the middle of the bin)."""
    b = np.asarray(b, dtype=np.int64)
    return np.minimum(1 + VELOCITY_BIN_SIZE * b + VELOCITY_BIN_SIZE // 2, 127)


def to_steps(seconds: np.ndarray | float) -> np.ndarray:
    """Seconds -> integer 10 ms steps (rounded to the nearest)."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * STEPS_PER_SECOND).astype(np.int64)


def _canonical_steps(notes: np.ndarray) -> np.ndarray:
    """(n, 4) int64 rows (onset step, offset step, pitch, velocity bin), canonical, sorted."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    keep = (notes[:, 2] >= 0) & (notes[:, 2] < N_PITCHES) & np.isfinite(notes).all(axis=1)
    notes = notes[keep]
    if len(notes) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    on = np.maximum(to_steps(notes[:, 0]), 0)
    off = np.maximum(to_steps(notes[:, 1]), on + 1)
    pitch = notes[:, 2].astype(np.int64)
    vel = velocity_bin(notes[:, 3])
    rows = np.stack([on, off, pitch, vel], axis=1)
    # by pitch, then onset; on a tie the longer, then louder note wins the key
    rows = rows[np.lexsort((-rows[:, 3], -rows[:, 1], rows[:, 0], rows[:, 2]))]
    same_key = rows[1:, 2] == rows[:-1, 2]
    dup = np.concatenate([[False], same_key & (rows[1:, 0] == rows[:-1, 0])])
    rows = rows[~dup]
    # a key struck again ends the note it was sounding
    nxt = np.concatenate([rows[1:, 0], [np.iinfo(np.int64).max]])
    same_key = np.concatenate([rows[1:, 2] == rows[:-1, 2], [False]])
    cut = same_key & (rows[:, 1] > nxt)
    rows[cut, 1] = nxt[cut]
    return rows[np.lexsort((rows[:, 2], rows[:, 0]))]


def canonical_notes(notes: np.ndarray) -> np.ndarray:
    """What `notes` reads back as after encoding: (n, 4) float, sorted by onset then pitch."""
    rows = _canonical_steps(notes)
    out = np.empty((len(rows), 4), dtype=np.float64)
    out[:, 0] = rows[:, 0] / STEPS_PER_SECOND
    out[:, 1] = rows[:, 1] / STEPS_PER_SECOND
    out[:, 2] = rows[:, 2]
    out[:, 3] = bin_velocity(rows[:, 3])
    return out


def notes_to_tokens(notes: np.ndarray, start: float = 0.0) -> np.ndarray:
    """Note list (n, 4) -> int64 token ids (no BOS/EOS), time measured from `start` seconds.

    Notes before `start` are dropped. The stream ends with the last NOTE_OFF.
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if start:
        notes = notes[notes[:, 0] >= start].copy()
        notes[:, :2] -= start
    rows = _canonical_steps(notes)
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    n = len(rows)
    # (step, kind, pitch, velocity bin, order): kind 0 = off, 1 = on, so offs come first at a step
    times = np.concatenate([rows[:, 1], rows[:, 0]])
    kind = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    pitch = np.concatenate([rows[:, 2], rows[:, 2]])
    vel = np.concatenate([rows[:, 3], rows[:, 3]])
    order = np.lexsort((pitch, kind, times))
    out: list[int] = []
    now, cur_vel = 0, -1
    for i in order:
        t = int(times[i])
        while t > now:
            d = min(t - now, MAX_SHIFT)
            out.append(TIME_SHIFT + d - 1)
            now += d
        if kind[i]:
            if vel[i] != cur_vel:
                cur_vel = int(vel[i])
                out.append(VELOCITY + cur_vel)
            out.append(NOTE_ON + int(pitch[i]))
        else:
            out.append(NOTE_OFF + int(pitch[i]))
    return np.asarray(out, dtype=np.int64)


def tokens_to_notes(tokens: np.ndarray, end_open_notes: bool = True) -> np.ndarray:
    """Token ids -> note list (n, 4); tolerant of any sequence a model may sample.

    PAD and BOS are ignored, EOS ends the stream. A NOTE_OFF with no sounding
    note is ignored; a NOTE_ON of a sounding key ends that note first (a
    zero-length note is dropped). Keys still down at the end are released
    there (or dropped with end_open_notes=False).
    """
    now, vel = 0, DEFAULT_VELOCITY_BIN
    active: dict[int, tuple[int, int]] = {}
    rows: list[tuple[int, int, int, int]] = []
    for tok in np.asarray(tokens, dtype=np.int64).tolist():
        if tok == EOS:
            break
        if NOTE_ON <= tok < NOTE_OFF:
            p = tok - NOTE_ON
            if p in active:
                on, v = active.pop(p)
                if now > on:
                    rows.append((on, now, p, v))
            active[p] = (now, vel)
        elif NOTE_OFF <= tok < TIME_SHIFT:
            p = tok - NOTE_OFF
            if p in active:
                on, v = active.pop(p)
                rows.append((on, max(now, on + 1), p, v))
        elif TIME_SHIFT <= tok < VELOCITY:
            now += tok - TIME_SHIFT + 1
        elif VELOCITY <= tok < VOCAB_SIZE:
            vel = tok - VELOCITY
    if end_open_notes:
        rows += [(on, max(now, on + 1), p, v) for p, (on, v) in active.items()]
    if not rows:
        return np.zeros((0, 4), dtype=np.float64)
    r = np.asarray(rows, dtype=np.int64)
    r = r[np.lexsort((r[:, 2], r[:, 0]))]
    out = np.empty((len(r), 4), dtype=np.float64)
    out[:, 0] = r[:, 0] / STEPS_PER_SECOND
    out[:, 1] = r[:, 1] / STEPS_PER_SECOND
    out[:, 2] = r[:, 2]
    out[:, 3] = bin_velocity(r[:, 3])
    return out


def duration_steps(tokens: np.ndarray) -> int:
    """Total TIME_SHIFT steps in `tokens` (stopping at EOS)."""
    t = np.asarray(tokens, dtype=np.int64)
    eos = np.flatnonzero(t == EOS)
    if len(eos):
        t = t[: eos[0]]
    shifts = t[(t >= TIME_SHIFT) & (t < VELOCITY)]
    return int((shifts - TIME_SHIFT + 1).sum())


def token_name(tok: int) -> str:
    """'NOTE_ON(60)', 'TIME_SHIFT(250ms)', 'VELOCITY(20)', 'EOS', ... for logs and tests."""
    if tok < N_SPECIAL:
        return ("PAD", "BOS", "EOS")[tok]
    if tok < NOTE_OFF:
        return f"NOTE_ON({tok - NOTE_ON})"
    if tok < TIME_SHIFT:
        return f"NOTE_OFF({tok - NOTE_OFF})"
    if tok < VELOCITY:
        return f"TIME_SHIFT({(tok - TIME_SHIFT + 1) * 10}ms)"
    if tok < VOCAB_SIZE:
        return f"VELOCITY({tok - VELOCITY})"
    raise ValueError(f"token id {tok} is outside the vocabulary of {VOCAB_SIZE}")


def key_state(tokens: np.ndarray) -> np.ndarray:
    """(T, 128) bool: which keys are down after each token of `tokens` (T,), read as `tokens_to_notes` reads them
    (a NOTE_ON presses its key, a NOTE_OFF releases it, a stray NOTE_OFF changes nothing; EOS releases all).

    A performance-event model has to remember which keys it pressed to know which it may release; handing it
    this state (computed from the tokens alone, so training and sampling see the same thing) spares it that."""
    toks = np.asarray(tokens, dtype=np.int64).reshape(-1)
    n = len(toks)
    idx = np.arange(n)
    is_on = (toks >= NOTE_ON) & (toks < NOTE_OFF)
    is_off = (toks >= NOTE_OFF) & (toks < TIME_SHIFT)
    last_on = np.full((n, N_PITCHES), -1, dtype=np.int64)
    last_off = np.full((n, N_PITCHES), -1, dtype=np.int64)
    last_on[idx[is_on], toks[is_on] - NOTE_ON] = idx[is_on]
    last_off[idx[is_off], toks[is_off] - NOTE_OFF] = idx[is_off]
    eos = np.where(toks == EOS, idx, -1)
    last_on = np.maximum.accumulate(last_on, axis=0)
    last_off = np.maximum.accumulate(np.maximum(last_off, eos[:, None]), axis=0)
    return last_on > last_off


def valid_next(tokens: np.ndarray) -> np.ndarray:
    """(T, VOCAB_SIZE) bool: the events that may follow each prefix tokens[:t + 1] in a canonical stream: a NOTE_OFF
    only for a key that is down. Everything else stays allowed (a NOTE_ON of a down key reads as a restrike)."""
    state = key_state(tokens)
    ok = np.ones((len(state), VOCAB_SIZE), dtype=bool)
    ok[:, NOTE_OFF : NOTE_OFF + N_PITCHES] = state
    return ok
