"""The shipped weights are checked against weights/SHA256SUMS when loaded; user weights only for their format."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from w2m2w import checkpoint
from w2m2w.checkpoint import WeightsError, load_weights, verify_shipped

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
SHIPPED = [
    "onsets_frames",
    "music_transformer",
    "source_filter_wavenet",
    "source_filter_wavenet_real",
    "wavenet",
    "beat_tracker",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_manifest_matches_the_shipped_files():
    listed = {}
    for line in (WEIGHTS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    assert listed == {f"{m}.safetensors": _sha256(WEIGHTS / f"{m}.safetensors") for m in SHIPPED}


@pytest.fixture
def shipped_copy(tmp_path) -> Path:
    """A 'shipped' folder in tmp: a copy of the smallest shipped file and its manifest line."""
    folder = tmp_path / "weights"
    folder.mkdir()
    src = WEIGHTS / "source_filter_wavenet.safetensors"
    shutil.copy(src, folder / src.name)
    (folder / "SHA256SUMS").write_text(f"{_sha256(src)}  {src.name}\n")
    return folder / src.name


def _flip_a_tensor_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")  # safetensors: 8-byte header length, JSON header, then tensor data
    at = 8 + header + (len(data) - 8 - header) // 2
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_good_shipped_file_passes(shipped_copy):
    verify_shipped(shipped_copy, shipped_copy.parent)


def test_flipped_tensor_byte_is_refused_naming_the_file_and_what_to_do(shipped_copy, monkeypatch):
    _flip_a_tensor_byte(shipped_copy)
    load_weights_format_only = shipped_copy.parent.parent / "elsewhere.safetensors"
    shutil.copy(shipped_copy, load_weights_format_only)
    load_weights(load_weights_format_only, "source_filter_wavenet")  # the flip is not a format error: user weights load
    monkeypatch.setattr(checkpoint, "SHIPPED_DIR", shipped_copy.parent)
    with pytest.raises(WeightsError) as err:
        load_weights(shipped_copy, "source_filter_wavenet")
    message = str(err.value)
    assert (
        "\n" not in message and str(shipped_copy) in message and "git checkout" in message and "git lfs pull" in message
    )


def test_manifest_entry_mismatch_names_the_file(shipped_copy):
    (shipped_copy.parent / "SHA256SUMS").write_text(f"{'0' * 64}  {shipped_copy.name}\n")
    with pytest.raises(WeightsError, match=shipped_copy.name):
        verify_shipped(shipped_copy, shipped_copy.parent)


def test_file_not_in_the_manifest_is_the_users(shipped_copy):
    other = shipped_copy.parent / "my_model.safetensors"
    shutil.copy(shipped_copy, other)
    _flip_a_tensor_byte(other)
    verify_shipped(other, shipped_copy.parent)


def test_each_file_is_hashed_once_per_process_until_it_changes(shipped_copy, monkeypatch):
    calls = []
    real = checkpoint.sha256_file
    monkeypatch.setattr(checkpoint, "sha256_file", lambda p: calls.append(p) or real(p))
    verify_shipped(shipped_copy, shipped_copy.parent)
    verify_shipped(shipped_copy, shipped_copy.parent)
    assert len(calls) == 1
    _flip_a_tensor_byte(shipped_copy)  # a new mtime or size: hashed again, and refused
    with pytest.raises(WeightsError):
        verify_shipped(shipped_copy, shipped_copy.parent)
    assert len(calls) == 2


def test_the_real_piano_model_renders_the_real_pianos_release():
    # weights/README.md "Natural ends": fine-tuned with the release measured on its recordings (0.18 s at middle C,
    # x1.22 per octave, cut after 10.4 of them), which rendering takes from the weights; the SptkBGCl model keeps its
    # one damper of 0.06 s, cut after 6
    from w2m2w.render.source_filter import load_source_filter

    real = load_source_filter(WEIGHTS / "source_filter_wavenet_real.safetensors").source_cfg
    assert (real.release_tau, real.release_tau_octave, real.release_taus) == (0.18, 1.22, 10.4)
    old = load_source_filter(WEIGHTS / "source_filter_wavenet.safetensors").source_cfg
    assert (old.release_tau, old.release_tau_octave, old.release_taus) == (0.06, 1.0, 6.0)
