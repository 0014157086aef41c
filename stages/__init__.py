"""Stage entry points: each module has NAME, settings(cfg), weights_file(cfg) and run(cfg, job, run_dir)."""
