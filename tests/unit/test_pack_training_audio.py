"""scripts/pack_training_audio.py: the pack keeps each group's share, cuts notes with the audio, and trains as MAPS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.unit._scripts import load_script
from tests.unit._synth import make_maps
from w2m2w.data.transcription import Example, maps_examples
from w2m2w.midi import load_notes


@pytest.fixture(scope="module")
def pack():
    return load_script("pack_training_audio")


def test_each_group_gets_its_share_of_the_audio(pack):
    # A: four 100 s examples, B: two, so A holds 2/3 of the audio. 4 minutes of 60 s cuts: A's
    # share is 160 s, three cuts (180 s); B's 80 s, two cuts. (Equal shares or taking the groups
    # in turn would give two and two.)
    a = [Example(f"a{i}.flac", f"a{i}.tsv", f"a{i}", "A") for i in range(4)]
    b = [Example(f"b{i}.flac", f"b{i}.tsv", f"b{i}", "B") for i in range(2)]
    seconds = {e.audio: 100.0 for e in a + b}
    chosen = pack.choose(a + b, seconds, minutes=4.0, window=60.0, rng=np.random.default_rng(0))
    assert sorted(e.group for e in chosen) == ["A", "A", "A", "B", "B"]
    assert len({e.name for e in chosen}) == 5


def test_pack_names_put_the_group_last(pack):
    assert (
        pack.pack_name(Example("x.flac", "x.tsv", "MAPS_MUS-bach_846_AkPnBcht", "AkPnBcht"))
        == "MAPS_MUS-bach_846_AkPnBcht"
    )
    assert (
        pack.pack_name(Example("x.flac", "x.tsv", "042_862831436702_fluidr3", "fluidr3"))
        == "MAPS_MUS-042_862831436702_fluidr3"
    )


def test_a_vorbis_pack_reads_back_as_a_maps_folder(pack, tmp_path):
    src = make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_AkPnStgb", "c_AkPnStgb", "b_SptkBGCl"], seconds=6.0)
    out = tmp_path / "pack"
    overrides = [f"train.maps_root={src}", "train.midi_globs=[]"]
    assert (
        pack.main(
            [
                "--out",
                str(out),
                "--minutes",
                "0.2",
                "--seconds",
                "4",
                "--codec",
                "vorbis",
                *overrides,
                "train.validation_seconds=5",
            ]
        )
        == 0
    )
    packed = maps_examples(out)
    assert all(Path(e.audio).suffix == ".ogg" for e in packed)
    # the validation piano's piece whole (its first 5 s), and training cuts of 4 s, never of b (the held-out piece)
    val = [e for e in packed if e.group == "SptkBGCl"]
    assert [e.name for e in val] == ["MAPS_MUS-b_SptkBGCl"]
    train = [e for e in packed if e.group != "SptkBGCl"]
    assert train and all(not e.name.startswith("MAPS_MUS-b_") for e in train)
    for e in packed:
        seconds = 5.0 if e in val else 4.0
        assert sf.info(e.audio).duration == pytest.approx(seconds, abs=0.01)
        notes = load_notes(e.notes)
        assert len(notes) and notes[:, 0].min() >= 0 and notes[:, 1].max() <= seconds + 1e-6
    # the validation cut starts at 0: its notes are the source's that start in the first 5 s
    source = load_notes(src / "tsv" / "MAPS_MUS-b_SptkBGCl.tsv")
    np.testing.assert_allclose(
        np.sort(load_notes(val[0].notes)[:, 0]), np.sort(source[source[:, 0] < 5.0, 0]), atol=1e-5
    )


def test_nothing_to_pack_and_a_wrong_key_are_one_line_errors(pack, tmp_path, capsys):
    out = tmp_path / "pack"
    assert pack.main(["--out", str(out), f"train.maps_root={tmp_path / 'none'}", "train.midi_globs=[]"]) == 2
    assert pack.main(["--out", str(out), "train.no_such_key=1"]) == 2
    src = make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl"], seconds=3.0)
    assert pack.main(["--out", str(out), "--val", "render_nope", f"train.maps_root={src}", "train.midi_globs=[]"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(lines) == 3 and "no training data" in lines[0] and "no_such_key" in lines[1] and "maps_SptkBGCl" in lines[2]
    )
    assert not out.exists()  # the unknown validation set is refused before any training audio is written


def test_labelled_recordings_are_packed_whole_in_folders_training_reads(pack, tmp_path, capsys):
    import shutil

    from w2m2w.data.transcription import audio_dir_examples

    src = make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl", "r_X", "v_X"], seconds=6.0)
    for name, folder in (("r", "real_tr"), ("v", "real_va")):  # two "real" recordings beside their labels
        (tmp_path / folder).mkdir()
        shutil.copy(src / "flac" / f"MAPS_MUS-{name}_X.flac", tmp_path / folder / f"{name}.flac")
        shutil.copy(src / "tsv" / f"MAPS_MUS-{name}_X.tsv", tmp_path / folder / f"{name}.tsv")
    for f in list((src / "flac").glob("*_X.*")) + list((src / "tsv").glob("*_X.*")):
        f.unlink()
    out = tmp_path / "pack"
    overrides = [
        f"train.maps_root={src}",
        "train.midi_globs=[]",
        f"train.audio_dirs=[{tmp_path / 'real_tr'}]",
        "train.audio_share=0.4",
    ]
    overrides += [f"train.val_audio_dirs=[{tmp_path / 'real_va'}]", "train.select_by=audio_real_va"]
    assert (
        pack.main(["--out", str(out), "--minutes", "0.1", "--seconds", "3", *overrides, "train.validation_seconds=5"])
        == 0
    )
    real_tr, real_va = (
        audio_dir_examples(out / "audio_dirs" / "real_train"),
        audio_dir_examples(out / "audio_dirs" / "real_va"),
    )
    assert [e.name for e in real_tr] == ["r"] and [e.name for e in real_va] == ["v"]
    for e, name in ((real_tr[0], "r"), (real_va[0], "v")):  # whole, not cut to --seconds, and their notes all there
        assert sf.info(e.audio).duration == pytest.approx(6.0, abs=0.01)
        np.testing.assert_allclose(
            load_notes(e.notes),
            load_notes(tmp_path / ("real_tr" if name == "r" else "real_va") / f"{name}.tsv"),
            atol=1e-5,
        )
    assert not any("_audio_dir" in p.name for p in (out / "flac").iterdir())  # not drawn into the MAPS layout
    printed = capsys.readouterr().out
    assert "train.audio_share=0.4" in printed and "train.select_by=audio_real_va" in printed and "real_train" in printed
