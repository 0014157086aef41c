"""One training loop per model; `python -m w2m2w.train train=NAME` picks one."""
