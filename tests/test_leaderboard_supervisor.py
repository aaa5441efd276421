"""serve's worker supervision (leaderboard.supervisor) on real processes: an exited worker is started
again, a vanished database stops the restarts, stop() ends every worker, and a worker started with
--exit-with-parent stops once its parent is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from leaderboard.db import Database, DatabaseGone
from leaderboard.supervisor import WorkerSupervisor

ROOT = Path(__file__).resolve().parents[1]


def until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_exited_worker_is_started_again_and_stop_ends_the_running_ones(tmp_path, capsys):
    db = Database(str(tmp_path / "lb.db")).create()
    runs = tmp_path / "runs"
    runs.mkdir()
    # The first start of each worker exits at once with code 3; the next one runs until stopped.
    script = (f"import os, sys, time; path = os.path.join({str(runs)!r}, str(os.getpid())); "
              f"first = not os.listdir({str(runs)!r}); open(path, 'w').close(); "
              "sys.exit(3) if first else time.sleep(600)")
    supervisor = WorkerSupervisor([sys.executable, "-c", script], {}, 1, db, interval=0.05)
    supervisor.start()
    until(lambda: len(list(runs.iterdir())) == 2)
    running = supervisor.processes[0]
    assert running.poll() is None
    supervisor.stop(grace=5)
    assert running.poll() is not None and not supervisor.thread.is_alive()
    assert "worker 0 exited with code 3; starting it again" in capsys.readouterr().err
    db.dispose()


def test_a_vanished_database_is_said_once_and_stops_the_restarts(tmp_path, capsys):
    class Gone:
        def check_present(self):
            raise DatabaseGone(f"{tmp_path / 'lb.db'} is gone")

    supervisor = WorkerSupervisor([sys.executable, "-c", "pass"], {}, 2, Gone(), interval=0.05)
    supervisor.start()
    time.sleep(0.5)
    supervisor.stop(grace=5)
    assert supervisor.processes == [None, None]
    err = capsys.readouterr().err
    assert err.count("scoring workers are not restarted") == 1 and "lb.db is gone" in err


def test_a_worker_stops_when_its_parent_is_gone(tmp_path):
    """The parent starts a child that watches it, then exits without any clean-up (as after SIGKILL)."""
    stopped, watching = tmp_path / "stopped", tmp_path / "watching"
    child = ("import sys, threading; from leaderboard.supervisor import stop_with_parent; "
             "done = threading.Event(); stop_with_parent(done.set, threading.Event(), interval=0.05); "
             f"open({str(watching)!r}, 'w').close(); done.wait(60); "
             f"open({str(stopped)!r}, 'w').write('stopped' if done.is_set() else 'timed out')")
    parent = (f"import os, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); "
              f"[time.sleep(0.05) for _ in range(1200) if not os.path.exists({str(watching)!r})]; os._exit(0)")
    subprocess.run([sys.executable, "-c", parent], cwd=ROOT, check=True, timeout=60,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    until(stopped.exists)
    until(lambda: stopped.read_text() != "")
    assert stopped.read_text() == "stopped"
