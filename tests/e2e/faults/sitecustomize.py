"""Fault injection for tests/e2e/test_faults.py, loaded by every Python process of a test run (PYTHONPATH).

The test sets W2M2W_FAULTS to a JSON object; each key turns one fault on:

- "erofs": [folder, ...]: writes, renames and deletes inside these folders fail with EROFS,
  as on a read-only mount (tests run as root, where chmod does not stop writes).
- "enospc": [folder, ...]: the same, failing with ENOSPC, as on a 100 % full disk.
- "full_disk": folder: a stage's temporary output in this folder is a symlink to /dev/full,
  so writing it fails with the kernel's real ENOSPC, through whatever library writes it.
- "hold": {"pieces": [id, ...], "flag": path}: the transcribe stage of each of these pieces
  writes path.<n>.waiting (n: its place in the list; the file holds the pid) and waits until
  `path` exists: pieces that are surely in flight. With "partial": true it first writes a few
  bytes to its temporary output, as a stage killed in the middle of writing leaves them.

Without W2M2W_FAULTS nothing is changed.
"""

from __future__ import annotations

import builtins
import errno
import importlib.abc
import io
import json
import os
import sys
import time

_FAULTS = json.loads(os.environ.get("W2M2W_FAULTS") or "{}")


def _inside(path, folders) -> bool:
    try:
        p = os.path.abspath(os.fsdecode(path))
    except TypeError:
        return False  # a file descriptor
    return any(p == f or p.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _read_only(folders: list[str], code: int = errno.EROFS) -> None:
    folders = [os.path.abspath(f) for f in folders]

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    def guard_path(fn, writes=lambda *a, **k: True):
        def wrapped(path, *args, **kwargs):
            if writes(*args, **kwargs) and _inside(path, folders):
                refuse(path)
            return fn(path, *args, **kwargs)

        return wrapped

    def two_paths(fn):
        def wrapped(src, dst, *args, **kwargs):
            for p in (src, dst):
                if _inside(p, folders):
                    refuse(p)
            return fn(src, dst, *args, **kwargs)

        return wrapped

    write_modes = lambda mode="r", *a, **k: any(c in str(mode) for c in "wax+")  # noqa: E731
    write_flags = lambda flags, *a, **k: bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))  # noqa: E731
    builtins.open = io.open = guard_path(builtins.open, write_modes)
    os.open = guard_path(os.open, write_flags)
    for name in ("unlink", "remove", "mkdir", "rmdir"):
        setattr(os, name, guard_path(getattr(os, name)))
    for name in ("replace", "rename", "link", "symlink"):
        setattr(os, name, two_paths(getattr(os, name)))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls patch(module) right after the named module is first executed."""

    def __init__(self, patches: dict) -> None:
        self.patches = patches

    def find_spec(self, name, path, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run, patch = spec.loader.exec_module, self.patches.pop(name)

        def exec_module(module):
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


def _full_disk(files, folder: str) -> None:
    original = files.temp_name

    def temp_name(path):
        tmp = original(path)
        if _inside(tmp, [os.path.abspath(folder)]):
            os.makedirs(tmp.parent, exist_ok=True)
            os.symlink("/dev/full", tmp)
        return tmp

    files.temp_name = temp_name


def _hold(module, pieces: list, flag: str, partial: bool = False) -> None:
    original = module.STAGE.run  # the registered stage (w2m2w.run.stage.Stage)

    def run(settings, job):
        if job.piece in pieces:
            if partial:  # half a file written, as a stage killed mid-write leaves it
                with open(job.output, "wb") as f:
                    f.write(b"MThd")
            with open(f"{flag}.{pieces.index(job.piece)}.waiting", "w") as f:
                f.write(str(os.getpid()))
            while not os.path.exists(flag):
                time.sleep(0.05)
        return original(settings, job)

    module.STAGE.run = run


_patches = {}
if "erofs" in _FAULTS:
    _read_only(_FAULTS["erofs"])
if "enospc" in _FAULTS:
    _read_only(_FAULTS["enospc"], errno.ENOSPC)
if "full_disk" in _FAULTS:
    _patches["w2m2w.files"] = lambda m: _full_disk(m, _FAULTS["full_disk"])
if "hold" in _FAULTS:
    _patches["stages.transcribe"] = lambda m: _hold(m, **_FAULTS["hold"])
if _patches:
    sys.meta_path.insert(0, _AfterImport(_patches))
