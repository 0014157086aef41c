"""`python -m w2m2w.evaluate task=NAME`: the evaluation command (__main__) and the measurements behind each task."""
