"""Shared pieces of the leaderboard tests: a tiny ground truth, predictions, stand-in scorer processes,
a free loopback port and a real server started with ``mixedparts-leaderboard serve``.

Imports of the project stay inside the functions: the stand-in scorers run in spawned processes that
import this module, and should start in a blink.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def make_gt(folder: Path, samples_per_task: int = 3) -> tuple[Path, list[dict]]:
    from metrics_helpers import make_rows
    from mixedparts.metrics.ground_truth import write_ground_truth

    rows = make_rows(samples_per_task)
    return write_ground_truth(rows, folder / "hidden-gt.jsonl"), rows


def imperfect(rows: list[dict]) -> list[dict]:
    """Every other mask and every label turned into 'leg': scores well below 100."""
    from metrics_helpers import oracle_predictions

    predictions = oracle_predictions(rows)
    for prediction in predictions:
        prediction["segments"] = prediction["segments"][::2]
        for segment in prediction["segments"]:
            segment["label"] = "leg"
    return predictions


def write_oracle(folder: Path, rows: list[dict], name: str = "oracle.json") -> Path:
    from metrics_helpers import oracle_predictions
    from mixedparts.predictions import write_predictions

    return write_predictions(folder / name, oracle_predictions(rows), model="oracle", split="test")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.update(extra)
    return env


# ---------------------------------------------------------------- stand-in scorer processes (spawned)


def sleepy_scorer_main(connection, gt_path, *_options):
    """Ready at once; on a job, leave a marker next to the ground truth and sleep (never answers)."""
    connection.send({"status": "ready", "split": "test", "samples": 0, "sha256": "0" * 64})
    connection.recv()
    Path(gt_path).with_name("scoring-started").write_text("1")
    time.sleep(120)


def crashing_scorer_main(connection, gt_path, *_options):
    """Ready at once; dies on the first job, as a scorer killed for memory would."""
    connection.send({"status": "ready", "split": "test", "samples": 0, "sha256": "0" * 64})
    connection.recv()
    os._exit(137)


def limit_reporting_scorer_main(connection, gt_path, workers, torch_threads, memory_mb):
    """Ready at once, reporting the address-space limit it runs under (set as the real scorer sets it)."""
    import resource

    from leaderboard.scoring import limit_memory

    limit_memory(memory_mb)
    connection.send({"status": "ready", "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0]})
    connection.recv()


class CountingApp:
    """The ASGI app, counting the request-body bytes it takes from the server (what it "reads")."""

    def __init__(self, app):
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope, receive, send):
        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                self.body_bytes += len(message.get("body", b""))
            return message

        return await self.app(scope, counting_receive, send)


# ---------------------------------------------------------------- a real server on loopback


class LiveServer:
    """``python -m leaderboard serve`` on 127.0.0.1 with its own worker processes; stopped with SIGTERM."""

    def __init__(self, gt: Path, db: str, workers: int = 1, extra: tuple[str, ...] = (), log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        command = [sys.executable, "-m", "leaderboard", "serve", "--gt", str(gt), "--db", db, "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(workers), "--poll", "0.2", *extra]
        self.log = open(log, "wb") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(command, env=child_env(), stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> LiveServer:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout} s: {self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
