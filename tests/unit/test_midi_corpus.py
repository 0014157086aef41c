"""MIDI corpora: pieces from metadata, split by piece, augmentation, event windows."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w import events as ev
from w2m2w.data.midi_corpus import WindowSampler, augment_notes, load_corpus, piece_names, split_by_piece, window_tokens
from w2m2w.finding import MIDI_EXTENSIONS, find_corpus
from w2m2w.midi import write_midi


def tune(n: int = 30, pitch: int = 60, step: float = 0.2) -> np.ndarray:
    return np.array([[i * step, i * step + 0.15, pitch + i % 7, 60 + i % 40] for i in range(n)], dtype=np.float64)


@pytest.fixture()
def corpora(tmp_path):
    """A fake ASAP (several performances per piece, one piece in two folders) and a flat corpus."""
    asap = tmp_path / "asap"
    perf = {
        "Bach/Fugue/bwv_846": ["A01.mid", "B02.mid"],
        "Chopin/Etudes/10-1": ["C01.mid"],
        "Beethoven/Sonata/17-1": ["D01.mid"],
        "Beethoven/Sonata/17-1_no_repeat": ["E01.mid", "F02.mid"],
    }
    titles = {
        "Bach/Fugue/bwv_846": ("Bach", "Fugue_bwv_846"),
        "Chopin/Etudes/10-1": ("Chopin", "Etudes_10-1"),
        "Beethoven/Sonata/17-1": ("Beethoven", "Sonata_17-1"),
        "Beethoven/Sonata/17-1_no_repeat": ("Beethoven", "Sonata_17-1"),
    }
    lines = ["composer,title,folder,midi_performance"]
    for i, (folder, files) in enumerate(perf.items()):
        (asap / folder).mkdir(parents=True)
        for f in files:
            write_midi(asap / folder / f, tune(20 + i, 50 + i))
            lines.append(f"{titles[folder][0]},{titles[folder][1]},{folder},{folder}/{f}")
    (asap / "metadata.csv").write_text("\n".join(lines) + "\n")
    pop = tmp_path / "pop"
    pop.mkdir()
    for i in range(12):
        write_midi(pop / f"{i:03d}.mid", tune(25, 40 + i))
    (pop / ".hidden.mid").write_bytes(b"")
    (pop / "notes.txt").write_text("not midi")
    return asap, pop


def test_pieces_come_from_metadata(corpora):
    asap, pop = corpora
    files = find_corpus([str(asap), str(pop / "*.mid")], MIDI_EXTENSIONS, "MIDI")
    assert len(files) == 6 + 12 and not any(f.name.startswith(".") for f in files)
    pieces = piece_names(files)
    by_name = {f.name: p for f, p in pieces.items()}
    assert by_name["A01.mid"] == by_name["B02.mid"] == "asap:Bach/Fugue_bwv_846"
    assert by_name["D01.mid"] == by_name["E01.mid"] == by_name["F02.mid"], "a *_no_repeat folder is the same piece"
    assert by_name["003.mid"] == "pop:003"
    assert len(set(pieces.values())) == 3 + 12


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.99])
def test_split_by_piece_keeps_pieces_whole(corpora, fraction):
    pieces = piece_names(find_corpus([str(p) for p in corpora], MIDI_EXTENSIONS, "MIDI"))
    train, val = split_by_piece(pieces, fraction, seed=1)
    assert sorted(train + val) == sorted(pieces)
    assert not {pieces[f] for f in train} & {pieces[f] for f in val}, "no piece on both sides"
    assert train, "something is always left to train on"
    assert bool(val) == (fraction > 0)
    again = split_by_piece(pieces, fraction, seed=1)
    assert again == (train, val), "deterministic"


def test_split_is_stable_when_files_are_added(corpora):
    asap, pop = corpora
    small = piece_names(find_corpus([str(asap)], MIDI_EXTENSIONS, "MIDI"))
    big = piece_names(find_corpus([str(asap), str(pop)], MIDI_EXTENSIONS, "MIDI"))
    _, val_small = split_by_piece(small, 0.4)
    _, val_big = split_by_piece(big, 0.4)
    assert set(val_small) <= set(val_big)


def test_augmentation_ranges():
    notes = tune(50)
    rng = np.random.default_rng(0)
    shifts, stretches = set(), []
    for _ in range(300):
        out = augment_notes(notes, rng)
        shifts.add(int(out[0, 2] - notes[0, 2]))
        stretches.append(out[-1, 1] / notes[-1, 1])
        np.testing.assert_array_equal(out[:, 3], notes[:, 3])
    assert shifts == set(range(-3, 4))
    assert 0.95 <= min(stretches) < 0.96 and 1.04 < max(stretches) <= 1.05
    edge = np.array([[0, 1, 126, 80], [0, 1, 1, 80]], dtype=np.float64)
    for _ in range(50):
        out = augment_notes(edge, rng)
        assert ((out[:, 2] >= 0) & (out[:, 2] <= 127)).all()
    same = augment_notes(notes, rng, max_transpose=0, stretch=(1.0, 1.0))
    np.testing.assert_array_equal(same, notes)


def test_windows():
    notes = tune(200)
    w = window_tokens(notes, 0, 64)
    assert w.shape == (64,) and w[0] == ev.BOS and ev.PAD not in w
    np.testing.assert_array_equal(w[1:], ev.notes_to_tokens(notes)[:63])
    mid = window_tokens(notes, 50, 64)
    np.testing.assert_array_equal(mid, ev.notes_to_tokens(notes, start=notes[50, 0])[:64])
    end = window_tokens(notes, 190, 64)
    toks = ev.notes_to_tokens(notes, start=notes[190, 0])
    assert end[len(toks)] == ev.EOS and (end[len(toks) + 1 :] == ev.PAD).all()
    aug = window_tokens(notes, 50, 64, np.random.default_rng(0))
    assert aug.shape == (64,) and ev.PAD not in aug


def test_sampler(corpora, tmp_path):
    asap, pop = corpora
    loaded = load_corpus(
        sorted(find_corpus([str(asap), str(pop)], MIDI_EXTENSIONS, "MIDI")), cache=tmp_path / "cache", progress=False
    )
    again = load_corpus(
        sorted(find_corpus([str(asap), str(pop)], MIDI_EXTENSIONS, "MIDI")), cache=tmp_path / "cache", progress=False
    )
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert all(np.array_equal(a[1], b[1]) and a[0] == b[0] for a, b in zip(loaded, again)), (
        "the cache gives the same notes"
    )
    s = WindowSampler([n for _, n in loaded], 33, seed=3)
    x = s.sample(5)
    assert x.shape == (5, 33) and x.min() >= 0 and x.max() < ev.VOCAB_SIZE


def test_mix_weights_by_hand():
    from w2m2w.data.midi_corpus import mix_weights

    starts = np.array([1.0, 3.0, 2.0, 2.0])
    np.testing.assert_allclose(mix_weights(starts), [1 / 8, 3 / 8, 2 / 8, 2 / 8])  # no shares: by note starts
    np.testing.assert_allclose(mix_weights(starts, [0, 0, 1, 1], [0.5, 0.5]), [0.125, 0.375, 0.25, 0.25])
    np.testing.assert_allclose(mix_weights(starts, [0, 0, 1, 1], [3.0, 1.0]), [0.1875, 0.5625, 0.125, 0.125])
    # a corpus without pieces gives its share to the others
    np.testing.assert_allclose(mix_weights(starts, [0, 0, 1, 1], [1.0, 1.0, 1.0]), [0.125, 0.375, 0.25, 0.25])


def test_window_sampler_draws_corpora_in_their_shares():
    from w2m2w.data.midi_corpus import WindowSampler

    rng = np.random.default_rng(0)

    def piece(n: int) -> np.ndarray:
        t = np.cumsum(rng.uniform(0.05, 0.2, n))
        return np.stack([t, t + 0.1, rng.integers(40, 80, n), np.full(n, 64)], 1)

    # corpus 0: one long piece (900 notes); corpus 1: three short ones (100 each)
    pieces = [piece(900), piece(100), piece(100), piece(100)]
    s = WindowSampler(pieces, 33, seed=1, corpus=[0, 1, 1, 1], corpus_shares=[1.0, 1.0])
    draws = s.rng.choice(len(pieces), size=20000, p=s.weights)
    assert abs(np.mean(draws == 0) - 0.5) < 0.02  # by notes it would be about 0.75


def test_training_corpora_walk_a_symlink_loop_once_and_name_a_spec_that_finds_nothing(tmp_path):
    # glob.glob(recursive=True), which training used, follows a symlinked folder around a loop
    # (a/loop -> a) and yields each file again at every depth; the corpus finder finds each once
    from w2m2w.train.corpora import midi_files
    from w2m2w.train.loop import TrainingError

    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    write_midi(a / "x.mid", tune(1, 60))
    write_midi(a / "sub" / "y.midi", tune(2, 62))
    (a / "loop").symlink_to(a, target_is_directory=True)
    expected = sorted(str(p.resolve()) for p in (a / "x.mid", a / "sub" / "y.midi"))
    assert midi_files([str(a)], "train.midi_globs") == expected
    assert midi_files([str(a / "**" / "*.mid*")], "train.midi_globs") == expected
    with pytest.raises(TrainingError, match=r"train\.midi_globs: .*nothing_here"):
        midi_files([str(a), str(tmp_path / "nothing_here" / "*.mid")], "train.midi_globs")
