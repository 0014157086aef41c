"""The settings hash a sidecar records comes from the stage's settings dataclass: an output-changing setting makes
the output stale, a setting that only changes how it is computed (device, threads) does not."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from stages.transcribe import TranscribeSettings
from w2m2w.run.piece import Plan, run_piece
from w2m2w.run.stage import Configured, Stage, StageJob


class FakeTranscribe(Stage):
    """The transcribe stage's name and settings, without a model: writes the settings it ran with."""

    name = "transcribe"
    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}

    def run(self, s: TranscribeSettings, job: StageJob) -> dict:
        job.output.write_text(json.dumps(dataclasses.asdict(s)))
        return {"notes": 0}


def _run(tmp_path: Path, **changes) -> tuple[str, dict]:
    src = tmp_path / "a.wav"
    if not src.exists():
        src.write_bytes(b"RIFF....")
    plan = Plan([Configured(FakeTranscribe(), TranscribeSettings(**changes))], tmp_path / "run")
    result = run_piece("a", src, plan)
    side = json.loads((tmp_path / "run" / "1-transcribe" / "a.json").read_text())
    return result.stages["transcribe"]["status"], side


def test_sidecar_hash_follows_output_settings_only(tmp_path):
    status, first = _run(tmp_path)
    assert (
        status == "done" and first["settings"]["onset_threshold"] == 0.3 and "device" not in first["settings"]
    )  # the YAML default
    status, again = _run(tmp_path, device="cuda", max_seconds=10.0)  # how, not what: still current
    assert status == "current" and again["config_hash"] == first["config_hash"]
    status, changed = _run(tmp_path, onset_threshold=0.7)  # what: recomputed under a new hash
    assert (
        status == "done"
        and changed["config_hash"] != first["config_hash"]
        and changed["settings"]["onset_threshold"] == 0.7
    )
