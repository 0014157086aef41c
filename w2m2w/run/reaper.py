"""Processes that must not outlive the run that started them: a watchdog that ends them when it dies.

A local Ray instance (executor=ray with no address) is a tree of processes under the run:
its head processes are the run's children, the actors their children. Killed with -9, the
run cannot shut Ray down, and the actors went on for about a minute (one held a piece's
temporary file). `start_reaper` starts a small process in a session of its own that watches
the run; every half second it notes the whole tree under the given roots, and once the run
is gone it kills every process of the last note that is still the same process (same start
time), grandchildren already re-parented to init included. Linux only (/proc); elsewhere
nothing is started.

    python -m w2m2w.run.reaper PARENT_PID ROOT_PID [ROOT_PID ...]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc/PID/stat; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name, in brackets, may hold spaces
    return int(fields[1]), int(fields[19])


def process_tree(roots: list[int]) -> dict[int, int]:
    """pid -> start time of `roots` and all their descendants that are alive now."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            parents.setdefault(st[0], []).append(int(entry))
            starts[int(entry)] = st[1]
    tree: dict[int, int] = {}
    todo = [r for r in roots if r in starts]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree[pid] = starts[pid]
            todo += parents.get(pid, [])
    return tree


def kill_noted(noted: dict[int, int]) -> list[int]:
    """SIGKILL every noted process that is still the same one (its start time unchanged); the pids killed."""
    killed = []
    for pid, start in noted.items():
        st = _stat(pid)
        if st is not None and st[1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed


def _alive(pid: int) -> bool:
    st = _stat(pid)
    if st is None:
        return False
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"  # a zombie has ended
    except (OSError, IndexError):
        return False


def watch(parent: int, roots: list[int], poll_s: float = POLL_S) -> list[int]:
    """Note the tree under `roots` while `parent` lives; then kill what is left of it. The pids killed."""
    noted = process_tree(roots)  # first, before looking at the parent: it may have died while this process started
    while _alive(parent):
        noted.update(process_tree(roots + list(noted)))
        noted = {p: s for p, s in noted.items() if (st := _stat(p)) is not None and st[1] == s}
        time.sleep(poll_s)
    return kill_noted(noted)


def start_reaper(roots: list[int]) -> subprocess.Popen | None:
    """A watchdog for `roots` (and their descendants) that ends them when this process dies; None off Linux."""
    if not roots or not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "w2m2w.run.reaper", str(os.getpid()), *map(str, roots)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the run's process group: a Ctrl-C or kill of the group leaves it to clean up
    )


def children(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    return [p for p in process_tree([pid]) if p != pid and (st := _stat(p)) is not None and st[0] == pid]


if __name__ == "__main__":
    watch(int(sys.argv[1]), [int(p) for p in sys.argv[2:]])
