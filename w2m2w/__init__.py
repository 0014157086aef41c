"""w2m2w: piano recordings to new piano music (transcribe -> generate -> synthesize)."""

import contextlib
import io

__version__ = "0.1.0"

SAMPLE_RATE = 16000

# pyfluidsynth (imported by pretty_midi) prints where it found libfluidsynth on stdout
# whenever CI is set; stdout carries results (evaluate's JSON), so load it once here and drop that line.
with contextlib.redirect_stdout(io.StringIO()):
    try:
        import fluidsynth  # noqa: F401
    except Exception:  # not installed or no libfluidsynth: rendering reports that when asked
        pass
