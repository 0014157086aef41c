"""Stopping on signals (w2m2w/run/stopping.py), with real signals sent to this process: the first one requests a stop
(and interrupts where asked), a second one while stopping does not interrupt the cleanup, an ignored SIGINT stays
ignored, and the exit code is 128 + the first signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from w2m2w.run.stopping import EXIT_CODES, Interrupted, StopSignals, signals_blocked, unblock_signals, worker_signals


def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)  # delivered to the main thread before os.kill returns (Python runs the handler at once)


@pytest.fixture(autouse=True)
def _restore_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # each test starts from a terminal's dispositions: a shell starts background jobs with SIGINT ignored, and
    # StopSignals keeps an ignored SIGINT ignored (tested on its own below), which the other tests do not mean
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for s, h in before.items():
        signal.signal(s, h)


def test_exit_codes_are_128_plus_the_signal():
    assert EXIT_CODES == {signal.SIGINT: 130, signal.SIGTERM: 143}
    stop = StopSignals()
    stop.signum = signal.SIGHUP  # any other signal: still 128 + its number (1)
    assert stop.exit_code == 129


def test_a_signal_outside_interruptible_only_requests_a_stop():
    with StopSignals() as stop:
        assert not stop.requested
        _send(signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM and stop.count == 1 and stop.exit_code == 143


def test_the_first_signal_decides_the_exit_code_and_a_second_is_counted():
    with StopSignals() as stop:
        _send(signal.SIGINT)
        _send(signal.SIGTERM)
        assert stop.count == 2 and stop.signum == signal.SIGINT and stop.exit_code == 130


def test_inside_interruptible_the_first_signal_raises_and_a_second_does_not_interrupt_the_cleanup():
    cleaned = []
    with StopSignals() as stop:
        with pytest.raises(Interrupted) as info:
            with stop.interruptible():
                try:
                    _send(signal.SIGINT)
                    raise AssertionError("not interrupted")
                finally:
                    _send(
                        signal.SIGINT
                    )  # a second Ctrl-C while the first one's cleanup runs: no second Interrupted here
                    cleaned.append(True)
        assert info.value.signum == signal.SIGINT and "SIGINT" in str(info.value)
        assert cleaned == [True] and stop.count == 2


def test_a_stop_requested_before_entering_raises_on_entry_and_after_the_block_signals_do_not_raise():
    with StopSignals() as stop:
        with stop.interruptible():
            pass
        _send(signal.SIGTERM)  # outside the block: noted, not raised
        assert stop.requested
        with pytest.raises(Interrupted) as info:
            with stop.interruptible():
                raise AssertionError("the block must not start")
        assert info.value.signum == signal.SIGTERM


def test_handlers_are_put_back_on_exit():
    mine = signal.getsignal(signal.SIGTERM)
    with StopSignals():
        assert signal.getsignal(signal.SIGTERM) is not mine
    assert signal.getsignal(signal.SIGTERM) is mine


def test_an_ignored_sigint_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as nohup or `cmd &` start a process
    with StopSignals() as stop:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        _send(signal.SIGINT)
        assert not stop.requested and stop.count == 0
        _send(signal.SIGTERM)  # SIGTERM still stops it
        assert stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_worker_is_interrupted_once_wherever_it_is():
    stop = worker_signals()
    with pytest.raises(Interrupted):
        _send(signal.SIGTERM)
    _send(signal.SIGINT)  # the second one is only counted: the worker's cleanup runs on
    assert stop.count == 2 and stop.signum == signal.SIGTERM


def test_signals_blocked_holds_them_back_until_the_block_ends():
    with StopSignals() as stop:
        with signals_blocked():
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread, whose mask holds it back
            assert not stop.requested, "held back"
        assert stop.requested and stop.signum == signal.SIGTERM


_CHILD = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from w2m2w.run import stopping
got = []
signal.signal(signal.SIGTERM, lambda s, f: (print("SIGTERM", flush=True), os._exit(0)))
if {fallback}:
    stopping.sys.platform = "elsewhere"  # no prctl: the watching thread
stopping.die_with_parent({parent})
print("waiting", flush=True)
time.sleep(10)
print("not told", flush=True)
"""


def _child(parent: str, fallback: bool) -> subprocess.CompletedProcess:
    root = str(Path(__file__).resolve().parents[2])
    code = _CHILD.format(root=root, fallback=fallback, parent=parent)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("fallback", [False, True], ids=["prctl", "thread"])
def test_a_child_whose_parent_is_already_gone_gets_sigterm_at_once(fallback):
    # the parent pid it is given is not its parent (as when the parent died before the child asked): SIGTERM now
    res = _child("os.getppid() + 100000", fallback)
    assert res.stdout.split()[-1] == "SIGTERM", res.stdout + res.stderr


