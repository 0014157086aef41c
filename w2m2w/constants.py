"""The package's version and the sample rate every model works at: below every other module, so that none of them
imports the package root (which hands out the Python API, w2m2w/api.py, and would close an import cycle)."""

__version__ = "0.1.0"

SAMPLE_RATE = 16000  # Hz: the transcriber's input and the synthesizers' output (written files may be resampled)
