"""The top-level settings of a pipeline run (conf/config.yaml) and of its executors (conf/executor/), and the
check of a whole run's settings that runs before any model loads or any file is written."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from w2m2w.run.piece_ids import safe_component
from w2m2w.run.rundir import (
    STAGES as STAGE_NAMES,
)  # the run-directory folders' order; the registry test holds stages.STAGES to it
from w2m2w.settings import (
    AT_LEAST_ONE,
    AUTO,
    AUTO_DEVICES,
    DEVICES,
    NON_NEGATIVE,
    POSITIVE,
    Range,
    SettingsError,
    check,
    is_device,
    setting,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# each worker is a process that loads every model (hundreds of MB): thousands of them is a typo, not a machine
WORKERS = Range(1, 1024)


@dataclass
class LocalExecutor:
    """conf/executor/local.yaml: pieces run on this machine, in `workers` processes (a top-level setting)."""

    name: str = setting("local", choices=("local",), affects_output=False)


@dataclass
class RayExecutor:
    """conf/executor/ray.yaml: pieces fanned out over a Ray cluster, one actor per worker."""

    name: str = setting("ray", choices=("ray",), affects_output=False)
    address: str | None = setting(None, affects_output=False)  # null: a local Ray instance; auto: the running cluster
    workers: int | None = setting(None, range=AT_LEAST_ONE, affects_output=False)  # null: as many as fit
    cpus_per_worker: float = setting(1.0, range=POSITIVE, affects_output=False)
    gpus_per_worker: Any = setting("auto", affects_output=False)  # auto, or a number >= 0 (checked by check_run)
    num_cpus: int | None = setting(None, range=AT_LEAST_ONE, affects_output=False)
    init_kwargs: dict[str, Any] = setting(default_factory=dict, affects_output=False)


@dataclass
class RunSettings:
    """conf/config.yaml: what to run, where, and how; the stage groups hold each stage's settings dataclass."""

    input: str | None = setting(None)  # a file, folder, glob or list of paths; null: run.json's pieces, or the demo
    run_dir: str | None = setting(None)  # null: runs/<input name> (default_run_dir), runs/demo for the demo
    # every stage's device where the stage's own `device` is null; auto: a GPU when torch has one (resolve_devices)
    device: str = setting(AUTO, device=AUTO, affects_output=False)
    stages: list[str] = setting(default_factory=lambda: list(STAGE_NAMES))
    force: bool = setting(False, affects_output=False)
    workers: int | None = setting(None, range=WORKERS, affects_output=False)  # null: one per core
    progress: bool = setting(True, affects_output=False)
    shard: int = setting(0, range=NON_NEGATIVE, affects_output=False)
    num_shards: int = setting(1, range=AT_LEAST_ONE, affects_output=False)
    reuse_from: list[str] = setting(default_factory=list, affects_output=False)
    log_level: str = setting("INFO", choices=LOG_LEVELS, affects_output=False)
    # the config groups: their options' dataclasses (stages.*, the executors above) are the schemas
    transcribe: Any = None
    generate: Any = None
    synthesize: Any = None
    executor: Any = None


DEMO_RUN_DIR = "runs/demo"
_GLOB = set("*?[")


def default_run_dir(input: str | None) -> str:
    """The run folder of a call without run_dir: runs/<the input's name>, where people look for it.

    A file gives its name without the extension (`my_takes/waltz (take 2).ogg` -> runs/waltz (take 2)), a folder its
    name (`my_takes/` -> runs/my_takes), a glob the folder before its first wildcard, a list of paths its name; no
    input (the demo, or a rerun that names no run_dir) runs/demo. Characters no file system takes become `_`.
    """
    if input is None:
        return DEMO_RUN_DIR
    parts = list(PurePath(str(input)).parts)
    glob_at = next((i for i, part in enumerate(parts) if _GLOB & set(part)), None)
    if glob_at is not None:
        path, is_folder = Path(*parts[:glob_at]) if glob_at else Path("."), True
    else:
        path = Path(str(input)).expanduser()
        is_folder = path.is_dir()
    if path.name in ("", ".", ".."):  # the current folder, or a parent: its own name
        path, is_folder = path.resolve(), True
    name = path.name if is_folder else path.stem
    return f"runs/{safe_component(name or 'input')}"


def run_folder(s: RunSettings) -> str:
    """The run's folder: run_dir, else the one default_run_dir names for its input."""
    return s.run_dir if s.run_dir else default_run_dir(s.input)