@pytest.mark.parametrize("fallback", [False, True], ids=["prctl", "thread"])
def test_a_child_of_a_living_parent_is_left_alone(fallback):
    import time as _time

    root = str(Path(__file__).resolve().parents[2])
    code = _CHILD.format(root=root, fallback=fallback, parent="os.getppid()").replace(
        "time.sleep(10)", "time.sleep(1.2)"
    )
    t0 = _time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert res.stdout.split() == ["waiting", "not", "told"], res.stdout + res.stderr
    assert _time.monotonic() - t0 >= 1.2


def test_a_child_gets_sigterm_when_its_parent_dies(tmp_path):
    # parent P starts child C (which asks to die with P) and exits once C waits; C must be told within seconds
    import time as _time

    root = str(Path(__file__).resolve().parents[2])
    out = tmp_path / "child.txt"
    child = _CHILD.format(root=root, fallback=False, parent="os.getppid()").replace("time.sleep(10)", "time.sleep(20)")
    parent = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=open({str(out)!r}, 'w'))\n"
        f"while 'waiting' not in open({str(out)!r}).read():\n    time.sleep(0.05)\n"
    )
    subprocess.run([sys.executable, "-c", parent], timeout=30, check=True)
    deadline = _time.monotonic() + 10
    while "SIGTERM" not in out.read_text() and _time.monotonic() < deadline:
        _time.sleep(0.05)
    assert out.read_text().split() == ["waiting", "SIGTERM"]


def test_unblock_signals_lets_a_held_signal_through():
    with StopSignals() as stop:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            assert not stop.requested
            unblock_signals()
            assert stop.signum == signal.SIGINT
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _no_death_signal() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG back to none for this test process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_in_this_process_a_parent_already_gone_means_sigterm_at_once():
    from w2m2w.run.stopping import die_with_parent

    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    try:
        die_with_parent(os.getppid() + 100000)  # not our parent: as if ours died before we asked
        assert got == [signal.SIGTERM]
        got.clear()
        die_with_parent(os.getppid())  # our parent, alive: nothing now
        assert got == []
    finally:
        _no_death_signal()


def test_in_this_process_the_watching_thread_sends_sigterm_when_the_parent_differs(monkeypatch):
    import time as _time

    from w2m2w.run import stopping

    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    monkeypatch.setattr(stopping.sys, "platform", "elsewhere")  # no prctl: the thread watches
    stopping.die_with_parent(os.getppid() + 100000)
    deadline = _time.monotonic() + 5
    while not got and _time.monotonic() < deadline:
        _time.sleep(0.01)
    assert got == [signal.SIGTERM]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_death_signal_asked_for_is_sigterm():
    import ctypes

    from w2m2w.run.stopping import die_with_parent

    libc = ctypes.CDLL(None, use_errno=True)
    sig = ctypes.c_int(-1)
    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))  # a SIGTERM now (the parent is alive) fails, not kills
    before = {t.ident for t in threading.enumerate()}  # the thread tests' watchers live on (daemons, parent alive)
    try:
        die_with_parent(os.getppid())
        assert (
            libc.prctl(2, ctypes.byref(sig), 0, 0, 0) == 0
        )  # PR_GET_PDEATHSIG: what this process gets when its parent dies
        assert sig.value == signal.SIGTERM and got == []
        assert not [t for t in threading.enumerate() if t.ident not in before], "prctl worked: no thread needed"
    finally:
        _no_death_signal()


def test_without_prctl_a_daemon_thread_watches_the_parent(monkeypatch):
    from w2m2w.run import stopping

    monkeypatch.setattr(stopping.sys, "platform", "elsewhere")
    before = {t.ident for t in threading.enumerate()}
    stopping.die_with_parent(
        os.getppid()
    )  # a living parent: the thread keeps watching (a daemon: it never holds the exit)
    new = [t for t in threading.enumerate() if t.ident not in before]
    assert [(t.name, t.daemon) for t in new] == [("watch-parent", True)]


def test_the_watching_thread_polls_twice_a_second_until_the_parent_changes(monkeypatch):
    # _watch_parent itself, with the clock and the process table stubbed: the parent (pid 42) is there for three
    # polls, then the process is re-parented (to pid 1): one SIGTERM to this process, after three half-second naps
    from w2m2w.run import stopping

    parents = iter([42, 42, 42, 1])
    naps, kills = [], []
    monkeypatch.setattr(stopping.os, "getppid", lambda: next(parents))
    monkeypatch.setattr(stopping.time, "sleep", naps.append)
    monkeypatch.setattr(stopping.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    stopping._watch_parent(42)
    assert naps == [0.5, 0.5, 0.5] and kills == [(os.getpid(), signal.SIGTERM)]
