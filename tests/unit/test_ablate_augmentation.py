"""scripts/ablate_augmentation.py: twin specs, the twins' commands, paired differences worked out by hand."""

from __future__ import annotations

import math

import pytest

from tests.unit._scripts import load_script


@pytest.fixture(scope="module")
def ablate():
    return load_script("ablate_augmentation")


def test_twin_specs(ablate):
    assert ablate.parse_twin("full=") == ablate.Twin("full", ())
    assert ablate.parse_twin("console=eq, compression,reverb") == ablate.Twin(
        "console", ("eq", "compression", "reverb")
    )
    for bad in ("full", "=codec", "x=echo", "../x=codec"):
        with pytest.raises(ValueError, match="--twin"):
            ablate.parse_twin(bad)


def test_twins_differ_only_in_what_they_leave_out_and_where_they_write(ablate, tmp_path):
    shared = ["train.max_steps=10", "train.seed=0"]
    a = ablate.train_command(ablate.Twin("full", ()), tmp_path, shared, 1)
    b = ablate.train_command(ablate.Twin("no_codec", ("codec",)), tmp_path, shared, 1)
    differ = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b)
    assert differ == [
        ("train.augment_skip=[]", "train.augment_skip=[codec]"),
        (f"train.out_dir={tmp_path / 'full'}", f"train.out_dir={tmp_path / 'no_codec'}"),
    ]
    assert a[1:4] == ["-m", "w2m2w.train", "train=transcriber"] and "train.max_steps=10" in a


def test_paired_difference_by_hand(ablate):
    ref = [{"file": "a", "f": 0.5}, {"file": "b", "f": 0.7}, {"file": "c", "f": 0.9}, {"file": "gone", "f": 0.1}]
    twin = [{"file": "a", "f": 0.6}, {"file": "b", "f": 0.7}, {"file": "c", "f": 0.8}, {"file": "new", "f": 1.0}]
    # pieces both scored: a, b, c; differences +0.1, 0, -0.1: mean 0, sample sd 0.1, se 0.1 / sqrt(3)
    mean, se, n = ablate.paired_difference(ref, twin, "f")
    assert n == 3 and mean == pytest.approx(0.0, abs=1e-12) and se == pytest.approx(0.1 / math.sqrt(3))
    mean, se, n = ablate.paired_difference(ref, [{"file": "b", "f": 0.75}], "f")
    assert (n, mean) == (1, pytest.approx(0.05)) and math.isnan(se)


def test_table_gives_each_twin_its_means_and_the_reference_none(ablate):
    twins = [ablate.Twin("full", ()), ablate.Twin("no_noise", ("noise",))]

    def rows(v):
        return [
            {"file": f, "note_f1": v + d, "note_offset_f1": v, "frame_f1": v, "note_velocity_f1": v - d}
            for f, d in (("a", 0.0), ("b", 0.2))
        ]

    text = ablate.table(twins, {"full": {"tune": rows(0.5)}, "no_noise": {"tune": rows(0.6)}})
    full, twin = text.splitlines()[2:]
    assert full.startswith("| tune | full | nothing | 0.6000 | 0.5000 | 0.5000 | 0.4000 | (reference)")
    assert twin.startswith("| tune | no_noise | noise | 0.7000 | 0.6000 | 0.6000 | 0.5000 | +0.1000 +- 0.0000")
