"""Every stage setting that sizes memory or running time has an upper bound: just inside is accepted, at or over it
is refused with one line naming the key (settings.check, as run.py's check before Hydra writes anything)."""

from __future__ import annotations

import pytest

from stages.generate import GenerateSettings
from stages.synthesize import FluidSynthSettings, SourceFilterSettings, WaveNetSettings
from stages.transcribe import TranscribeSettings
from w2m2w.run.settings import LocalExecutor, RunSettings, check_run
from w2m2w.settings import SettingsError, check

# (settings class, field, largest value allowed, smallest value refused): the bounds the stages document
BOUNDS = [
    (TranscribeSettings, "chunk_seconds", 120.0, 120.001),
    (TranscribeSettings, "max_seconds", 86400.0, 86400.5),
    (GenerateSettings, "seconds", 3600.0, 3600.01),
    (GenerateSettings, "max_events", 1_080_000, 1_080_001),
    (GenerateSettings, "context", 8192, 8193),
    (GenerateSettings, "threads", 1024, 1025),
    (GenerateSettings, "seed", 2**64 - 1, 2**64),
    (SourceFilterSettings, "threads", 1024, 1025),
    (SourceFilterSettings, "block_seconds", 60.0, 60.01),
    (SourceFilterSettings, "max_seconds", 86400.0, 86400.5),
    (WaveNetSettings, "threads", 1024, 1025),
    (WaveNetSettings, "folds", 1024, 1025),
    (WaveNetSettings, "chunk_samples", 960_000, 960_001),
    (WaveNetSettings, "max_seconds", 86400.0, 86400.5),
    (FluidSynthSettings, "chunk_seconds", 600.0, 600.01),
    (FluidSynthSettings, "max_seconds", 86400.0, 86400.5),
]


def _refused_key(settings) -> str | None:
    try:
        check(settings, "group")
    except SettingsError as exc:
        assert "\n" not in str(exc)
        return exc.key
    return None


@pytest.mark.parametrize("cls, field, inside, over", BOUNDS, ids=[f"{c.__name__}.{f}" for c, f, _, _ in BOUNDS])
def test_upper_bound_accepts_inside_and_refuses_over(cls, field, inside, over):
    extra = (
        {"max_segment_seconds": 0.5, "min_segment_seconds": 0.5, "warmup_seconds": 0.0, "fade_seconds": 0.0}
        if field == "folds"
        else {}
    )
    assert _refused_key(cls(**{field: inside}, **extra)) is None
    assert _refused_key(cls(**{field: over}, **extra)) == f"group.{field}"


@pytest.mark.parametrize(
    "chunk, overlap, refused", [(20.0, 19.99, False), (20.0, 20.0, True), (20.0, 25.0, True), (5.0, 0.0, False)]
)
def test_overlap_must_stay_below_the_chunk(chunk, overlap, refused):
    key = _refused_key(TranscribeSettings(chunk_seconds=chunk, overlap_seconds=overlap))
    assert key == ("group.overlap_seconds" if refused else None)


@pytest.mark.parametrize(
    "folds, max_segment, refused",
    [
        (512, 7.8, False),
        (512, 7.9, True),
        (16, 4.0, False),
    ],  # 512 x (7.8 + 0.15 + 0.05) = 4096 stream-seconds; 7.9 makes 4147
)
def test_wavenet_window_is_bounded_in_stream_seconds(folds, max_segment, refused):
    key = _refused_key(
        WaveNetSettings(folds=folds, max_segment_seconds=max_segment, warmup_seconds=0.15, fade_seconds=0.05)
    )
    assert key == ("group.folds" if refused else None)


@pytest.mark.parametrize(
    "device, ok",
    [
        ("cpu", True),
        ("cuda", True),
        ("cuda:0", True),
        ("cuda:12", True),
        ("quantum", False),
        ("auto", False),
        ("cuda:", False),
        ("CPU", False),
        ("cpu ", False),
    ],
)
def test_device_is_cpu_cuda_or_cuda_n(device, ok):
    for cls in (TranscribeSettings, GenerateSettings, SourceFilterSettings, WaveNetSettings):
        assert _refused_key(cls(device=device)) == (None if ok else "group.device")


def _run(**kw) -> RunSettings:
    parts = dict(
        transcribe=TranscribeSettings(),
        generate=GenerateSettings(),
        synthesize=SourceFilterSettings(),
        executor=LocalExecutor(),
    )
    return RunSettings(**{**parts, **kw})


def test_workers_are_bounded():
    check_run(_run(workers=1024))
    with pytest.raises(SettingsError) as err:
        check_run(_run(workers=1025))
    assert err.value.key == "workers"


def test_cuda_without_cuda_names_the_key(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SettingsError) as err:
        check_run(_run(generate=GenerateSettings(device="cuda")))
    assert err.value.key == "generate.device" and "CUDA" in str(err.value)
    check_run(
        _run(generate=GenerateSettings(device="cuda"), stages=["transcribe"])
    )  # a stage that does not run needs no GPU


