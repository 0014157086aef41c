"""The learned beat tracker: its features and targets, its decoding, its network and a tiny training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from w2m2w import beats as B
from w2m2w.data import beats as D
from w2m2w.models.beat_tracker import FPS, N_FEATURES, BeatTracker, BeatTrackerConfig, note_features

TINY = BeatTrackerConfig(channels=8, blocks=3)


def test_note_features_of_one_note_and_a_chord():
    notes = np.array([[1.0, 1.5, 60, 127], [2.0, 2.2, 36, 64], [2.0, 2.2, 48, 64]])
    x = note_features(notes, 150)
    assert x.shape == (150, N_FEATURES) and x.dtype == np.float32
    assert x[50, 0] == pytest.approx(1.0)  # C (60 % 12 == 0) starts at frame 50 at full velocity
    assert x[100, 0] == pytest.approx(128 / 127)  # two Cs in the chord at 64/127 each
    assert x[50, 20] == pytest.approx(np.log(2)) and x[100, 20] == pytest.approx(np.log(3))  # log(1 + onsets)
    assert x[50, 22] == pytest.approx(1 - 39 / 88) and x[100, 22] == pytest.approx(
        1 - 15 / 88
    )  # the lowest pitch starting
    assert x[50:75, 24].tolist() == [1.0] * 25 and x[75, 24] == 0.0  # C sounds from frame 50 to 75 (1.5 s)
    assert x[105, 37] == pytest.approx(1 - 15 / 88)  # the lowest sounding pitch is the chord's 36
    assert x[49].sum() == 0 and x[120:].sum() == 0  # nothing before the first onset nor after the last offset


def test_target_rolls_widen_beats_and_mask_the_annotated_span():
    target, mask = D.target_rolls(np.array([1.0, 1.5]), np.array([True, False]), 100)
    assert target[[49, 50, 51, 74, 75, 76], 0].tolist() == [0.5, 1.0, 0.5, 0.5, 1.0, 0.5]
    assert target[[49, 50, 51, 75], 1].tolist() == [0.5, 1.0, 0.5, 0.0]  # only the first beat is a downbeat
    assert target[:, 0].sum() == 4.0 and target[:, 1].sum() == 2.0
    # half a beat (0.25 s) either side of the annotated beats: frames 37 (0.75 s) to 88 (1.75 s)
    assert np.flatnonzero(mask).tolist() == list(range(37, 89))


def test_segment_keeps_held_notes_as_sounding_not_as_onsets():
    perf = D.Performance(
        "p",
        "piece",
        np.array([[0.5, 3.0, 60, 100], [2.5, 2.8, 64, 100]]),
        np.array([0.5, 1.5, 2.5]),
        np.array([True, False, False]),
    )
    seg = D.segment(perf, 2.0, 2.0, perf.notes, perf.beats)
    x = seg["features"]
    assert x.shape == (100, N_FEATURES)
    assert x[:, 20].sum() == pytest.approx(np.log(2))  # one onset: E at 0.5 s into the segment
    assert x[25, 4] > 0 and x[0, 24] == 1.0  # E starts at frame 25; the held C sounds from frame 0
    assert seg["target"][25, 0] == 1.0 and seg["target"][:, 1].max() == 0.0  # the beat at 2.5 s, no downbeat


def _drifting(off_beats: float, fps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A beat activation drifting from 100 to 133 bpm, with off-beat peaks of height off_beats; and its beats."""
    intervals = np.linspace(0.6, 0.45, 30)
    truth = 1.0 + np.concatenate([[0.0], np.cumsum(intervals)])
    act = np.full(int((truth[-1] + 1.0) * fps), 0.02)
    act[np.round(truth * fps).astype(int)] = 0.9
    if off_beats:
        act[np.round((truth[:-1] + intervals / 2) * fps).astype(int)] = off_beats
    return act, np.round(truth * fps) / fps


def test_dbn_beats_follow_a_drifting_beat():
    """madmom's tempo-change weight (100) keeps to the strong peaks past weaker off-beat ones (0.3). The default
    (30, chosen on the tuning pieces: it follows rubato better) may take such off-beats for beats part of the way,
    the double-tempo error the card's sweep counts; without them it follows the same drift to the frame."""
    act, truth = _drifting(off_beats=0.3)
    np.testing.assert_allclose(B.dbn_beats(act, 50, transition_lambda=100.0), truth, atol=1e-9)
    act, truth = _drifting(off_beats=0.0)
    np.testing.assert_allclose(B.dbn_beats(act, 50), truth, atol=1e-9)  # on the peaks, to the frame


