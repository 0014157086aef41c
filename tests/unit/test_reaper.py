"""run/reaper.py: a killed run's process tree (children and their re-parented children) ends within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from w2m2w.run.reaper import kill_noted, process_tree

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux /proc")

# a run (parent) that starts a child, which starts a grandchild; the parent prints the child's pid and waits
PARENT = """
import subprocess, sys, time
from w2m2w.run.reaper import start_reaper
child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
time.sleep(0.5)
start_reaper([child.pid])
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/status").read().split("State:")[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_killed_parent_s_tree_is_ended_grandchildren_included():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        tree = process_tree([child])
        assert len(tree) == 2  # the child and the grandchild
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in tree)
    finally:
        for p in list(process_tree([parent.pid])):
            kill_noted({p: 0})  # a wrong start time: kills nothing (the guard), so clean up for real below
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def test_kill_noted_spares_a_process_whose_start_time_differs():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (start,) = process_tree([p.pid]).values()
        assert kill_noted({p.pid: start + 1}) == []  # another process that reused the pid: left alone
        assert _alive(p.pid)
        assert kill_noted({p.pid: start}) == [p.pid]
        p.wait(timeout=5)
    finally:
        p.kill()
