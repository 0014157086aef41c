"""Notes to audio: the renderer interface and registry, and its implementations (source-filter WaveNet, autoregressive WaveNet, FluidSynth)."""
