"""End-to-end: the pipeline on a real local Ray cluster (2 CPUs) gives the local executor's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_pipeline
from tests.e2e.test_batch import all_stages, folder, outputs, weights  # noqa: F401  (fixtures)

pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'w2m2w[ray]'")


def test_ray_executor_matches_local(tmp_path, folder, weights):  # noqa: F811
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    r1 = run_pipeline(*all_stages(local, weights, f"input={folder}", "workers=1"))
    r2 = run_pipeline(*all_stages(on_ray, weights, f"input={folder}", "executor=ray", "executor.num_cpus=2"))
    assert r1.returncode == 1 and r2.returncode == 1, r2.stderr[-3000:]  # broken.wav fails on both
    log = r2.stdout + r2.stderr
    assert "ray: 2 actor(s)" in log, log[-3000:]
    o1, o2 = outputs(local), outputs(on_ray)
    assert len(o2) == 9 and sorted(o1) == sorted(o2)
    for k in o1:
        assert np.allclose(o1[k], o2[k], atol=1e-4), k
    summary = json.loads((on_ray / "summary.json").read_text())
    assert summary["counts"] == {"done": 3, "failed": 1} and "broken.wav" in summary["failed"]["broken"]
