"""scripts/prepare_maps.py: no real Disklavier recording, and no piece one played, reaches the training folder."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.unit._scripts import load_script


@pytest.fixture(scope="module")
def prep():
    return load_script("prepare_maps")


def test_split_name(prep):
    assert prep.split_name("MAPS_MUS-chpn-p19_AkPnBsdf") == ("chpn-p19", "AkPnBsdf")
    assert prep.split_name("MAPS_MUS-mz_331_2_ENSTDkCl") == ("mz_331_2", "ENSTDkCl")
    assert prep.split_name("MAPS_ISOL_NO_F_S0_M21_AkPnBsdf") is None  # not a music piece
    assert prep.split_name("notes") is None


def test_allowed_leaves_out_real_pianos_and_what_they_played(prep):
    stems = [
        "MAPS_MUS-a_AkPnBsdf",  # only on software pianos: kept
        "MAPS_MUS-a_SptkBGCl",
        "MAPS_MUS-b_StbgTGd2",  # b was also played on ENSTDkAm: out, on every piano
        "MAPS_MUS-b_ENSTDkAm",
        "MAPS_MUS-b_AkPnCGdD",
        "MAPS_MUS-c_ENSTDkCl",  # a real piano's own recording: out
        "MAPS_MUS-a_b_AkPnStgb",  # piece 'a_b', not 'a' or 'b'
    ]
    assert prep.allowed(stems) == ["MAPS_MUS-a_AkPnBsdf", "MAPS_MUS-a_SptkBGCl", "MAPS_MUS-a_b_AkPnStgb"]


def test_main_writes_only_allowed_pairs_and_never_opens_a_real_piano(prep, tmp_path, capsys):
    src = tmp_path / "MAPS"
    (src / "flac").mkdir(parents=True)
    (src / "tsv" / "matched").mkdir(parents=True)
    y = np.zeros(16000 * 6, dtype=np.float32)
    for stem in ("MAPS_MUS-a_AkPnBsdf", "MAPS_MUS-b_AkPnBsdf", "MAPS_MUS-n_AkPnBsdf"):
        sf.write(str(src / "flac" / f"{stem}.flac"), y, 16000)
    (src / "flac" / "MAPS_MUS-b_ENSTDkCl.flac").write_bytes(b"not audio: opening it would fail")
    for stem in ("MAPS_MUS-a_AkPnBsdf", "MAPS_MUS-b_AkPnBsdf", "MAPS_MUS-b_ENSTDkCl"):
        (src / "tsv" / "matched" / f"{stem}.tsv").write_text("onset\toffset\tnote\tvelocity\n0.1\t0.5\t60\t80\n")
    out = tmp_path / "out"
    assert prep.main(["--src", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "flac").iterdir()) == ["MAPS_MUS-a_AkPnBsdf.flac"]  # n has no notes
    assert sorted(p.name for p in (out / "tsv").iterdir()) == ["MAPS_MUS-a_AkPnBsdf.tsv"]
    text = capsys.readouterr().out
    assert "AkPnBsdf      1 pieces     0.1 min" in text and "2 software-piano pieces left out" in text


def test_main_refuses_a_folder_without_maps(prep, tmp_path, capsys):
    assert prep.main(["--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no flac/ and tsv/" in capsys.readouterr().err
