"""Where a run goes without run_dir, and the one device switch (w2m2w.run.settings)."""

from __future__ import annotations

import pytest

from stages.generate import GenerateSettings
from stages.synthesize import FluidSynthSettings, SourceFilterSettings
from stages.transcribe import TranscribeSettings
from w2m2w.run.settings import (
    LocalExecutor,
    RayExecutor,
    RunSettings,
    check_run,
    default_run_dir,
    resolve_devices,
    run_folder,
    stage_device,
)
from w2m2w.settings import SettingsError


def test_run_folder_is_named_for_the_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_takes" / "set a").mkdir(parents=True)
    assert default_run_dir(None) == "runs/demo"
    assert default_run_dir("my_takes/waltz (take 2).ogg") == "runs/waltz (take 2)"
    assert default_run_dir("my_takes") == "runs/my_takes"
    assert default_run_dir("my_takes/") == "runs/my_takes"
    assert default_run_dir("my_takes/set a") == "runs/set a"
    assert default_run_dir("tune.mid") == "runs/tune"
    assert default_run_dir("list.txt") == "runs/list"
    assert default_run_dir("my_takes/**/*.flac") == "runs/my_takes"
    assert default_run_dir("*.wav") == f"runs/{tmp_path.name}"
    assert default_run_dir(".") == f"runs/{tmp_path.name}"
    assert (
        default_run_dir("a:b?.wav".replace("?", "")) == "runs/a_b"
    )  # no file system character reaches the folder name
    assert run_folder(RunSettings(input="x.wav", run_dir="elsewhere")) == "elsewhere"


def _run(**kw) -> RunSettings:
    parts = dict(
        transcribe=TranscribeSettings(),
        generate=GenerateSettings(),
        synthesize=SourceFilterSettings(),
        executor=LocalExecutor(),
    )
    return RunSettings(**{**parts, **kw})


def test_one_switch_sets_every_stage_and_stage_keys_override(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    s = resolve_devices(_run(device="cpu", generate=GenerateSettings(device="cuda:1")))
    assert (s.transcribe.device, s.generate.device, s.synthesize.device) == ("cpu", "cuda:1", "cpu")
    s = resolve_devices(_run())  # auto, with a GPU
    assert (s.device, s.transcribe.device, s.generate.device, s.synthesize.device) == ("cuda", "cuda", "cuda", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = resolve_devices(_run())  # auto, without one
    assert (s.transcribe.device, s.generate.device, s.synthesize.device) == ("cpu", "cpu", "cpu")
    assert resolve_devices(_run(synthesize=FluidSynthSettings())).synthesize == FluidSynthSettings()  # no device to set
    # on Ray, auto is cpu here: each actor moves the models to the GPU Ray gives it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_devices(_run(executor=RayExecutor())).transcribe.device == "cpu"


@pytest.mark.parametrize(
    "device, ok", [("auto", True), ("cpu", True), ("cuda", True), ("cuda:3", True), ("gpu", False), ("Auto", False)]
)
def test_top_level_device_takes_auto(device, ok):
    if ok:
        check_run(_run(device=device, stages=["generate"], generate=GenerateSettings(device="cpu")))
    else:
        with pytest.raises(SettingsError) as err:
            check_run(_run(device=device))
        assert err.value.key == "device" and "'auto'" in str(err.value)


def test_cuda_without_cuda_names_the_key_that_asked(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SettingsError) as err:
        check_run(_run(device="cuda"))
    assert err.value.key == "device" and "no usable CUDA" in str(err.value)
    with pytest.raises(SettingsError) as err:
        check_run(_run(device="cpu", synthesize=SourceFilterSettings(device="cuda")))
    assert err.value.key == "synthesize.device"
    check_run(
        _run(
            device="cuda",
            **{
                s: cls(device="cpu")
                for s, cls in [
                    ("transcribe", TranscribeSettings),
                    ("generate", GenerateSettings),
                    ("synthesize", SourceFilterSettings),
                ]
            },
        )
    )
    check_run(_run(device="auto"))  # auto never asks for what is not there


def test_api_device_is_resolved_and_checked(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert stage_device("auto") == "cpu" and stage_device("cpu") == "cpu"
    for bad in ("cuda", "gpu"):
        with pytest.raises(SettingsError) as err:
            stage_device(bad)
        assert err.value.key == "device"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert stage_device("auto") == "cuda" and stage_device("cuda:0") == "cuda:0"
