"""The scoring workers beside ``mixedparts-leaderboard serve``: started, restarted when they exit, stopped
with the server; and a worker's side of it, stopping when the server that started it is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time


class WorkerSupervisor:
    """Keeps ``count`` worker processes (``command``, run with ``environment``) alive while the server runs.

    A worker that exits is started again; when the database file is gone, that is said loudly once and
    no worker is restarted (uploads are refused with 503 from then on).
    """

    def __init__(self, command: list[str], environment: dict, count: int, db, interval: float = 2.0):
        self.command, self.environment, self.db, self.interval = command, environment, db, interval
        self.processes: list = [None] * count
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._supervise, daemon=True, name="worker-supervisor")

    def start(self) -> None:
        self.thread.start()

    def _supervise(self) -> None:
        from leaderboard.db import DatabaseGone

        told = False
        while not self.stopping.is_set():
            try:
                self.db.check_present()
            except DatabaseGone as error:
                if not told:
                    print(f"error: {error}; scoring workers are not restarted", file=sys.stderr, flush=True)
                told = True
            for i, process in enumerate(self.processes):  # (none with --workers 0)
                if (process is None or process.poll() is not None) and not told:
                    if process is not None:
                        print(f"worker {i} exited with code {process.returncode}; starting it again",
                              file=sys.stderr, flush=True)
                    self.processes[i] = subprocess.Popen(self.command, env=self.environment)
            self.stopping.wait(self.interval)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every worker (each hands its submission back to the queue), SIGKILL those still
        running after ``grace`` seconds."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(5)
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()


def stop_with_parent(stop, stopped: threading.Event, interval: float = 0.5) -> None:
    """Call ``stop()`` once this process's parent is gone (even killed by SIGKILL, which runs none of its
    own clean-up), until ``stopped`` is set; watches from a daemon thread."""
    parent = os.getppid()

    def watch():
        while not stopped.is_set():
            if os.getppid() != parent:
                stop()
            time.sleep(interval)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
