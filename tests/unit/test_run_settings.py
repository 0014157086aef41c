"""The run's own checks (w2m2w.run.settings): the stage list, the shard, the executor's GPUs, this machine's GPUs and
soundfont, and the settings record. Every refusal's words are written out here by hand from SettingsError's form
"KEY=VALUE is not allowed: it must be ALLOWED"; torch's CUDA and FluidSynth are stood in for, so the GPU branches
run on a CPU-only machine."""

from __future__ import annotations

import dataclasses

import pytest

from stages.generate import GenerateSettings
from stages.synthesize import FluidSynthSettings, SourceFilterSettings
from stages.transcribe import TranscribeSettings
from w2m2w.run.settings import (
    LocalExecutor,
    RayExecutor,
    RunSettings,
    auto_device,
    check_run,
    check_stage_list,
    check_this_machine,
    record,
    resolve_devices,
    stage_device,
)
from w2m2w.settings import SettingsError

STAGES = ["transcribe", "generate", "synthesize"]


def _run(**kw) -> RunSettings:
    parts = dict(
        transcribe=TranscribeSettings(device="cpu"),
        generate=GenerateSettings(device="cpu"),
        synthesize=SourceFilterSettings(device="cpu"),
        executor=LocalExecutor(),
    )
    return RunSettings(**{**parts, **kw})