def test_dbn_beats_of_a_silent_activation_are_none():
    assert len(B.dbn_beats(np.full(500, 0.01))) == 0


@pytest.mark.parametrize("meter", [3, 4])
def test_downbeats_from_activation_find_the_meter_and_the_pickup(meter):
    fps = 50
    times = 0.5 + 0.5 * np.arange(25)
    act = np.full(int(14 * fps), 0.05)
    bar_lines = times[1::meter]  # a one-beat pickup, then bars of `meter` beats
    act[np.round(bar_lines * fps).astype(int)] = 0.9
    found, db = B.downbeats_from_activation(times, act, fps)
    assert found == meter  # 4, not 2: a bar line on beat 3 would be a beat the activation says is not one
    assert np.flatnonzero(db).tolist() == list(range(1, 25, meter))


def test_downbeat_bias_moves_a_half_bar_accent_below_the_bar_line():
    """Beats 0..7 (0.5 s apart): p = 0.9 on beats 0 and 4, 0.6 on beats 2 and 6, 0.1 elsewhere. Worked by hand:
    bias 0: meter 2 sums 2 ln 9 + 2 ln 1.5 = 5.21 > meter 4's 2 ln 9 = 4.39; bias 1: 2 (ln 9 - 1) + 2 (ln 1.5 - 1) =
    1.21 < meter 4's 2 (ln 9 - 1) = 2.39 (a jump costs 3, never worth it here)."""
    fps = 50
    times = 0.5 * np.arange(8)
    act = np.full(4 * fps + 1, 0.1)
    for beat, p in ((0, 0.9), (4, 0.9), (2, 0.6), (6, 0.6)):
        act[int(times[beat] * fps)] = p
    meter, db = B.downbeats_from_activation(times, act, fps)
    assert meter == 2 and np.flatnonzero(db).tolist() == [0, 2, 4, 6]
    meter, db = B.downbeats_from_activation(times, act, fps, bias=1.0)
    assert meter == 4 and np.flatnonzero(db).tolist() == [0, 4]


def test_model_shapes_and_predict_in_unit_range():
    model = BeatTracker(TINY).eval()
    assert model(torch.zeros(2, 64, N_FEATURES)).shape == (2, 64, 2)
    act = model.predict(np.array([[0.1, 0.5, 60, 80], [0.6, 1.0, 64, 80]]))
    assert act.shape == (int(np.ceil(2.0 * FPS)), 2) and act.min() >= 0 and act.max() <= 1


def test_loss_weighs_positive_frames_and_skips_masked_ones():
    model = BeatTracker(TINY)  # pos_weight 4 (beats) and 8 (downbeats)
    logits = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third frame is outside the annotations
    loss, heads = model.loss(logits, target, mask)
    ln2 = float(np.log(2))
    # at logit 0 every frame costs ln 2, a positive one pos_weight x ln 2; mean over the two unmasked frames
    assert heads["loss_beat"].item() == pytest.approx((4 * ln2 + ln2) / 2)
    assert heads["loss_downbeat"].item() == pytest.approx(ln2)
    assert loss.item() == pytest.approx(3.5 * ln2)


