"""The run machinery: the run directory, one piece through its stages, local and Ray pools, stopping, progress, the report."""