@pytest.fixture()
def gpus(monkeypatch):
    """Stand in for torch's CUDA: gpus(n) makes n GPUs visible (0: none, CUDA unavailable)."""
    import torch

    def visible(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    visible(0)
    return visible


@pytest.mark.parametrize(
    "stages",
    [["transcribe"], ["generate"], ["synthesize"], ["transcribe", "generate"], ["generate", "synthesize"], STAGES],
)
def test_every_contiguous_ordered_stage_list_is_taken(stages):
    assert check_stage_list(tuple(stages)) == stages  # a list back, whatever sequence came in


@pytest.mark.parametrize(
    ("stages", "why"),
    [
        ([], "a non-empty contiguous subset of"),
        (["transcribe", "render"], "a non-empty contiguous subset of"),
        (["Transcribe"], "a non-empty contiguous subset of"),
        (["transcribe", "synthesize"], "contiguous and in order"),  # a gap
        (["generate", "transcribe"], "contiguous and in order"),  # out of order
        (["synthesize", "generate"], "contiguous and in order"),
        (["generate", "generate"], "contiguous and in order"),  # twice
    ],
)
def test_a_stage_list_with_a_gap_a_stranger_or_nothing_is_refused(stages, why):
    with pytest.raises(ValueError) as err:
        check_stage_list(stages)
    assert str(err.value) == f"stages must be {why} {STAGES}, got {stages}"
    with pytest.raises(SettingsError) as err:
        check_run(_run(stages=stages))
    assert str(err.value) == f"stages={stages!r} is not allowed: it must be {why} {STAGES}"


@pytest.mark.parametrize(("shard", "shards", "ok"), [(0, 1, True), (1, 1, False), (2, 3, True), (3, 3, False)])
def test_the_shard_lies_below_the_number_of_shards(shard, shards, ok):
    s = _run(shard=shard, num_shards=shards)
    if ok:
        check_run(s)
        return
    with pytest.raises(SettingsError) as err:
        check_run(s)
    assert str(err.value) == f"shard={shard} is not allowed: it must be in [0, num_shards - 1] = [0, {shards - 1}]"


@pytest.mark.parametrize(
    ("gpus", "ok"),
    [("auto", True), (None, True), (0, True), (0.5, True), (2, True), (-1, False), (-0.5, False), (True, False)]
    + [("two", False), ("1", False), ([1], False)],
)
def test_gpus_per_worker_is_auto_or_a_number_at_least_zero(gpus, ok):
    s = _run(executor=RayExecutor(gpus_per_worker=gpus))
    if ok:
        check_run(s)
        return
    with pytest.raises(SettingsError) as err:
        check_run(s)
    assert (
        str(err.value) == f"executor.gpus_per_worker={gpus!r} is not allowed: it must be 'auto' or a number in [0, inf)"
    )


def test_a_missing_gpu_is_named_by_the_key_that_asked_for_it(gpus):
    no_cuda = "'cpu' here: this torch has no usable CUDA (a CPU-only build, or no GPU visible)"
    with pytest.raises(SettingsError) as err:
        check_this_machine(_run(generate=GenerateSettings(device="cuda")))
    assert str(err.value) == f"generate.device='cuda' is not allowed: it must be {no_cuda}"
    with pytest.raises(SettingsError) as err:  # a stage that follows the top-level switch: named as `device`
        check_this_machine(_run(device="cuda:1", transcribe=TranscribeSettings(device=None)))
    assert str(err.value) == f"device='cuda:1' is not allowed: it must be {no_cuda}"
    # a stage that does not run is not checked; nor the top-level switch where every stage sets its own
    check_this_machine(_run(stages=["synthesize"], generate=GenerateSettings(device="cuda")))
    check_this_machine(_run(device="cuda"))
    check_this_machine(_run(synthesize=FluidSynthSettings(soundfont="timgm6mb"), device="cuda", stages=["synthesize"]))


@pytest.mark.parametrize(("device", "visible", "ok"), [("cuda", 1, True), ("cuda:0", 1, True), ("cuda:1", 1, False)])
def test_a_gpu_index_lies_below_the_count_visible(gpus, device, visible, ok):
    gpus(visible)
    s = _run(generate=GenerateSettings(device=device))
    if ok:
        check_this_machine(s)
        assert stage_device(device, "api.device") == device
        return
    allowed = f"'cpu', 'cuda' or 'cuda:N' (N: a GPU's index) with N below {visible}, the GPUs visible here"
    with pytest.raises(SettingsError) as err:
        check_this_machine(s)
    assert (err.value.key, err.value.value, err.value.allowed) == ("generate.device", device, allowed)
    with pytest.raises(SettingsError) as err:
        stage_device(device, "api.device")
    assert (err.value.key, err.value.allowed) == ("api.device", allowed)


def test_two_gpus_take_index_one(gpus):
    gpus(2)
    check_this_machine(_run(generate=GenerateSettings(device="cuda:1")))
    with pytest.raises(SettingsError):
        check_this_machine(_run(generate=GenerateSettings(device="cuda:2")))


def test_ray_runs_leave_this_machines_gpus_unchecked(gpus):
    check_run(_run(executor=RayExecutor(), generate=GenerateSettings(device="cuda")))
    with pytest.raises(SettingsError):
        check_run(_run(executor=LocalExecutor(), generate=GenerateSettings(device="cuda")))


def test_fluidsynth_needs_its_library_and_an_installed_soundfont(monkeypatch, tmp_path):
    import w2m2w.render.fluidsynth as fs

    monkeypatch.setattr(fs, "pyfluidsynth_problem", lambda: None)
    sf2 = tmp_path / "mine.sf2"
    sf2.write_bytes(b"RIFF")
    check_this_machine(_run(synthesize=FluidSynthSettings(soundfont=str(sf2))))
    missing = tmp_path / "none.sf2"
    with pytest.raises(SettingsError) as err:
        check_this_machine(_run(synthesize=FluidSynthSettings(soundfont=str(missing))))
    names = "fluidr3, timgm6mb, musescore, csound"
    assert str(err.value) == (
        f"synthesize.soundfont={str(missing)!r} is not allowed: it must be an installed soundfont ({names}) "
        f"or the path of a .sf2/.sf3 file; {missing} does not exist"
    )
    # a short name not installed is named with the path it was looked for at
    monkeypatch.setitem(fs.SOUNDFONTS, "csound", str(tmp_path / "gone" / "sf_GMbank.sf2"))
    with pytest.raises(SettingsError) as err:
        check_this_machine(_run(synthesize=FluidSynthSettings(soundfont="csound")))
    assert str(err.value).endswith(f"; {tmp_path / 'gone' / 'sf_GMbank.sf2'} does not exist")
    # FluidSynth itself missing: refused before any piece, whatever the soundfont
    monkeypatch.setattr(fs, "pyfluidsynth_problem", lambda: "libfluidsynth not found")
    with pytest.raises(SettingsError) as err:
        check_this_machine(_run(synthesize=FluidSynthSettings(soundfont=str(sf2))))
    assert str(err.value) == (
        "synthesize='fluidsynth' is not allowed: it must be a renderer this machine can run: libfluidsynth not found"
    )
    # nor checked when synthesize does not run
    check_this_machine(_run(stages=["generate"], synthesize=FluidSynthSettings(soundfont=str(missing))))


def test_auto_is_the_gpu_when_there_is_one(gpus):
    assert auto_device() == "cpu"
    gpus(1)
    assert auto_device() == "cuda"
    assert resolve_devices(_run(device="auto", generate=GenerateSettings(device=None))).generate.device == "cuda"


def test_stage_device_names_its_key_for_a_device_it_does_not_know(gpus):
    with pytest.raises(SettingsError) as err:
        stage_device("tpu", "transcriber.device")
    assert err.value.key == "transcriber.device" and err.value.value == "tpu"
    assert err.value.allowed == "'auto' (a GPU when torch has one), 'cpu', 'cuda' or 'cuda:N' (N: a GPU's index)"


def test_record_is_plain_data_of_every_setting():
    s = _run(input="a.wav", workers=3)
    got = record(s)
    assert got["input"] == "a.wav" and got["workers"] == 3 and got["stages"] == STAGES
    assert got["generate"] == dataclasses.asdict(GenerateSettings(device="cpu"))
    assert got["executor"] == {"name": "local"}
    got["stages"].append("x")
    assert s.stages == STAGES, "a copy: the record can be changed without changing the run"


def test_a_folders_name_keeps_its_dots_and_a_file_loses_its_extension(tmp_path, monkeypatch):
    from w2m2w.run.settings import default_run_dir, run_folder

    home = tmp_path / "takes.2026"
    (home / "set.b").mkdir(parents=True)
    monkeypatch.chdir(home)
    assert default_run_dir("set.b") == "runs/set.b"  # a folder: its whole name
    assert default_run_dir("set.b/**/*.flac") == "runs/set.b"  # a glob: the folder before it
    assert default_run_dir("set.b/take.one.wav") == "runs/take.one"  # a file: its name without the extension
    assert default_run_dir(".") == "runs/takes.2026"
    assert default_run_dir("set.b/..") == "runs/takes.2026"  # a parent: its own name
    assert default_run_dir("..") == f"runs/{tmp_path.name}"
    assert default_run_dir("/") == "runs/input"  # the root has no name
    assert default_run_dir("/*.wav") == "runs/input"
    assert run_folder(RunSettings(input="set.b/take.one.wav")) == "runs/take.one"
    assert run_folder(RunSettings(input="a.wav", run_dir="")) == "runs/a", "an empty run_dir is no run_dir"


def test_stage_groups_without_a_device_or_an_executor(gpus):
    # a group without a device before one that asks for a GPU: the later one is still checked
    with pytest.raises(SettingsError) as err:
        check_this_machine(_run(transcribe=None, generate=GenerateSettings(device="cuda")))
    assert err.value.key == "generate.device"
    check_this_machine(_run(synthesize=None))  # no renderer named: nothing to check for it
    # no executor group (the Python API's runs): this machine runs the pieces, so its GPUs are checked
    with pytest.raises(SettingsError) as err:
        check_run(_run(executor=None, generate=GenerateSettings(device="cuda")))
    assert err.value.key == "generate.device"
