"""What every renderer's output goes through last: its end where the sound has died away, and one stated loudness.

`Finished` wraps any Renderer (source-filter, autoregressive WaveNet, FluidSynth)
and is itself one, so the synthesize stage and `evaluate task=synthesis` treat
all of them alike:

- **End.** Asked for no particular length, the inner renderer renders up to its
  cap (its last note's offset plus its `tail_seconds`); the output then ends at
  the last sample above END_DB relative to the render's peak, so a render stops
  when its last sound has decayed, not at a fixed margin. Asked for a length
  (the evaluation renders every system to one), it gives exactly that.
- **EQ** (`eq_db`, optional): a fixed equaliser per octave band (w2m2w.render.eq), first.
- **Level.** With a target (`loudness_lufs`), the whole render is metered
  (BS.1770 integrated loudness, w2m2w.loudness) and scaled to it; where that
  would lift the peak above PEAK_CEILING_DBFS, the gain stops at the ceiling
  and the render is marked `loudness_limited` (quieter than asked, never clipped).
  Silence gets no gain.

Both need the whole render before its first sample can be written, so the
render goes to an unnamed temporary file (float32, removed by the system even
if the process is killed) and is read back in chunks: memory stays bounded.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from w2m2w.loudness import PEAK_CEILING_DBFS, LoudnessMeter, level_for
from w2m2w.render.eq import StreamingEQ
from w2m2w.settings import Range

END_DB = -90.0  # a render ends where its sound has decayed this far below its peak (16-bit PCM's floor is -96 dB)
_READ = 1 << 18  # samples per chunk of the second pass (1 MB of float32)
log = logging.getLogger("w2m2w")

# Every renderer's output is brought to this integrated loudness (BS.1770), so they compare by ear: the synthesize
# stage's default and `evaluate task=synthesis`'s. -20 LUFS: renders of piano music peak well above their loudness, and
# at -20 their peaks land under the -1 dBFS ceiling (measured: weights/README.md, source_filter_wavenet, "Figures
# behind the code's choices"); below -70 LUFS is silence to the meter.
LOUDNESS_LUFS = -20.0
LOUDNESS = Range(-70, 0)


class Finished:
    """A Renderer whose output ends where its sound has decayed and stands at one loudness; describe() adds both."""

    def __init__(
        self,
        inner: Any,
        loudness_lufs: float | None = None,
        eq_db: list[float] | None = None,
        ceiling_dbfs: float = PEAK_CEILING_DBFS,
    ):
        self.inner = inner
        self.loudness_lufs = loudness_lufs
        self.eq_db = list(eq_db) if eq_db else None
        self.ceiling_dbfs = ceiling_dbfs
        self.name, self.sample_rate, self.backend = inner.name, inner.sample_rate, inner.backend
        self.last: dict[str, Any] = {}  # what the last stream() did (describe() reports it)

    def n_samples(self, notes: np.ndarray) -> int:
        """The most a render of `notes` lasts (the inner renderer's cap); it may end sooner."""
        return self.inner.n_samples(notes)

    def stream(
        self, notes: np.ndarray, n_samples: int | None = None, progress: Callable[[float], None] | None = None
    ) -> Iterator[np.ndarray]:
        """float32 chunks: n_samples in all if given, else up to where the sound has decayed below END_DB."""
        meter = LoudnessMeter(self.sample_rate)
        eq = StreamingEQ(self.eq_db, self.sample_rate) if self.eq_db else None

        def keep(y: np.ndarray) -> None:
            meter.push(y)
            tmp.write(np.asarray(y, np.float32).tobytes())

        with tempfile.TemporaryFile() as tmp:
            for y in self.inner.stream(notes, n_samples, progress):
                keep(eq.push(y) if eq else y)
            if eq:
                keep(eq.flush())
            total = meter.n_samples
            end = total if n_samples is not None else _end(tmp, meter.peak, total)
            level = level_for(meter, self.loudness_lufs, self.ceiling_dbfs) if self.loudness_lufs is not None else None
            self.last = {"rendered_seconds": round(total / self.sample_rate, 3), **(level.stats() if level else {})}
            if level is not None and level.limited:
                log.warning(
                    "loudness: %.1f LUFS asked, %.1f LUFS given: more gain would lift the peak above %g dBFS",
                    level.target_lufs,
                    level.lufs,
                    self.ceiling_dbfs,
                )
            gain = np.float32(level.gain if level is not None else 1.0)
            tmp.seek(0)
            for a in range(0, end, _READ):
                y = np.frombuffer(tmp.read(4 * min(_READ, end - a)), np.float32)
                yield y * gain if gain != 1 else y.copy()

    def render(self, notes: np.ndarray, n_samples: int | None = None) -> np.ndarray:
        parts = list(self.stream(notes, n_samples))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), **self.last}


def _end(tmp: Any, peak: float, total: int) -> int:
    """Samples up to and including the last one above END_DB relative to `peak` (tmp: the float32 render, total
    samples long); all of them where nothing sounds (peak 0: no sample is above it). Reads backwards from the end:
    only the decayed tail is read."""
    threshold = peak * 10.0 ** (END_DB / 20.0)
    for stop in range(total, 0, -_READ):
        start = max(0, stop - _READ)
        tmp.seek(4 * start)
        loud = np.flatnonzero(np.abs(np.frombuffer(tmp.read(4 * (stop - start)), np.float32)) > threshold)
        if len(loud):
            return start + int(loud[-1]) + 1
    return total  # exact silence: the length the renderer chose
