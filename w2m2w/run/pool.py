"""A few worker processes, each fed one task at a time through its own pipe.

Not concurrent.futures: its workers catch KeyboardInterrupt and carry on with the queue,
its shutdown waits for every queued task, one dead worker breaks the whole pool, and
nothing there stops workers from outliving their parent. Here the parent hands out a
task only when a worker is idle (so a stop starts nothing new), can interrupt the workers
(SIGTERM), kill the ones that do not stop, and replace one that died. Each worker's
messages (logs, events, results) come through its own pipe, so a worker killed mid-message
garbles only a pipe that is thrown away with it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from w2m2w.run.stopping import signals_blocked

DIED = object()  # what wait() yields for a worker that ended


@dataclass
class Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: Any = None  # what it is working on; None when idle

    @property
    def alive(self) -> bool:
        return self.process.exitcode is None


class WorkerPool:
    """`target(conn, index, parent_pid, *args)` in `n` spawned processes; the target reads tasks with conn.recv() (None: stop)."""

    def __init__(self, target: Callable[..., None], args: tuple, n: int) -> None:
        # spawn, not fork: a forked child inherits the parent's OpenMP pool state and can hang in torch
        self._ctx = multiprocessing.get_context("spawn")
        self._target, self._args = target, args
        self.workers: list[Worker] = []
        self._next = 0
        for _ in range(n):
            self.start_worker()

    def start_worker(self) -> Worker:
        ours, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=self._target, args=(theirs, self._next, os.getpid(), *self._args), daemon=True)
        with signals_blocked():  # the child starts with stop signals held back, until its handlers are in place
            proc.start()
        theirs.close()
        w = Worker(self._next, proc, ours)
        self._next += 1
        self.workers.append(w)
        return w

    def idle(self) -> list[Worker]:
        return [w for w in self.workers if w.alive and w.task is None]

    def busy(self) -> list[Worker]:
        return [w for w in self.workers if w.task is not None]

    def submit(self, w: Worker, task: Any) -> None:
        w.task = task
        try:
            w.conn.send(task)
        except OSError:
            pass  # it died; wait() reports it with its task

    def wait(self, timeout: float) -> Iterator[tuple[Worker, Any]]:
        """(worker, message) for each message that arrived within `timeout`, and (worker, DIED) for each worker that ended."""
        live = [w for w in self.workers if w.alive or w.conn.poll()]
        ready = wait([w.conn for w in live] + [w.process.sentinel for w in live], timeout)
        for w in live:
            if w.conn in ready:
                try:
                    while w.conn.poll():
                        yield w, w.conn.recv()
                except (EOFError, OSError):
                    pass
            if w.process.sentinel in ready or not w.alive:
                w.process.join(0.1)
                if not w.alive:
                    self.workers.remove(w)
                    w.conn.close()
                    yield w, DIED

    def interrupt(self) -> None:
        """SIGTERM to every worker: each interrupts its task, cleans up and ends."""
        for w in self.workers:
            if w.alive and w.process.pid:
                try:
                    os.kill(w.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def close(self, grace: float = 5.0) -> list[Worker]:
        """Tell idle workers to stop, wait up to `grace` seconds, then kill what is left; returns the killed workers."""
        for w in self.workers:
            if w.alive and w.task is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
        killed = [w for w in self.workers if w.alive]
        for w in killed:
            w.process.kill()
            w.process.join(5)
        for w in self.workers:
            w.conn.close()
        self.workers = []
        return killed
