"""scripts/make_room_validation.py: MIDI lists rendered into the set, stages left out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.unit._scripts import load_script
from tests.unit._synth import make_maps
from w2m2w.audio import load_audio
from w2m2w.data.augment import STAGES
from w2m2w.data.rooms import RoomRanges
from w2m2w.midi import load_notes, write_midi

# small rooms with short tails, so that a bank builds in about a second
SMALL = RoomRanges(
    size_min=(3.0, 3.0, 2.4),
    size_max=(4.5, 4.0, 3.0),
    rt60=(0.2, 0.4),
    close_distance=(0.3, 0.8),
    far_distance=(2.2, 2.8),
    max_ir_seconds=0.4,
)


@pytest.fixture()
def script(monkeypatch):
    mod = load_script("make_room_validation")
    monkeypatch.setattr(mod, "VALIDATION_ROOMS", SMALL)
    return mod


def _common(tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "rooms"), "--rooms", "2", "--seconds", "2"]


def test_every_stage_skipped_writes_the_source_cut(script, tmp_path):
    """With the whole chain left out, the set is the input's first 2 s (to 16-bit precision) and its notes in them."""
    src = make_maps(tmp_path / "maps", ["a_SptkBGCl"], seconds=3.0)
    assert script.main(["--set", f"{src}:*", *_common(tmp_path), "--skip", *STAGES]) == 0
    out = tmp_path / "out" / "MAPS_MUS-a_SptkBGCl.flac"
    source = load_audio(src / "flac" / "MAPS_MUS-a_SptkBGCl.flac")[: 2 * 16000]
    np.testing.assert_allclose(sf.read(str(out), dtype="float32")[0], source, atol=1.0 / 2**15)
    notes = load_notes(src / "tsv" / "MAPS_MUS-a_SptkBGCl.tsv")
    assert len(load_notes(out.with_suffix(".tsv"))) == int(np.sum(notes[:, 0] < 2.0))
    assert json.loads((tmp_path / "out" / "rooms.json").read_text())["MAPS_MUS-a_SptkBGCl"]["skipped_stages"] == list(
        STAGES
    )


def test_a_midi_list_is_rendered_and_a_missing_file_is_one_line(script, tmp_path, capsys):
    pytest.importorskip("fluidsynth")
    notes = np.array([[0.2, 0.9, 60, 80], [0.5, 1.5, 64, 70], [2.5, 3.0, 67, 90]])  # the last one starts after 2 s
    (tmp_path / "midi").mkdir()
    write_midi(tmp_path / "midi" / "a.mid", notes)
    (tmp_path / "list.txt").write_text("# held-out pieces\nmidi/a.mid\nmidi/missing.mid  # gone\n\n")
    args = [
        "--midi",
        str(tmp_path / "list.txt"),
        "--midi-root",
        str(tmp_path),
        "--soundfont",
        "timgm6mb",
        "--render-cache",
        str(tmp_path / "renders"),
    ]
    assert script.main([*args, *_common(tmp_path)]) == 1  # one error, the rest written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mid" in err[0] and err[0].startswith("error:")
    (flac,) = sorted((tmp_path / "out").glob("*.flac"))
    assert flac.name.startswith("a_") and flac.stem.endswith("_timgm6mb")
    assert sf.info(str(flac)).duration == pytest.approx(2.0, abs=0.01)
    np.testing.assert_allclose(load_notes(flac.with_suffix(".tsv"))[:, :3], notes[:2, :3], atol=1e-3)


def test_an_unknown_stage_is_refused_before_anything_is_written(script, tmp_path):
    src = make_maps(tmp_path / "maps", ["a_SptkBGCl"], seconds=3.0)
    with pytest.raises(SystemExit) as exc:
        script.main(["--set", f"{src}:*", *_common(tmp_path), "--skip", "echo"])
    assert exc.value.code == 2 and not (tmp_path / "out").exists()
