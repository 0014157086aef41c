"""recall_breakdown: counts worked out by hand on small note lists."""

from __future__ import annotations

import numpy as np

from w2m2w.recall_breakdown import add_counts, in_chord, matched_reference, recall_breakdown


def notes(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def test_matching_follows_the_onset_tolerance_and_pitch():
    ref = notes([1.0, 1.5, 60, 80], [2.0, 2.5, 62, 80], [3.0, 3.5, 64, 80])
    est = notes([1.049, 1.2, 60, 50], [2.0, 2.5, 63, 80], [3.051, 3.9, 64, 80])
    # 49 ms early is inside 50 ms; the wrong pitch and 51 ms late are not
    assert matched_reference(ref, est).tolist() == [True, False, False]
    assert matched_reference(ref, notes()).tolist() == [False, False, False]


def test_one_estimate_matches_one_reference_note():
    ref = notes([1.0, 1.5, 60, 80], [1.01, 1.5, 60, 80])
    est = notes([1.0, 1.5, 60, 80])
    assert matched_reference(ref, est).sum() == 1


def test_chords_by_onset_window_both_sides_of_the_edge():
    ref = notes([1.0, 2, 60, 80], [1.05, 2, 64, 80], [3.0, 4, 60, 80], [3.0501, 4, 67, 80], [5.0, 6, 60, 80])
    # 1.00 and 1.05: 50 ms apart, a chord; 3.0 and 3.0501: just over, two single notes
    assert in_chord(ref).tolist() == [True, True, False, False, False]
    unsorted = ref[[4, 2, 0, 3, 1]]
    assert in_chord(unsorted).tolist() == [False, False, True, False, True]


def test_breakdown_counts_by_hand():
    ref = notes(
        [0.0, 1, 21, 20],  # A0, velocity 20, single: missed
        [2.0, 3, 35, 29],  # B1, velocity 29, chord with the next: found
        [2.02, 3, 36, 30],  # C2, velocity 30, chord: missed
        [4.0, 5, 60, 45],  # C4, velocity 45, single: found
        [6.0, 7, 72, 64],  # C5, velocity 64, single: found
        [8.0, 9, 108, 127],  # C8, velocity 127, single: missed
    )
    est = notes([2.0, 3, 35, 60], [4.0, 5, 60, 60], [6.0, 7, 72, 60])
    b = recall_breakdown(ref, est)
    assert b["velocity 0-29"] == (1, 2)
    assert b["velocity 30-44"] == (0, 1)
    assert b["velocity 45-63"] == (1, 1)
    assert b["velocity 64-127"] == (1, 2)
    assert b["register A0-B1"] == (1, 2)
    assert b["register C2-B2"] == (0, 1)
    assert b["register C3-B3"] == (0, 0)
    assert b["register C4-B4"] == (1, 1)
    assert b["register C5-C8"] == (1, 2)
    assert b["in a chord"] == (1, 2) and b["single notes"] == (2, 4)


def test_pieces_pool_note_by_note():
    assert add_counts({"a": (1, 2)}, {"a": (3, 4), "b": (0, 1)}) == {"a": (4, 6), "b": (0, 1)}
