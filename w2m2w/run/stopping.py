"""Stopping a batch when told (SIGINT, SIGTERM), and worker processes that die with their parent.

The parent turns a signal into a stop request: no new piece starts, pieces in flight are
interrupted and cleaned up, and the run still writes its summary and report. Inside a
piece, the request arrives as Interrupted, a BaseException, so that the `except Exception`
of stages and libraries does not swallow it, while `finally` blocks still clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report it


class Interrupted(BaseException):
    """The run was told to stop while this code ran."""

    def __init__(self, signum: int = signal.SIGINT) -> None:  # raised without arguments in a Ray actor's thread
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class StopSignals:
    """While active (a context manager, main thread only), SIGINT and SIGTERM request a stop instead of killing.

    `requested` says whether to stop; inside `interruptible()` the first signal also raises
    Interrupted where the code is, so a long piece stops at once. A SIGINT the process was
    started with ignored (nohup, a background job) stays ignored.
    """

    def __init__(self, interrupt_anywhere: bool = False) -> None:
        self.signum: int | None = None
        self.count = 0
        self._raise = interrupt_anywhere
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + (self.signum or 0))

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self._raise:
            self._raise = False  # once: a second signal must not interrupt the cleanup of the first
            raise Interrupted(signum)

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Within the block, a stop request raises Interrupted (at once, or on entry if one came before)."""
        if self.signum is not None:
            raise Interrupted(self.signum)
        self._raise = True
        try:
            yield
        finally:
            self._raise = False


def worker_signals() -> StopSignals:
    """Signal handling for a worker process: every stop signal interrupts what runs, once; the process dies with its parent."""
    stop = StopSignals(interrupt_anywhere=True)  # a worker has nothing to finish: interrupt it wherever it is
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop._handle)
    return stop


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (a child started here inherits the mask and unblocks it when ready)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def die_with_parent(parent_pid: int) -> None:
    """Get SIGTERM when the parent process dies, however it dies (SIGKILL included).

    Linux: prctl(PR_SET_PDEATHSIG). Elsewhere, or if prctl fails: a thread that polls the parent twice a second.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0:  # 1: PR_SET_PDEATHSIG
                if os.getppid() != parent_pid:  # the parent died before we asked
                    os.kill(os.getpid(), signal.SIGTERM)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
