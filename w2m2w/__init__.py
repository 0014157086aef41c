"""w2m2w: piano recordings to new piano music (transcribe -> generate -> synthesize).

The Python API (w2m2w/api.py), loaded on first use so that `import w2m2w` stays light:
w2m2w.transcribe(audio_or_path) -> PrettyMIDI, w2m2w.continue_midi(midi, seconds=20) -> PrettyMIDI,
w2m2w.synthesize(midi) -> (samples, sample_rate), w2m2w.run(inputs, run_dir, **settings) -> RunResult.
"""

import contextlib
import io
from typing import Any

from w2m2w.constants import SAMPLE_RATE, __version__  # noqa: F401 (the package's public names)

# pyfluidsynth (imported by pretty_midi) prints where it found libfluidsynth on stdout
# whenever CI is set; stdout carries results (evaluate's JSON), so load it once here and drop that line.
with contextlib.redirect_stdout(io.StringIO()):
    try:
        import fluidsynth  # noqa: F401
    except Exception:  # not installed or no libfluidsynth: rendering reports that when asked
        pass

_API = ("transcribe", "continue_midi", "synthesize", "RunResult")


def __getattr__(name: str) -> Any:
    """The API's functions, imported when first asked for (the API imports torch and the stages).

    `w2m2w.run` is the subpackage w2m2w/run, which is callable as the API's run (w2m2w/run/__init__.py):
    the name is both, so `w2m2w.run(...)` and `from w2m2w.run import runner` both keep working.
    """
    if name in _API:
        from w2m2w import api

        return getattr(api, name)
    if name == "run":
        import w2m2w.run

        return w2m2w.run
    raise AttributeError(f"module 'w2m2w' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "run"])
