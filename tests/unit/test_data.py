"""Datasets (MAPS and MAESTRO layouts), the segment sampler and rendering (augmentation: test_augment.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit._synth import SR, make_maestro, make_maps, write_tsv
from w2m2w.data.transcription import SegmentSampler, crop_notes, maestro_examples, maps_examples, maps_piece


@pytest.fixture()
def maps_root(tmp_path):
    names = [
        "bach_846_AkPnBcht",
        "bach_847_AkPnBcht",
        "chpn_op25_e1_SptkBGAm",
        "bach_847_SptkBGCl",
        "liz_rhap09_SptkBGCl",
    ]
    root = make_maps(tmp_path / "maps", names, seconds=1.5)
    (root / "flac" / "MAPS_MUS-orphan_AkPnBcht.flac").write_bytes(
        (root / "flac" / "MAPS_MUS-bach_846_AkPnBcht.flac").read_bytes()
    )
    return root


def test_maps_piece():
    assert maps_piece("MAPS_MUS-bach_847_AkPnBcht") == "bach_847"
    assert maps_piece("MAPS_MUS-chpn_op25_e1_SptkBGAm") == "chpn_op25_e1"


def test_maps_examples_pairs_audio_with_labels(maps_root):
    ex = maps_examples(maps_root)
    assert [e.name for e in ex] == sorted(e.name for e in ex)
    assert len(ex) == 5  # the orphan FLAC without a TSV is left out
    e = next(e for e in ex if e.name == "MAPS_MUS-bach_847_SptkBGCl")
    assert e.group == "SptkBGCl" and e.audio.endswith(".flac") and e.notes.endswith("MAPS_MUS-bach_847_SptkBGCl.tsv")


def test_maps_holdout_split(maps_root):
    held = maps_examples(maps_root, include=["SptkBGCl"])
    assert {e.name for e in held} == {"MAPS_MUS-bach_847_SptkBGCl", "MAPS_MUS-liz_rhap09_SptkBGCl"}
    pieces = {maps_piece(e.name) for e in held}
    train = maps_examples(maps_root, exclude=["SptkBGCl"], exclude_pieces=pieces)
    # bach_847 is on the held-out piano, so its AkPnBcht take is out of training too
    assert {e.name for e in train} == {"MAPS_MUS-bach_846_AkPnBcht", "MAPS_MUS-chpn_op25_e1_SptkBGAm"}
    assert not {e.name for e in train} & {e.name for e in held}


def test_maestro_examples(tmp_path):
    root = make_maestro(
        tmp_path / "maestro",
        [
            ("a", "train", True),
            ("b", "validation", True),
            ("c", "train", False),
            ("d", "test", True),
            ("e", "train", True),
        ],
    )
    train = maestro_examples(root, "train")
    assert [e.name for e in train] == ["a", "e"]  # c is listed but missing on disk
    assert all(e.group == "maestro" and e.audio.endswith(".wav") and e.notes.endswith(".midi") for e in train)
    assert [e.name for e in maestro_examples(root, "validation")] == ["b"]
    with pytest.raises(FileNotFoundError, match="maestro"):
        maestro_examples(tmp_path)


def test_crop_notes():
    notes = np.array([[0.5, 1.5, 60, 80], [1.2, 3.0, 62, 80], [2.9, 3.5, 64, 80]])
    out = crop_notes(notes, 1.0, 2.0)
    np.testing.assert_allclose(out, [[0.2, 2.0, 62, 80], [1.9, 2.0, 64, 80]])


def test_segment_sampler_shapes_and_alignment(tmp_path):
    """Targets must line up with the audio: frames marked sounding are loud, the rest silent."""
    import soundfile as sf

    from w2m2w.data.transcription import Example

    seconds = 4.0
    notes = np.array([[1.0, 2.0, 60, 100]])
    y = np.zeros(int(seconds * SR), np.float32)
    a, b = int(1.0 * SR), int(2.0 * SR)
    y[a:b] = 0.5 * np.sin(2 * np.pi * 261.63 * np.arange(b - a) / SR)  # steady, so loudness marks the note
    sf.write(str(tmp_path / "x.flac"), y, SR)
    write_tsv(tmp_path / "x.tsv", notes)
    hop, fr = 512, SR / 512
    s = SegmentSampler([Example(str(tmp_path / "x.flac"), str(tmp_path / "x.tsv"), "x", "p")], 1.5, fr, hop, seed=1)
    audio, targets = s.sample(16)
    frames = int(round(1.5 * fr))
    assert audio.shape == (16, (frames - 1) * hop) and audio.dtype == np.float32
    assert set(targets) == {"onset", "offset", "frame", "velocity"}
    assert all(v.shape == (16, frames, 88) for v in targets.values())
    k = 60 - 21
    assert targets["frame"][:, :, np.arange(88) != k].sum() == 0
    assert np.all(targets["velocity"][targets["onset"] > 0] == pytest.approx(100 / 127))
    seen_on = seen_off = 0
    for i in range(16):
        rms = np.sqrt([np.mean(audio[i, max(0, j * hop - 256) : j * hop + 256] ** 2) for j in range(frames)])
        roll = targets["frame"][i, :, k]
        edge = np.convolve(np.abs(np.diff(roll, prepend=roll[0])), np.ones(5), "same") > 0
        assert np.all(rms[(roll == 1) & ~edge] > 0.2)
        assert np.all(rms[(roll == 0) & ~edge] < 1e-3)
        seen_on += int((roll == 1).any())
        seen_off += int((roll == 0).any())
    assert seen_on and seen_off  # the random segments cover both cases


def test_render_notes():
    pytest.importorskip("fluidsynth")
    from w2m2w.render.fluidsynth import RenderError, render_notes, soundfont_path

    try:
        soundfont_path("fluidr3")
    except RenderError as exc:
        pytest.skip(str(exc))
    notes = np.array([[0.5, 1.0, 60, 100], [0.7, 1.6, 64, 80]])
    y = render_notes(notes, "fluidr3")
    assert y.dtype == np.float32 and y.ndim == 1
    assert 1.6 * SR <= len(y) <= (1.6 + 2.0) * SR  # the last offset plus the release tail
    assert np.max(np.abs(y)) == pytest.approx(0.9, abs=1e-3)  # peak-normalised
    assert np.max(np.abs(y[: int(0.45 * SR)])) < 1e-3  # silent before the first onset
    assert np.sqrt(np.mean(y[int(0.55 * SR) : int(1.0 * SR)] ** 2)) > 0.02
    assert len(render_notes(np.zeros((0, 4)))) > 0


def test_segment_sampler_pedal_targets_follow_the_pedal_file(tmp_path):
    """The pedal rolls line up with the segment: the audio is a ramp, so each segment tells where it starts."""
    import soundfile as sf

    from w2m2w.data.transcription import Example
    from w2m2w.pedal import save_pedal_tsv

    seconds, hop, fr = 6.0, 512, SR / 512
    y = (np.arange(int(seconds * SR)) / (seconds * SR) * 0.9).astype(np.float32)
    sf.write(str(tmp_path / "a.wav"), y, SR, subtype="FLOAT")
    write_tsv(tmp_path / "a.tsv", np.array([[0.5, 1.0, 60, 80]]))
    save_pedal_tsv(tmp_path / "a.pedal.tsv", np.array([[1.0, 2.5], [4.0, 4.6]]))
    sf.write(str(tmp_path / "b.wav"), y, SR, subtype="FLOAT")
    write_tsv(tmp_path / "b.tsv", np.array([[0.5, 1.0, 60, 80]]))  # no pedal file: nothing known
    ex = [Example(str(tmp_path / f"{n}.wav"), str(tmp_path / f"{n}.tsv"), n, "p") for n in "ab"]
    s = SegmentSampler(ex, 2.0, fr, hop, seed=0, pedal=True)
    audio, t = s.sample(24)
    assert t["pedal"].shape == (24, int(round(2.0 * fr)), 3)
    frames = t["pedal"].shape[1]
    for i in range(24):
        if t["pedal_known"][i] == 0:
            assert t["pedal"][i].sum() == 0
            continue
        t0 = audio[i, 0] / 0.9 * seconds
        times = t0 + np.arange(frames) / fr
        down = ((times >= 1.0) & (times < 2.5)) | ((times >= 4.0) & (times < 4.6))
        # away from the edges (one frame of rounding), the roll is the pedal
        edge = np.convolve(np.abs(np.diff(down.astype(int), prepend=down[0])), np.ones(3), "same") > 0
        np.testing.assert_array_equal(t["pedal"][i, ~edge, 2], down[~edge])
        for col, ev in ((0, (1.0, 4.0)), (1, (2.5, 4.6))):
            inside = [e for e in ev if t0 < e < t0 + (frames - 1) / fr]
            assert int(t["pedal"][i, :, col].sum()) == len(inside)
    assert 0 < t["pedal_known"].sum() < 24


def test_segment_sampler_weighs_a_groups_pedal_labels(tmp_path):
    """pedal_known is each row's weight in the pedal loss: 1 for a piece with pedal labels, the group's weight
    where one is given (a teacher's labels with no press), 0 for a piece with no pedal labels at all."""
    import soundfile as sf

    from w2m2w.data.transcription import Example
    from w2m2w.pedal import save_pedal_tsv

    hop, fr = 512, SR / 512
    pieces = {"render": ("fluidr3", 0.1), "real": ("audio_dir", 0.2), "maps": ("SptkBGCl", 0.3)}
    for n, (_, level) in pieces.items():  # each piece's audio a constant level, so a segment says whose it is
        sf.write(str(tmp_path / f"{n}.wav"), np.full(3 * SR, level, dtype=np.float32), SR, subtype="FLOAT")
        write_tsv(tmp_path / f"{n}.tsv", np.array([[0.5, 1.0, 60, 80]]))
    save_pedal_tsv(tmp_path / "render.pedal.tsv", np.array([[0.5, 2.0]]))
    save_pedal_tsv(tmp_path / "real.pedal.tsv", np.zeros((0, 2)))  # labelled, never pressed
    ex = [Example(str(tmp_path / f"{n}.wav"), str(tmp_path / f"{n}.tsv"), n, g) for n, (g, _) in pieces.items()]
    for weights, real in ((None, 1.0), ({"audio_dir": 0.25}, 0.25), ({"audio_dir": 0.0}, 0.0)):
        s = SegmentSampler(ex, 1.0, fr, hop, seed=1, pedal=True, pedal_weights=weights)
        audio, t = s.sample(40)
        want = {0.1: 1.0, 0.2: real, 0.3: 0.0}
        got = {(round(float(audio[i, 0]), 3), round(float(t["pedal_known"][i]), 6)) for i in range(40)}
        assert got == set(want.items()), weights  # every piece drawn, each row weighed as its piece


def test_segment_sampler_brings_each_piece_to_the_models_input_level(tmp_path):
    from w2m2w.audio import level_db

    root = make_maps(tmp_path / "m", ["p_AkPnBcht", "q_AkPnBcht"], seconds=2.0)
    ex = maps_examples(root)
    as_read = SegmentSampler(ex, 0.5, SR / 512, 512)
    levelled = SegmentSampler(ex, 0.5, SR / 512, 512, level_db=-12.0)
    for (y0, n0), (y1, n1) in zip(as_read.items, levelled.items):
        assert level_db(y1) == pytest.approx(-12.0, abs=1e-3)
        ratio = float(np.dot(y1, y0) / np.dot(y0, y0))  # a gain, nothing else: y1 is y0 scaled
        np.testing.assert_allclose(y1, ratio * y0, atol=1e-6)
        np.testing.assert_array_equal(n0, n1)


def test_draw_weights_by_length_without_shares():
    from w2m2w.data.transcription import draw_weights

    np.testing.assert_allclose(draw_weights(np.array([1.0, 3.0, 4.0]), ["a", "b", "a"]), [1 / 8, 3 / 8, 4 / 8])


def test_draw_weights_gives_a_group_its_share_split_by_length():
    from w2m2w.data.transcription import draw_weights

    # by hand: "real" gets 0.3 split 1:2 among its two pieces, the rest 0.7 split 6:1 between the others
    w = draw_weights(np.array([6.0, 1.0, 2.0, 1.0]), ["maps", "render", "real", "real"], {"real": 0.3})
    np.testing.assert_allclose(w, [0.6, 0.1, 0.2, 0.1])
    # the share is the group's probability whatever the lengths: a long other piece does not dilute it
    w = draw_weights(np.array([1000.0, 1.0]), ["maps", "real"], {"real": 0.25})
    np.testing.assert_allclose(w, [0.75, 0.25])
    # a share of 0 keeps the group out of the draws
    np.testing.assert_allclose(draw_weights(np.array([1.0, 1.0]), ["maps", "real"], {"real": 0.0}), [1.0, 0.0])


@pytest.mark.parametrize(
    "groups, shares",
    [
        (["maps"], {"real": 0.3}),
        (["maps", "real"], {"real": 1.0}),
        (["maps", "real"], {"real": 0.7, "maps": 0.4}),
        (["maps", "real"], {"real": -0.1}),
    ],
)
def test_draw_weights_refuses_shares_that_cannot_hold(groups, shares):
    from w2m2w.data.transcription import draw_weights

    with pytest.raises(ValueError):
        draw_weights(np.ones(len(groups)), groups, shares)


def test_segment_sampler_draws_a_group_at_its_share(tmp_path):
    from w2m2w.data.transcription import Example

    root = make_maps(tmp_path / "m", ["p_AkPnBcht", "q_AkPnBcht"], seconds=2.0)
    ex = maps_examples(root)
    ex = [ex[0], Example(ex[1].audio, ex[1].notes, ex[1].name, "audio_dir")]
    s = SegmentSampler(ex, 0.5, SR / 512, 512, seed=3, shares={"audio_dir": 0.2})
    picks = s.rng.choice(2, size=20000, p=s.weights)
    assert (picks == 1).mean() == pytest.approx(0.2, abs=0.01)
