"""Files written safely: atomic writes, guarded make/replace/remove inside a root folder, locks, sha256.

Whatever writes or deletes in a run folder passes the folder as `root`, and
inside_run_dir refuses any path outside it. atomic_path is the project's one way
to write any file atomically (weights, checkpoints, caches, reports, run folders):
outside a run folder, callers pass root=None.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("w2m2w")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class OutsideRunDirError(ValueError):
    """A path to write or delete that does not lie inside the run folder; nothing is touched."""


def inside_run_dir(run_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` itself, once checked to lie inside `run_dir`; else OutsideRunDirError.

    Every write and delete in a run folder goes through here. The folder holding `path` is
    resolved (symlinks, '..'); the name itself is not, since renaming onto or deleting a
    symlink touches the link, not what it points to (files we open, we open without
    following a link).
    """
    path = Path(path)
    root = Path(run_dir).resolve()
    where = path.absolute().parent.resolve() / path.name
    if path.name in ("", ".", "..") or (where != root and root not in where.parents):
        raise OutsideRunDirError(f"{path}: outside the run folder {root}; refused")
    return path


def host_tag(host: str | None = None) -> str:
    """This machine's name as it appears in temporary names: no '-' (the field separator), at most 40 bytes.

    Piece names leave 95 bytes of NAME_MAX for the temporary's tail (piece_ids), so a long
    name is cut and given a hash of the whole, keeping two long names apart.
    """
    host = host if host is not None else socket.gethostname()
    tag = re.sub(r"[^A-Za-z0-9.]", "_", host) or "_"
    if len(tag) > 40:
        tag = tag[:31] + "_" + hashlib.sha256(host.encode()).hexdigest()[:8]
    return tag


