"""benchmarks/transcribe_peers.py's pure parts: pairing audio with references, cutting, the table; the torchaudio stand-in."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def peers():
    return _load("_bench_transcribe_peers", ROOT / "benchmarks" / "transcribe_peers.py")


@pytest.fixture(scope="module")
def standin():
    # loaded under a private name from its file: the stand-in must never become `torchaudio` in this process
    return _load(
        "_bench_torchaudio_standin_functional",
        ROOT / "benchmarks" / "_torchaudio_standin" / "torchaudio" / "functional.py",
    )


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_pairs_audio_with_same_stem_references_beside_it(peers, tmp_path):
    (
        _touch(tmp_path / "a.flac"),
        _touch(tmp_path / "a.tsv"),
        _touch(tmp_path / "a.mid"),
    )  # the MIDI file preferred (it carries the pedal), as evaluate
    _touch(tmp_path / "b.wav"), _touch(tmp_path / "b.mid")
    _touch(tmp_path / "sub" / "c.flac"), _touch(tmp_path / "sub" / "c.midi")
    _touch(tmp_path / "d.wav")  # no reference
    _touch(tmp_path / ".e.wav"), _touch(tmp_path / ".e.tsv")  # hidden
    _touch(tmp_path / "f.txt"), _touch(tmp_path / "f.tsv")  # not audio
    pairs, unmatched = peers.pair_files(tmp_path)
    got = [(a.relative_to(tmp_path).as_posix(), r.relative_to(tmp_path).as_posix()) for a, r in pairs]
    assert got == [("a.flac", "a.mid"), ("b.wav", "b.mid"), ("sub/c.flac", "sub/c.midi")]
    assert [p.name for p in unmatched] == ["d.wav"]


def test_include_glob_and_reference_folder(peers, tmp_path):
    audio, refs = tmp_path / "audio", tmp_path / "refs"
    _touch(audio / "x_csound.flac"), _touch(audio / "y_fluidr3.flac"), _touch(audio / "deep" / "z_csound.flac")
    _touch(refs / "x_csound.tsv"), _touch(refs / "y_fluidr3.tsv"), _touch(refs / "deep" / "z_csound.mid")
    _touch(audio / "x_csound.mid")  # beside the audio, but a reference folder was named
    pairs, unmatched = peers.pair_files(audio, refs, include="*_csound*")
    got = [(a.relative_to(audio).as_posix(), r.relative_to(refs).as_posix()) for a, r in pairs]
    assert got == [("deep/z_csound.flac", "deep/z_csound.mid"), ("x_csound.flac", "x_csound.tsv")]
    assert unmatched == []


def test_prepare_manifest_cuts_audio_and_notes(peers, tmp_path):
    import soundfile as sf

    sr = 22050
    sf.write(tmp_path / "p.flac", np.zeros((3 * sr, 2), np.float32), sr)  # 3 s stereo
    notes = np.array([[0.5, 2.5, 60, 80], [2.5, 2.9, 64, 70], [1.0, 1.5, 67, 90]])
    np.savetxt(tmp_path / "p.tsv", notes, fmt="%.6f", delimiter="\t", header="onset,offset,note,velocity")
    out = tmp_path / "out"
    out.mkdir()
    [item] = peers.prepare_manifest([(tmp_path / "p.flac", tmp_path / "p.tsv")], 2.0, out)
    info = sf.info(item["audio"])
    assert (info.samplerate, info.channels, info.frames) == (sr, 2, 2 * sr)  # its own rate and channels, first 2 s
    assert item["ref_notes"] == 2
    ref = np.loadtxt(item["ref"], delimiter="\t", skiprows=1, ndmin=2)
    # notes starting in the first 2 s, sorted by onset, held notes cut at 2 s
    np.testing.assert_allclose(ref, [[0.5, 2.0, 60, 80], [1.0, 1.5, 67, 90]])
    [whole] = peers.prepare_manifest([(tmp_path / "p.flac", tmp_path / "p.tsv")], None, out)
    assert whole["audio"] == str((tmp_path / "p.flac").resolve())
    assert len(np.loadtxt(whole["ref"], ndmin=2)) == whole["ref_notes"] == 3


def test_parse_systems(peers):
    assert peers.parse_systems("transkun, W2M2W,transkun") == ["transkun", "w2m2w"]
    with pytest.raises(argparse.ArgumentTypeError, match="onsets"):
        peers.parse_systems("w2m2w,onsets")


def test_table_rows(peers):
    row = {
        "system": "w2m2w",
        "label": "w2m2w Onsets and Frames",
        "version": "0.1.0 (w.safetensors)",
        "files": [{}, {}],
        "audio_s": 60.0,
        "wall_s": 4.0,
        "load_s": 0.25,
        "peak_rss_mb": 480.4,
        "mean": {
            "note_precision": 0.9,
            "note_recall": 0.8,
            "note_f1": 0.847,
            "note_velocity_f1": 0.6,
            "note_offset_f1": 0.5,
            "note_offset_velocity_f1": float("nan"),
            "frame_f1": 0.7,
        },
    }
    lines = peers.table([row, {"system": "transkun", "error": "ModuleNotFoundError: No module named 'x'"}]).splitlines()
    assert len(lines) == 4 and all(line.count("|") == lines[0].count("|") for line in lines)
    assert (
        lines[2]
        == "| w2m2w Onsets and Frames | 0.1.0 (w.safetensors) | 2 | 60 | 15.00 | 0.2 | 480 | 0.900 | 0.800 | 0.847 | 0.600 | 0.500 | n/a | 0.700 |"
    )
    assert lines[3].startswith("| transkun | failed: ModuleNotFoundError")


def test_standin_mel_filterbank_by_hand(standin):
    # one filter from 0 Hz to 2100 Hz: its HTK-mel midpoint is 700 * (sqrt(1 + 2100 / 700) - 1) = 700 Hz,
    # bins every 350 Hz from 0 to 2100: rising to 1 at 700 Hz, falling to 0 at 2100 Hz
    fb = standin.melscale_fbanks(n_freqs=7, f_min=0.0, f_max=2100.0, n_mels=1, sample_rate=4200)
    assert tuple(fb.shape) == (7, 1)
    np.testing.assert_allclose(fb[:, 0].numpy(), [0, 0.5, 1, 0.75, 0.5, 0.25, 0], atol=1e-6)


@pytest.mark.parametrize("norm, mel_scale", [(None, "htk"), ("slaney", "slaney")])
def test_standin_mel_filterbank_matches_librosa(standin, norm, mel_scale):
    import librosa

    # Transkun's front end: 4096-point frames at 44.1 kHz, 229 mels from 30 Hz to 8 kHz
    fb = standin.melscale_fbanks(
        n_freqs=2049, f_min=30.0, f_max=8000.0, n_mels=229, sample_rate=44100, norm=norm, mel_scale=mel_scale
    )
    want = librosa.filters.mel(
        sr=44100, n_fft=4096, n_mels=229, fmin=30.0, fmax=8000.0, htk=mel_scale == "htk", norm=norm
    ).T
    assert fb.dtype.is_floating_point and tuple(fb.shape) == want.shape
    np.testing.assert_allclose(fb.numpy(), want, atol=1e-5)


def test_standin_mel_filterbank_matches_transkuns_checkpoint(standin):
    # the buffer in Transkun's checkpoint was made by the real torchaudio
    pytest.importorskip("transkun")
    from importlib.resources import files

    import torch

    state = torch.load(str(files("transkun") / "pretrained" / "2.0.pt"), map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    fb = standin.melscale_fbanks(n_freqs=2049, f_min=30, f_max=8000, n_mels=229, sample_rate=44100)
    np.testing.assert_allclose(fb.numpy(), state["framewiseFeatureExtractor.freq2mels"].numpy(), atol=1e-4)
