"""Training: one loop (loop.py) for every model; `python -m w2m2w.train train=NAME` picks the model's data and settings (NAME.py)."""
