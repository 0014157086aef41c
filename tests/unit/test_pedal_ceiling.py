"""scripts/pedal_ceiling.py: the lift oracle places presses where it says, and scores as worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit._scripts import load_script
from w2m2w.metrics import pedal_metrics
from w2m2w.pedal import save_pedal_tsv


@pytest.fixture(scope="module")
def ceiling():
    return load_script("pedal_ceiling")


def test_lift_oracle_keeps_first_press_and_lifts(ceiling):
    ref = np.array([[1.0, 3.0], [3.1, 5.0], [6.0, 8.0]])
    est = ceiling.lift_oracle(ref, 0.25)
    # first press from the reference; later presses 0.25 s after the previous lift; offsets untouched
    np.testing.assert_allclose(est, [[1.0, 3.0], [3.25, 5.0], [5.25, 8.0]])


def test_lift_oracle_scores_by_hand(ceiling):
    # gaps 0.1 s and 1.0 s: with a guessed gap of 0.25 s the first guess is 0.15 s off (inside 0.2 s),
    # the second 0.75 s off, so 2 of 3 presses match: P = R = F1 = 2/3
    ref = np.array([[1.0, 3.0], [3.1, 5.0], [6.0, 8.0]])
    m = pedal_metrics(ref, ceiling.lift_oracle(ref, 0.25))
    assert m["pedal_onset_f1"] == pytest.approx(2 / 3)


def test_lift_oracle_never_ends_before_it_starts(ceiling):
    ref = np.array([[0.0, 1.0], [1.02, 1.1]])  # a lift of 20 ms, then a press of 80 ms
    est = ceiling.lift_oracle(ref, 0.25)
    assert np.all(est[:, 1] > est[:, 0])


def test_pedal_files_skip_pieces_without_pedal(ceiling, tmp_path):
    for name, ped in (("a", np.array([[0.5, 1.0]])), ("b", np.zeros((0, 2)))):
        (tmp_path / f"{name}.tsv").write_text("# onset,offset,note,velocity\n0.1\t0.5\t60\t80\n")
        save_pedal_tsv(tmp_path / f"{name}.pedal.tsv", ped)
    (tmp_path / "c.tsv").write_text("# onset,offset,note,velocity\n0.1\t0.5\t60\t80\n")  # no pedal file at all
    refs = ceiling.pedal_refs(f"{tmp_path}:*")
    assert [p.name for p, _ in refs] == ["a.tsv"]
    np.testing.assert_allclose(refs[0][1], [[0.5, 1.0]])