def check_stage_list(stages: list[str]) -> list[str]:
    """A non-empty, contiguous, ordered subset of STAGE_NAMES (ValueError otherwise)."""
    stages = list(stages)
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown or not stages:
        raise ValueError(f"stages must be a non-empty contiguous subset of {list(STAGE_NAMES)}, got {stages}")
    idx = [STAGE_NAMES.index(s) for s in stages]
    if idx != list(range(idx[0], idx[0] + len(idx))):
        raise ValueError(f"stages must be contiguous and in order {list(STAGE_NAMES)}, got {stages}")
    return stages


def check_run(s: RunSettings) -> None:
    """SettingsError (one line naming the key and what is allowed) for the first setting of the run out of range."""
    check(s)  # every field, the stage groups and the executor included (they are dataclasses)
    try:
        check_stage_list(s.stages)
    except ValueError as exc:
        raise SettingsError("stages", s.stages, str(exc).split(", got")[0].replace("stages must be ", "")) from None
    if s.shard >= s.num_shards:
        raise SettingsError("shard", s.shard, f"in [0, num_shards - 1] = [0, {s.num_shards - 1}]")
    gpus = getattr(s.executor, "gpus_per_worker", "auto")
    if gpus not in (None, "auto") and (isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0):
        raise SettingsError("executor.gpus_per_worker", gpus, "'auto' or a number in [0, inf)")
    if getattr(s.executor, "name", "local") == "local":  # Ray's workers run on other machines: theirs may differ
        check_this_machine(s)


def check_this_machine(s: RunSettings) -> None:
    """What the stages that run need from this machine: their devices, FluidSynth's soundfont (SettingsError otherwise).

    A device is checked under the key that set it: `device` where a stage follows the top-level switch."""
    for name in s.stages:
        group = getattr(s, name, None)
        if not hasattr(group, "device"):  # fluidsynth: no torch model, no device
            continue
        key, device = (f"{name}.device", group.device) if group.device is not None else ("device", s.device)
        if isinstance(device, str) and device.startswith("cuda"):
            _check_cuda(key, device)
    synth = s.synthesize
    if "synthesize" in s.stages and getattr(synth, "name", None) == "fluidsynth":
        from w2m2w.render.fluidsynth import pyfluidsynth_problem

        problem = pyfluidsynth_problem()  # refused before any piece, not failed piece by piece
        if problem:
            raise SettingsError("synthesize", "fluidsynth", f"a renderer this machine can run: {problem}")
        _check_soundfont("synthesize.soundfont", synth.soundfont)


def _check_cuda(key: str, device: str) -> None:
    """Torch's own error for a missing GPU ("Torch not compiled with CUDA enabled") comes after loading, and names no key."""
    import torch

    if not torch.cuda.is_available():
        raise SettingsError(
            key, device, "'cpu' here: this torch has no usable CUDA (a CPU-only build, or no GPU visible)"
        )
    count = torch.cuda.device_count()
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if index >= count:
        raise SettingsError(key, device, f"{DEVICES} with N below {count}, the GPUs visible here")


def _check_soundfont(key: str, soundfont: str) -> None:
    from w2m2w.render.fluidsynth import SOUNDFONTS, RenderError, soundfont_path

    try:
        soundfont_path(soundfont)
    except RenderError:
        path = SOUNDFONTS.get(soundfont, soundfont)
        names = ", ".join(SOUNDFONTS)
        raise SettingsError(
            key, soundfont, f"an installed soundfont ({names}) or the path of a .sf2/.sf3 file; {path} does not exist"
        ) from None


def auto_device() -> str:
    """`cuda` when torch has a usable GPU here, else `cpu`: what device=auto means on this machine."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_devices(s: RunSettings) -> RunSettings:
    """`s` with every stage's device made explicit: its own where set, else the top-level `device` (auto resolved).

    On Ray, auto is `cpu` here: each actor moves the models to the GPU Ray gives it (w2m2w.run.ray), as it
    always did, since the machine that checks the settings need not be the one that runs the pieces.
    """
    device = s.device
    if device == AUTO:
        device = "cpu" if getattr(s.executor, "name", "local") == "ray" else auto_device()
    groups = {}
    for name in STAGE_NAMES:
        group = getattr(s, name, None)
        if dataclasses.is_dataclass(group) and hasattr(group, "device") and group.device is None:
            groups[name] = dataclasses.replace(group, device=device)
    return dataclasses.replace(s, device=device, **groups)


def stage_device(device: str, key: str = "device") -> str:
    """A device for work outside a run (the Python API): `auto` resolved, CUDA checked (SettingsError naming `key`)."""
    if not is_device(device, allow_auto=True):
        raise SettingsError(key, device, AUTO_DEVICES)
    device = auto_device() if device == AUTO else device
    if device.startswith("cuda"):
        _check_cuda(key, device)
    return device


def record(s: RunSettings) -> dict[str, Any]:
    """The settings as plain data (summary.json and the report show them)."""
    return dataclasses.asdict(s)
