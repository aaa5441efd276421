"""A bounded load test on loopback (127.0.0.1 only): the web application under uvicorn in this process,
wrapped so that the request-body bytes it reads are counted on the server side, and two real scoring
worker processes (``python -m leaderboard worker``).

- 50 concurrent uploads from 5 teams, one of them deliberately heavy (it runs into the scoring
  timeout): none lost, none duplicated, each scored (or rejected) exactly once, and every light file
  is finished before the heavy one is, so no team's light file waits behind it;
- an unauthenticated (and a forged-token) 100 MB upload is answered 401 having read at most a few KB.
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from leaderboard import store
from leaderboard.db import Database
from leaderboard.models import Submission
from leaderboard.scoring import gt_fingerprint
from leaderboard.web import AppConfig, create_app
from leaderboard_helpers import CountingApp, child_env, free_port, make_gt, wait_until, write_oracle

pytestmark = pytest.mark.slow

TEAMS, PER_TEAM = 5, 10
HEAVY_TIMEOUT_S = 40
"""The heavy file takes minutes to score on a loaded 2-core machine: the timeout ends it, well after the
49 light ones; a quiet machine may score it within the limit."""


class InThreadServer:
    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_until(lambda: self.server.started, 30, what="uvicorn to start")
        return self

    def __exit__(self, *_exc):
        self.server.should_exit = True
        self.thread.join(30)


def heavy_predictions(folder, rows):
    """The oracle's first segment of each sample, 2000 times under distinct labels: minutes of matching and
    text embedding for the scorer, 1.8 MB on the wire."""
    from metrics_helpers import oracle_predictions
    from mixedparts.predictions import write_predictions

    predictions = oracle_predictions(rows)
    for prediction in predictions:
        first = prediction["segments"][0]
        prediction["segments"] = [dict(first, label=f"{first['label']} {i}") for i in range(2000)]
    return write_predictions(folder / "heavy.json", predictions, model="heavy", split="test")


def raw_upload(url: str, size: int, authorization: str | None) -> tuple[int, float]:
    """POST a ``size``-byte multipart body, streamed in 64 KiB pieces, stopping as soon as the server answers;
    returns (status, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    boundary = "loadtestboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nbig\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"file\"; filename=\"big.json\"\r\n\r\n").encode()
    lines = ["POST /api/submissions HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {size}",
             f"Content-Type: multipart/form-data; boundary={boundary}"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + head)
        sent, piece = len(head), b" " * 65536
        answer = b""
        while b"\r\n" not in answer:
            readable, writable, _ = select.select([connection], [connection] if sent < size else [], [], 10)
            if readable:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
            elif writable:
                try:
                    sent += connection.send(piece[:size - sent])
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                raise AssertionError("the server neither answered nor read within 10 s")
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def test_fifty_uploads_from_five_teams_with_a_heavy_one_and_a_huge_unauthenticated_one(tmp_path):
    gt, rows = make_gt(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'leaderboard.db'}"
    db = Database(db_url).create()
    tokens = [store.create_team(db, f"team {t}", daily_quota=PER_TEAM) for t in range(TEAMS)]
    app = CountingApp(create_app(AppConfig(db_url, gt_fingerprint(gt), max_upload_bytes=200 * 2**20), db))
    logs = [open(tmp_path / f"worker-{i}.log", "w+b") for i in range(2)]
    workers = [subprocess.Popen([sys.executable, "-m", "leaderboard", "worker", "--gt", str(gt), "--db", db_url,
                                 "--poll", "0.2", "--lease", "10", "--scoring-timeout", str(HEAVY_TIMEOUT_S)],
                                env=child_env(), stdout=log, stderr=subprocess.STDOUT) for log in logs]
    try:
        wait_until(lambda: all(b"ready:" in (tmp_path / f"worker-{i}.log").read_bytes() for i in range(2)), 180,
                   interval=0.5, what="both workers to load their scorers")
        with InThreadServer(app) as server:
            # The refused giant first: the body bytes the application read are counted on the server side.
            for authorization in (None, "Bearer mpl_forged"):
                app.body_bytes = 0
                status, seconds = raw_upload(server.url, 100 * 2**20, authorization)
                assert status == 401 and app.body_bytes <= 4096, (status, app.body_bytes)
                assert seconds < 10

            light = write_oracle(tmp_path, rows).read_bytes()
            heavy = heavy_predictions(tmp_path, rows).read_bytes()
            jobs = [(t, i) for t in range(TEAMS) for i in range(PER_TEAM)]
            barrier = threading.Barrier(len(jobs))

            def submit(job):
                team, i = job
                payload = heavy if (team, i) == (0, 0) else light
                with httpx.Client(base_url=server.url, timeout=120) as client:
                    barrier.wait(60)
                    return job, client.post("/api/submissions", files={"file": (f"t{team}-{i}.json", payload)},
                                            data={"model": f"team {team} model {i}"},
                                            headers={"Authorization": f"Bearer {tokens[team]}"})

            with ThreadPoolExecutor(len(jobs)) as pool:
                answers = dict(pool.map(submit, jobs))
            assert [r.status_code for r in answers.values()] == [202] * len(jobs), \
                [r.text for r in answers.values() if r.status_code != 202]
            ids = {job: r.json()["id"] for job, r in answers.items()}
            assert len(set(ids.values())) == len(jobs)
            heavy_id = ids[(0, 0)]

            def finished():
                with db.read() as session:
                    return session.query(Submission).filter(Submission.status.in_(("scored", "rejected"))).count() \
                        == len(jobs)

            wait_until(finished, HEAVY_TIMEOUT_S + 120, interval=0.5, what="every upload to be scored")
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()

    with db.read() as session:
        recorded = {s.id: s for s in session.query(Submission).all()}
    assert sorted(recorded) == sorted(ids.values())  # none lost, none made twice
    assert {(s.team_id, s.model) for s in recorded.values()} == {
        (store.authenticate(db, tokens[t]).id, f"team {t} model {i}") for t, i in jobs}
    events = Counter((e["submission_id"], e["event"]) for e in store.events(db))
    for submission_id, submission in recorded.items():
        assert events[(submission_id, "uploaded")] == 1 and events[(submission_id, "claimed")] == 1
        assert events[(submission_id, "scored")] + events[(submission_id, "rejected")] == 1
    lights = [s for s in recorded.values() if s.id != heavy_id]
    assert all(s.status == "scored" and s.scores["mean"]["mIoU"] == pytest.approx(100) for s in lights)
    heavy_row = recorded[heavy_id]
    # A slow machine runs the heavy file into the scoring timeout, a fast one scores it: both are fine,
    # as long as it was settled exactly once (above) and no light file waited behind it (below).
    assert heavy_row.status == "scored" or "longer than the limit" in heavy_row.message, heavy_row.message
    assert max(s.finished_at for s in lights) < heavy_row.finished_at  # no light file waited behind it
    db.dispose()