def _fake_asap(root: Path, n_pieces: int) -> Path:
    """n_pieces folders of ASAP's layout: a score, one performance (quarter notes at 100-120 bpm, a louder
    bass on each bar's first beat) and its annotations."""
    import pretty_midi

    from w2m2w.midi import write_midi

    rng = np.random.default_rng(0)
    for i in range(n_pieces):
        folder = root / f"Composer{i % 3}" / f"Piece{i}"
        folder.mkdir(parents=True)
        ibi = 60.0 / rng.uniform(100, 120)
        beats = 0.5 + ibi * np.arange(40)
        notes = [(t, t + ibi * 0.9, 72 + (k % 4), 60) for k, t in enumerate(beats)]
        notes += [(t, t + ibi * 3.5, 48, 100) for t in beats[::4]]
        write_midi(folder / "perf.mid", np.array(sorted(notes)))
        pretty_midi.PrettyMIDI().write(str(folder / "midi_score.mid"))
        lines = [f"{t:.6f}\t{t:.6f}\t{'db,4/4,1' if k % 4 == 0 else 'b'}" for k, t in enumerate(beats)]
        (folder / "perf_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_training_leaves_out_the_evaluation_pieces(tmp_path):
    asap = _fake_asap(tmp_path / "asap", D.N_TUNING + D.N_HELDOUT + 4)
    evaluated = set(D.eval_pieces(asap, "tuning")) | set(D.eval_pieces(asap, "heldout"))
    assert len(evaluated) == D.N_TUNING + D.N_HELDOUT
    train = D.training_pieces(asap)
    assert len(train) == 4 and not evaluated & set(train)
    assert [p.parent for p in D.pick_performances(asap, "heldout")] == D.eval_pieces(asap, "heldout")


def test_tiny_training_run_then_resume_and_track(tmp_path):
    from w2m2w.train.beat_tracker import BeatTrackerTrainConfig, train_beat_tracker

    asap = _fake_asap(tmp_path / "asap", D.N_TUNING + D.N_HELDOUT + 4)

    def cfg(steps: int) -> BeatTrackerTrainConfig:
        return BeatTrackerTrainConfig(
            out_dir=str(tmp_path / "run"),
            model=TINY,
            asap_root=str(asap),
            cache=str(tmp_path / "cache.npz"),
            val_fraction=0.25,
            val_seconds=10.0,
            segment_seconds=4.0,
            batch_size=2,
            max_steps=steps,
            validate_every=2,
            threads=1,
        )

    summary = train_beat_tracker(cfg(2))
    run = tmp_path / "run"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2] and summary == log[-1]
    assert {"loss", "loss_beat", "loss_downbeat", "val/beat_f", "val/downbeat_f"} <= set(log[0])
    train_beat_tracker(cfg(4))  # resumes at step 3
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    from w2m2w.checkpoint import load_weights

    _, config, training = load_weights(run / "last.safetensors", "beat_tracker")
    assert (
        config["channels"] == 8 and training["train_performances"] == 3
    )  # 4 training pieces, one held out for validation
    est = B.beats_from_notes(
        np.array([[0.5 * k, 0.5 * k + 0.4, 60, 80] for k in range(20)]), weights=run / "best.safetensors"
    )
    assert isinstance(est, B.Beats) and est.meter in B.METERS


