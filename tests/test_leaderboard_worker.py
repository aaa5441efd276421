"""The scoring worker's reliability: exactly-once claims, leases, timeouts, crashes and restarts mid-scoring.

The restart tests run real worker processes against an SQLite file and kill them while they score.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter

import pytest

from leaderboard import store
from leaderboard.db import Database
from leaderboard.scoring import ScorerProcess
from leaderboard.worker import Worker, WorkerSettings
from leaderboard_helpers import child_env, crashing_scorer_main, make_gt, sleepy_scorer_main, wait_until, write_oracle

SCORED_OUTCOME = {"status": "scored", "scores": {"mean": {"AP50": 1.0}}, "variant": {}, "result": {}}


@pytest.fixture
def setup(tmp_path):
    gt, rows = make_gt(tmp_path)
    db = Database(str(tmp_path / "lb.db")).create()
    team = store.authenticate(db, store.create_team(db, "alpha"))
    oracle = write_oracle(tmp_path, rows).read_bytes()

    def submit(n=1):
        return [store.create_submission(db, team, f"m{i}", None, store.Upload.from_bytes("p.json", oracle))[0]
                for i in range(n)]

    yield db, gt, submit, tmp_path
    db.dispose()


def status_of(db, submission_id):
    return store.submission_status(db, submission_id)


def test_concurrent_claims_take_each_submission_once(setup):
    db, gt, submit, _ = setup
    ids = submit(30)
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()

    def worker(name):
        while True:
            claim = store.claim(db, name, lease_s=60)
            if claim is None:
                return
            assert store.finish(db, claim.id, name, SCORED_OUTCOME)
            with lock:
                taken.append((name, claim.id))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert sorted(i for _, i in taken) == ids
    events = Counter((e["submission_id"], e["event"]) for e in store.events(db))
    assert all(events[(i, "claimed")] == 1 and events[(i, "scored")] == 1 for i in ids)


def test_an_expired_lease_is_taken_over_and_the_late_result_discarded(setup):
    db, gt, submit, _ = setup
    (submission_id,) = submit()
    first = store.claim(db, "A", lease_s=0.2)
    assert first.attempt == 1 and store.claim(db, "B", lease_s=30) is None  # A holds it
    time.sleep(0.3)
    second = store.claim(db, "B", lease_s=30)
    assert second.id == submission_id and second.attempt == 2
    assert not store.renew(db, submission_id, "A", 30)  # A learns it lost the submission
    assert not store.finish(db, submission_id, "A", SCORED_OUTCOME)
    assert status_of(db, submission_id)["status"] == "scoring"
    assert store.finish(db, submission_id, "B", SCORED_OUTCOME)
    assert not store.finish(db, submission_id, "B", SCORED_OUTCOME)  # twice: still once
    assert [e["event"] for e in store.events(db, submission_id)].count("scored") == 1


def test_release_requeues_without_counting_the_attempt(setup):
    db, gt, submit, _ = setup
    (submission_id,) = submit()
    claim = store.claim(db, "A", lease_s=30)
    assert store.release(db, claim.id, "A", "stopping")
    got = status_of(db, submission_id)
    assert got["status"] == "queued" and got["attempts"] == 0
    assert store.claim(db, "B", lease_s=30).attempt == 1


def test_scoring_timeout_rejects_and_kills_the_scorer(setup):
    db, gt, submit, _ = setup
    (submission_id,) = submit()
    scorer = ScorerProcess(gt, target=sleepy_scorer_main)
    worker = Worker(db, gt, WorkerSettings(scoring_timeout=1.0, lease=30), scorer=scorer, log=lambda m: None)
    started = time.monotonic()
    worker.run(once=True, handle_signals=False)
    assert time.monotonic() - started < 15
    got = status_of(db, submission_id)
    assert got["status"] == "rejected"
    assert got["message"] == "p.json: scoring took longer than the limit of 1 s"
    assert scorer.process is None  # killed, not left running


def test_a_scorer_that_keeps_crashing_is_retried_then_rejected(setup):
    db, gt, submit, _ = setup
    (submission_id,) = submit()
    settings = WorkerSettings(scoring_timeout=30, lease=30, max_attempts=2)
    for attempt in (1, 2):
        Worker(db, gt, settings, scorer=ScorerProcess(gt, target=crashing_scorer_main),
               log=lambda m: None).run(max_jobs=1, once=True, handle_signals=False)
        got = status_of(db, submission_id)
        assert got["status"] == "queued" and got["attempts"] == attempt
    Worker(db, gt, settings, scorer=ScorerProcess(gt, target=crashing_scorer_main),
           log=lambda m: None).run(once=True, handle_signals=False)
    got = status_of(db, submission_id)
    assert got["status"] == "rejected" and "started 2 times and never finished" in got["message"]


def _worker_script(db_url: str, gt, lease: float, scorer: str) -> str:
    """A worker process whose scorer is ``scorer`` (python expression); it leaves a marker when it has claimed."""
    return textwrap.dedent(f"""
        from pathlib import Path
        from leaderboard.db import Database
        from leaderboard.scoring import InProcessScorer, ScorerProcess
        from leaderboard.worker import Worker, WorkerSettings
        import leaderboard_helpers

        gt = {str(gt)!r}
        marker = Path(gt).with_name("claimed")
        def claimed(claim):
            marker.write_text(str(claim.id))
        worker = Worker(Database({db_url!r}), gt, WorkerSettings(lease={lease}, poll=0.1), scorer={scorer},
                        before_scoring=claimed)
        worker.run()
    """)


def test_restart_after_a_kill_mid_scoring_scores_exactly_once(setup):
    """SIGKILL a worker while it scores; a new worker takes the submission over once the lease runs out."""
    db, gt, submit, tmp = setup
    ids = submit(3)
    # The first worker hangs right after claiming (its scorer never answers), then is killed.
    script = _worker_script(db.url, gt, lease=2.0, scorer="ScorerProcess(gt, target=leaderboard_helpers."
                                                          "sleepy_scorer_main)")
    first = subprocess.Popen([sys.executable, "-c", script], env=child_env(), stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (tmp / "scoring-started").exists(), 30, what="the first worker to start scoring")
    finally:
        first.kill()
        first.wait(10)
    killed = status_of(db, ids[0])
    assert killed["status"] == "scoring" and killed["attempts"] == 1
    # A real worker, as `serve` starts it, with the real scorer: it takes ids[0] over once the lease runs out.
    second = subprocess.Popen([sys.executable, "-m", "leaderboard", "worker", "--gt", str(gt), "--db", db.url,
                               "--lease", "2", "--poll", "0.1"], env=child_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: all(status_of(db, i)["status"] == "scored" for i in ids), 90, interval=0.3,
                   what="the restarted worker to score everything")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()
        log = second.communicate(timeout=10)[1]
    assert "lease lost" not in log
    for submission_id in ids:
        got = status_of(db, submission_id)
        assert got["status"] == "scored", got
        assert got["scores"]["mean"]["mIoU"] == pytest.approx(100)
    assert status_of(db, ids[0])["attempts"] == 2
    events = Counter((e["submission_id"], e["event"]) for e in store.events(db))
    assert events[(ids[0], "claimed")] == 2
    assert all(events[(i, "scored")] == 1 for i in ids)
    assert sum(events[(i, "claimed")] for i in ids) == 4


def test_a_stopped_worker_hands_its_submission_back(setup):
    """SIGTERM mid-scoring: the submission goes straight back to the queue, no lease to wait out."""
    db, gt, submit, tmp = setup
    (submission_id,) = submit()
    script = _worker_script(db.url, gt, lease=60.0, scorer="ScorerProcess(gt, target=leaderboard_helpers."
                                                           "sleepy_scorer_main)")
    process = subprocess.Popen([sys.executable, "-c", script], env=child_env(), stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (tmp / "scoring-started").exists(), 30, what="the worker to start scoring")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    got = status_of(db, submission_id)
    assert got["status"] == "queued" and got["attempts"] == 0
    assert [e["event"] for e in store.events(db, submission_id)] == ["uploaded", "claimed", "released"]