def temp_name(path: Path) -> Path:
    """A hidden temporary name next to `path` that says which process on which host made it.

    `.NAME.tmp-HOST-PID-RANDOM.EXT`: the host matters because a run folder on shared storage is
    written by processes on several machines, and a pid means something only on its own host.
    """
    return path.with_name(f".{path.name}.tmp-{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _checked(root: str | os.PathLike | None, path: str | os.PathLike) -> Path:
    """`path`, checked to lie inside the run folder `root`; root=None: a file outside any run folder, not checked."""
    return Path(path) if root is None else inside_run_dir(root, path)


def make_dirs(folder: str | os.PathLike, *, root: str | os.PathLike | None) -> Path:
    """Create `folder` (and its parents) inside the run folder `root` (None: anywhere)."""
    folder = _checked(root, folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def replace_file(src: str | os.PathLike, dst: str | os.PathLike, *, root: str | os.PathLike | None) -> None:
    """Rename `src` onto `dst`, both inside the run folder `root` (None: anywhere); atomic on one file system."""
    os.replace(_checked(root, src), _checked(root, dst))


def remove_file(path: str | os.PathLike, *, root: str | os.PathLike | None) -> bool:
    """Delete `path` inside the run folder `root` (None: anywhere) if it is there; True if it was deleted.

    Never raises: this is cleanup, often inside a failure handler, and a second failure
    (a read-only folder) must not hide the first or stop the batch. Problems are logged.
    """
    if not os.path.lexists(path):
        return False  # checked first: a read-only file system refuses even to delete what is not there
    try:
        _checked(root, path).unlink()
        return True
    except FileNotFoundError:
        return False
    except (OSError, OutsideRunDirError) as exc:
        log.warning("%s: not deleted (%s)", path, exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, root: str | os.PathLike | None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The one atomic write of the project: readers see the old file or the new one, never half
    of one, and a failed or interrupted block leaves no temporary behind (a killed process's
    is removed by remove_stale_temps). `root`: the run folder `path` must lie in, or None for
    a file outside run folders (weights, caches, reports); passed explicitly either way.
    """
    path = _checked(root, path)
    make_dirs(path.parent, root=root)
    tmp = temp_name(path)
    try:
        yield tmp
        replace_file(tmp, path, root=root)
    finally:
        remove_file(tmp, root=root)


def write_json(path: str | os.PathLike, data: Any, *, root: str | os.PathLike | None) -> None:
    """Atomically write `data` as indented JSON at `path` (inside the run folder `root`; None: anywhere)."""
    with atomic_path(path, root=root) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# host tags hold no '-', so the pid is unambiguous whatever the host is called
_TMP_RE = re.compile(r"^\..+\.tmp-([A-Za-z0-9._]+)-(\d+)-[0-9a-f]{8}(\.[^.]*)?$")


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host tag, pid) of the process that made a temporary file named `name`; None for any other name.

    Names of the format before hosts were recorded (`.NAME.tmp-PID-RANDOM.EXT`) give None too:
    they may have been made on any machine that shares the folder, so nothing can tell
    whether their writer still runs.
    """
    m = _TMP_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def remove_stale_temps(folder: str | os.PathLike, *, root: str | os.PathLike) -> list[Path]:
    """Delete temporary files under `folder` left by processes of this host that no longer run; never raises.

    Only this host's files: another host's pid cannot be checked from here, and its writer may
    be busy (cluster shards share one run folder). Old-format names without a host are left
    alone for the same reason; they are hidden, so no stage reads them, and deleting a file
    another machine is writing would be worse than a stray temporary.
    """
    removed: list[Path] = []
    folder = Path(folder)
    try:
        found = list(folder.rglob(".*.tmp-*")) if folder.is_dir() else []
    except OSError as exc:
        log.warning("%s: temporary files not cleaned (%s)", folder, exc.strerror or exc)
        return removed
    here = host_tag()
    for f in found:
        owner = temp_owner(f.name)
        if owner is not None and owner[0] == here and not _pid_alive(owner[1]) and remove_file(f, root=root):
            removed.append(f)
    return removed


class LockedError(RuntimeError):
    """Another process holds the lock; the message says which file and, when known, who."""


def _open_lock(path: Path, root: str | os.PathLike) -> int:
    make_dirs(inside_run_dir(root, path).parent, root=root)
    # O_NOFOLLOW: a lock file planted as a symlink must not make us truncate what it points to
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str = "", *, root: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on `path` (inside the run folder `root`) for the block, or raise LockedError.

    flock is released by the kernel when the holder exits, however it exits, so a
    crashed run never leaves a piece locked. Lock files stay behind on purpose:
    deleting one while another process opens it would let two holders in.
    """
    import fcntl

    path = Path(path)
    fd = _open_lock(path, root)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise LockedError(
                f"{what or path}: held by another process ({holder or 'unknown'}); skipped here, that run writes it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


LOCK_WAIT_S = 60.0  # how long update_json waits for another process to release a JSON file's lock


def update_json(
    path: str | os.PathLike, update: Callable[[dict[str, Any]], dict[str, Any]], *, root: str | os.PathLike
) -> dict[str, Any]:
    """Read JSON at `path` ({} if missing), apply `update`, write it back atomically, all under a lock.

    Runs that share a run directory (two users, or N cluster shards) merge their parts this way,
    so none drops what another wrote.
    """
    import fcntl

    path = Path(path)
    fd = _open_lock(path.with_name(f".{path.name}.lock"), root)
    try:
        # holders only read and write a small file, so a lock held for long is a stuck or foreign process:
        # wait a while (shards of a cluster job merge here at once), then say so instead of hanging
        deadline = time.monotonic() + float(os.environ.get("W2M2W_LOCK_WAIT_S", LOCK_WAIT_S))
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockedError(
                        f"{path}: locked by another process for over {LOCK_WAIT_S:.0f} s; nothing was changed"
                    ) from None
                time.sleep(0.05)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data = update(data)
        write_json(path, data, root=root)
    finally:
        os.close(fd)
    return data


def file_sha256(path: str | os.PathLike) -> str:
    return sha256_file(path)