def _beat_act(ps: list[float], fps: int = 50, base: float = 0.2, extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Beats every 0.5 s from 0.5 s, and an activation of `base` with beat k's frame set to ps[k]."""
    times = 0.5 + 0.5 * np.arange(len(ps))
    act = np.full(int(round(times[-1] * fps)) + 1 + extra, base)
    act[np.round(times * fps).astype(int)] = ps
    return times, act


def test_the_bar_jump_costs_three():
    """Peaks (p 0.95, log-odds 2.94) on beats 0 and 4, then p 0.7408 (1.05) on beats 7 and 11, 0.2 (-1.386)
    elsewhere. By hand, 4 beats a bar: no jump 2.94 + 2.94 - 1.386 = 4.49 (bars at 0, 4, 8); one jump after beat 6
    5.88 + 2.1 - cost, so at cost 3 (4.98) the bars move to 7 and 11, at cost 4 (3.98) they do not."""
    ps = [0.2] * 12
    ps[0] = ps[4] = 0.95
    ps[7] = ps[11] = 0.7408
    times, act = _beat_act(ps)
    meter, db = B.downbeats_from_activation(times, act, 50)
    assert meter == 4 and np.flatnonzero(db).tolist() == [0, 4, 7, 11]
    meter, db = B.downbeats_from_activation(times, act, 50, switch_penalty=4.0)
    assert meter == 4 and np.flatnonzero(db).tolist() == [0, 4, 8]


def test_each_beat_reads_the_activation_two_frames_either_side():
    # bar lines of 3 beats two frames late are seen (meter 3); three frames late they are not, and the weaker
    # accents on every other beat, on their frames, win (meter 2)
    times, act = _beat_act([0.2] * 12)
    frames = np.round(times * 50).astype(int)
    act[frames[::3] + 2] = 0.95
    assert B.downbeats_from_activation(times, act, 50)[0] == 3
    times, act = _beat_act([0.6 if k % 2 == 0 else 0.05 for k in range(12)], base=0.05)
    act[frames[::3] + 3] = 0.95
    meter, db = B.downbeats_from_activation(times, act, 50)
    assert meter == 2 and np.flatnonzero(db).tolist() == [0, 2, 4, 6, 8, 10]


def test_no_evidence_one_beat_and_beats_past_the_activation():
    times, act = _beat_act([0.5] * 8, base=0.5)
    meter, db = B.downbeats_from_activation(times, act, 50)
    assert meter == 2 and db.sum() == 4, "a tie between meters: the first of METERS"
    meter, db = B.downbeats_from_activation(np.array([1.0]), np.full(100, 0.9), 50)
    assert meter == 2 and db.tolist() == [True]
    # beats after the activation's end read its last frames
    times = 0.5 + 0.5 * np.arange(8)
    act = np.full(int(times[5] * 50) + 1, 0.1)
    act[-1] = 0.95
    meter, db = B.downbeats_from_activation(times, act, 50)
    assert len(db) == 8 and db[-1]


def test_note_accents_mark_the_harmony_changes_and_long_notes():
    """Beats 1 s apart; C-E-G held over beats 0-3, F-A-C over beats 4-7 (all above the bass weighting). By
    hand: the chroma change is 1 on beat 0 (nothing before), 1 - cos(CEG, FAC) = 1 - 1/3 on beat 4 (C is shared),
    0 elsewhere; the longest note starting on a beat is 4 s on beats 0 and 4, none elsewhere."""
    beats = np.arange(8.0)
    notes = np.array([[0.0, 4.0, p, 80] for p in (60, 64, 67)] + [[4.0, 8.0, p, 80] for p in (65, 69, 72)])
    change = np.array([1.0, 0, 0, 0, 2 / 3, 0, 0, 0])
    length = np.array([4.0, 0, 0, 0, 4.0, 0, 0, 0])
    z = lambda x: (x - x.mean()) / x.std()  # noqa: E731
    np.testing.assert_allclose(B.note_accents(notes, beats, (1.0, 0.5)), z(change) + 0.5 * z(length), atol=1e-9)
    np.testing.assert_allclose(B.note_accents(notes, beats, (0.0, 2.0)), 2.0 * z(length), atol=1e-9)
    assert not B.note_accents(notes, beats, (0.0, 0.0)).any()
    assert B.ACCENT_WEIGHTS == (1.0, 0.5)  # the weights the card's sweep chose


def test_accents_turn_a_two_beat_reading_into_four():
    """p 0.8 (log-odds 1.386) on every other beat of 8, 0.1 (-2.197) between: meter 2 sums 4 x 1.386 = 5.55 against
    meter 4's 2 x 1.386 = 2.77. Accents +2 on beats 0 and 4 and -2 on beats 2 and 6: meter 2 then sums
    2 x 3.386 + 2 x -0.614 = 5.54, meter 4 2 x 3.386 = 6.77, so the bar lines are 0 and 4."""
    times, act = _beat_act([0.8 if k % 2 == 0 else 0.1 for k in range(8)], base=0.1)
    meter, db = B.downbeats_from_activation(times, act, 50)
    assert meter == 2 and np.flatnonzero(db).tolist() == [0, 2, 4, 6]
    accents = np.array([2.0, 0, -2.0, 0, 2.0, 0, -2.0, 0])
    meter, db = B.downbeats_from_activation(times, act, 50, accents=accents)
    assert meter == 4 and np.flatnonzero(db).tolist() == [0, 4]
    meter, db = B.downbeats_from_activation(times, act, 50, accents=0.5 * accents)  # 5.55 vs 4.77: still 2
    assert meter == 2


def test_the_learned_trackers_bar_lines_hear_the_notes():
    """Beats every 0.5 s; the downbeat activation is 0.8 every 4 beats and 0.6 half way (log-odds 1.39, 0.41: a 2/4
    reading sums 4 x 1.79 = 7.2 against 4/4's 5.5), while the notes change chord, with a long note, every 4 beats:
    given the notes, decode_activations reads 4/4 with bar lines on the chord changes; without them, 2/4."""
    fps = 50
    times = 0.5 + 0.5 * np.arange(16)
    act = np.full((int(times[-1] * fps) + 26, 2), 0.01)
    frames = np.round(times * fps).astype(int)
    act[frames, 0] = 0.95
    act[frames[::2], 1] = 0.6
    act[frames[::4], 1] = 0.8
    chords = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]
    notes = np.array([[times[4 * i], times[4 * i] + 2.0, p, 80] for i, ch in enumerate(chords) for p in ch])
    plain = B.decode_activations(act)
    assert plain.meter == 2 and len(plain.times) == 16
    heard = B.decode_activations(act, notes=notes)
    np.testing.assert_allclose(heard.times, plain.times)
    assert heard.meter == 4 and np.flatnonzero(heard.is_downbeat).tolist() == [0, 4, 8, 12]