def test_cuda_index_must_name_a_visible_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_run(_run(transcribe=TranscribeSettings(device="cuda:1")))
    with pytest.raises(SettingsError) as err:
        check_run(_run(transcribe=TranscribeSettings(device="cuda:2")))
    assert err.value.key == "transcribe.device" and "below 2" in str(err.value)


def test_missing_soundfont_names_the_key_and_the_path(tmp_path):
    missing = tmp_path / "nowhere.sf2"
    with pytest.raises(SettingsError) as err:
        check_run(_run(synthesize=FluidSynthSettings(soundfont=str(missing))))
    assert err.value.key == "synthesize.soundfont" and str(missing) in str(err.value)
    check_run(_run(synthesize=FluidSynthSettings(soundfont=str(missing)), stages=["transcribe"]))


def test_fluidsynth_without_pyfluidsynth_is_refused_before_any_piece(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # what `import fluidsynth` meets where it is not installed
    with pytest.raises(SettingsError) as err:
        check_run(_run(synthesize=FluidSynthSettings()))
    assert err.value.key == "synthesize" and "pip install 'w2m2w[render]'" in str(err.value)
    check_run(_run(synthesize=FluidSynthSettings(), stages=["transcribe"]))  # not needed: not asked
    check_run(_run(synthesize=SourceFilterSettings()))  # another renderer needs no FluidSynth


# (settings class, field, smallest value allowed, largest value refused): the renderers' lower bounds, by hand from
# what each setting means (a block, a segment, a temperature of 0 s or 0 is nothing; a tail or warm-up may be 0)
LOWER = [
    (SourceFilterSettings, "block_seconds", 1e-3, 0.0),
    (SourceFilterSettings, "tail_seconds", 0.0, -1e-3),
    (SourceFilterSettings, "threads", 0, -1),
    (SourceFilterSettings, "max_seconds", 1e-3, 0.0),
    (WaveNetSettings, "folds", 1, 0),
    (WaveNetSettings, "min_segment_seconds", 1e-3, 0.0),
    (WaveNetSettings, "max_segment_seconds", 1e-3, 0.0),
    (WaveNetSettings, "warmup_seconds", 0.0, -1e-3),
    (WaveNetSettings, "fade_seconds", 0.0, -1e-3),
    (WaveNetSettings, "tail_seconds", 0.0, -1e-3),
    (WaveNetSettings, "temperature", 1e-3, 0.0),
    (WaveNetSettings, "seed", 0, -1),
    (WaveNetSettings, "chunk_samples", 1, 0),
    (WaveNetSettings, "threads", 0, -1),
    (FluidSynthSettings, "program", 0, -1),
    (FluidSynthSettings, "chunk_seconds", 1e-3, 0.0),
    (FluidSynthSettings, "max_seconds", 1e-3, 0.0),
]


@pytest.mark.parametrize("cls, field, inside, under", LOWER, ids=[f"{c.__name__}.{f}" for c, f, _, _ in LOWER])
def test_renderer_lower_bound_accepts_inside_and_refuses_under(cls, field, inside, under):
    assert _refused_key(cls(**{field: inside})) is None
    assert _refused_key(cls(**{field: under})) == f"group.{field}"


def test_renderer_choices_and_the_program_range():
    assert (
        _refused_key(FluidSynthSettings(program=127)) is None
        and _refused_key(FluidSynthSettings(program=128)) == "group.program"
    )
    for backend in ("auto", "numba", "torch"):
        assert _refused_key(WaveNetSettings(backend=backend)) is None
    assert _refused_key(WaveNetSettings(backend="cuda")) == "group.backend"
    assert (
        _refused_key(WaveNetSettings(crossfade="linear")) is None
        and _refused_key(WaveNetSettings(crossfade="cosine")) == "group.crossfade"
    )
    assert (
        _refused_key(SourceFilterSettings(device="cuda:1")) is None
        and _refused_key(SourceFilterSettings(device="gpu")) == "group.device"
    )
    # the window bound counts the larger of the two segment lengths, min_segment_seconds too when it is the larger:
    # 1024 x (3.8 + 0.15 + 0.05) = 4096 stream-seconds is the bound itself (allowed), 1024 x 4.1 is over
    assert (
        _refused_key(
            WaveNetSettings(
                folds=1024, min_segment_seconds=3.8, max_segment_seconds=0.5, warmup_seconds=0.15, fade_seconds=0.05
            )
        )
        is None
    )
    assert (
        _refused_key(
            WaveNetSettings(
                folds=1024, min_segment_seconds=3.9, max_segment_seconds=0.5, warmup_seconds=0.15, fade_seconds=0.05
            )
        )
        == "group.folds"
    )
    assert (
        _refused_key(
            WaveNetSettings(
                folds=1024, min_segment_seconds=0.5, max_segment_seconds=3.9, warmup_seconds=0.15, fade_seconds=0.05
            )
        )
        == "group.folds"
    )
