"""w2m2w: piano recordings to new piano music (transcribe -> generate -> synthesize)."""

__version__ = "0.1.0"

SAMPLE_RATE = 16000
