"""Bad settings through the real run.py: exit 2 and one line naming the key, before any model loads or any file is written."""

from __future__ import annotations

import pytest

from tests.conftest import run_pipeline

BAD = [  # override, what the line must say besides the key
    ("transcribe.onset_threshold=abc", "number"),
    ("transcribe.onset_threshold=7", "(0, 1)"),
    ("transcribe.frame_threshold=0", "(0, 1)"),
    ("transcribe.chunk_seconds=0", "(0, 120]"),
    ("generate.seconds=-5", "(0, 3600]"),
    ("generate.temperature=-1", "[0, inf)"),
    ("generate.top_p=abc", "number"),
    ("generate.top_p=1.5", "(0, 1]"),
    ("workers=abc", "integer"),
    ("workers=0", "[1, 1024]"),
    ("workers=-1", "[1, 1024]"),
    ("shard=3", "num_shards"),
    ("synthesize.tail_seconds=-1", "[0, inf)"),
    ("stages=[synthesize,transcribe]", "contiguous"),
    ("transcribe.onset_treshold=0.4", "not a setting"),
]


@pytest.mark.parametrize("override, says", BAD, ids=[o for o, _ in BAD])
def test_bad_setting_is_one_line_naming_the_key_and_nothing_is_written(tmp_path, override, says):
    run_dir = tmp_path / "run"
    res = run_pipeline(f"run_dir={run_dir}", override)
    key = override.split("=", 1)[0]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(lines) == 1 and key in lines[0] and says in lines[0], res.stderr[-3000:]
    assert not run_dir.exists(), "nothing may be written (run.json, .hydra, outputs)"


def test_each_job_of_a_sweep_is_checked_before_any_job_starts(tmp_path):
    run_dir = tmp_path / "run"
    res = run_pipeline("-m", f"run_dir={run_dir}", "stages=[generate]", "generate.top_p=0.5,7")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "generate.top_p=7" in lines[0], res.stderr[-3000:]
    assert not run_dir.exists()
