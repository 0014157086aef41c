"""A stand-in for torchaudio, holding only what Transkun's model needs: `functional.melscale_fbanks`.

Transkun (a peer transcriber that benchmarks/transcribe_peers.py measures) declares
torchaudio and calls it once, for the mel filterbank of its front end
(transkun.Util.MelSpectrum registers it as the buffer `freq2mels`). Transkun's
checkpoint holds that buffer, so load_state_dict overwrites whatever this
returns; the peers worker checks that it does. torchaudio does not import in
this project's environment, so the worker (and only the worker, in its own
subprocess) puts this folder's parent first on sys.path. Nothing in w2m2w sees it.
"""

from . import functional

__version__ = "0.0.0+w2m2w-standin"
__all__ = ["functional"]
