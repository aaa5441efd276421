"""The scoring worker: claims queued submissions one at a time and records their outcome.

Run any number of them against one database (``mixedparts-leaderboard worker``, or ``serve
--workers N``); see :mod:`leaderboard.store` for why each submission is recorded exactly once even
when workers crash or restart mid-scoring.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from leaderboard import store
from leaderboard.db import Database
from leaderboard.scoring import DEFAULT_MEMORY_MB, Aborted, ScorerDied, ScorerProcess, ScoringTimeout


@dataclass
class WorkerSettings:
    scoring_timeout: float = 1800.0
    """Seconds one submission may take to score; past it, it is rejected."""
    lease: float = 30.0
    """Seconds a claim lasts without renewal; a crashed worker's submission is taken over after it."""
    poll: float = 1.0
    """Seconds between looks at an empty queue."""
    max_attempts: int = 3
    """Claims of one submission that never finished before it is rejected instead of retried."""
    score_workers: int = 1
    """Processes scoring the units of one submission (mixedparts-eval --workers)."""
    torch_threads: int | None = 1
    """Torch threads of the scorer's text model (None: torch's default); see :func:`scoring.scorer_main`."""
    memory_mb: int | None = DEFAULT_MEMORY_MB
    """The scorer process's address-space limit in MiB (None: none); see :func:`scoring.limit_memory`."""


class Worker:
    def __init__(self, db: Database, gt_path: str | os.PathLike, settings: WorkerSettings | None = None,
                 scorer=None, name: str | None = None, log=None, before_scoring=None):
        self.db = db
        self.gt_path = Path(gt_path)
        self.settings = settings or WorkerSettings()
        self.scorer = scorer or ScorerProcess(self.gt_path, self.settings.score_workers,
                                             torch_threads=self.settings.torch_threads,
                                             memory_mb=self.settings.memory_mb)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = log or (lambda message: print(f"[worker {self.name}] {message}", file=sys.stderr, flush=True))
        self.before_scoring = before_scoring
        """Called with the claim right before scoring (tests use it to stop a worker mid-scoring)."""
        self.stopping = threading.Event()
        self.gt_sha256: str | None = None
        self.processed = 0
        self.claims = 0

    def start(self) -> None:
        info = self.scorer.start()
        self.gt_sha256 = info.get("sha256")
        self.log(f"ready: ground truth split {info.get('split')!r}, {info.get('samples')} samples, "
                 f"sha256 {str(self.gt_sha256)[:16]}")

    def stop(self, *_args) -> None:
        self.stopping.set()

    def run(self, once: bool = False, max_jobs: int | None = None, handle_signals: bool = True) -> int:
        """Score until stopped (SIGTERM / SIGINT), with ``once`` until the queue is empty, or for ``max_jobs``
        claims."""
        if handle_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.start()
        try:
            while not self.stopping.is_set():
                if max_jobs is not None and self.claims >= max_jobs:
                    break
                try:
                    self.scorer.start()  # (again, after a timeout killed it) before claiming: no lease ticks meanwhile
                    claim = store.claim(self.db, self.name, self.settings.lease)
                    if claim is None:
                        if once:
                            break
                        self.stopping.wait(self.settings.poll)
                        continue
                    self.process(claim)
                except DBAPIError as error:  # the database is unreachable: wait, and let leases sort it out
                    self.log(f"database error: {str(error).splitlines()[0]}; retrying in {self.settings.poll * 5:g} s")
                    self.scorer.stop()
                    self.stopping.wait(self.settings.poll * 5)
        finally:
            self.scorer.stop(graceful=True)
        return self.processed

    def score_one(self, submission_id: int) -> bool:
        """Claim and score one given submission now (offline mode); False if it was not claimable."""
        self.start()
        claim = store.claim(self.db, self.name, self.settings.lease, submission_id=submission_id)
        if claim is None:
            return False
        self.process(claim)
        return True

    def process(self, claim: store.Claim) -> None:
        settings = self.settings
        self.claims += 1
        if claim.attempt > settings.max_attempts:
            message = (f"scoring was started {claim.attempt - 1} times and never finished (the scorer crashed or "
                       f"was killed each time, e.g. out of memory); not retried")
            store.finish(self.db, claim.id, self.name, {"status": store.REJECTED, "message": message})
            self.log(f"submission {claim.id}: rejected after {claim.attempt - 1} attempts")
            return
        self.log(f"submission {claim.id}: scoring (attempt {claim.attempt})")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="mixedparts-leaderboard-") as folder:
            suffix = ".jsonl" if claim.filename.lower().endswith(".jsonl") else ".json"
            path = Path(folder) / f"submission-{claim.id}{suffix}"
            path.write_bytes(store.read_file(self.db, claim.id))
            if self.before_scoring is not None:
                self.before_scoring(claim)
            last_renewal = [time.monotonic()]

            def tick() -> bool:
                if self.stopping.is_set():
                    return False
                if time.monotonic() - last_renewal[0] >= settings.lease / 3:
                    last_renewal[0] = time.monotonic()
                    if not store.renew(self.db, claim.id, self.name, settings.lease):
                        raise _LeaseLost()
                return True

            try:
                outcome = self.scorer.score(path, claim.filename, settings.scoring_timeout, tick,
                                            interval=min(1.0, settings.lease / 6))
            except ScoringTimeout as error:
                outcome = {"status": store.REJECTED, "message": f"{claim.filename}: {error}"}
            except _LeaseLost:
                self.scorer.stop()
                store.record_lost(self.db, claim.id, self.name, "lease lost while scoring; result discarded")
                self.log(f"submission {claim.id}: lease lost to another worker; stopped")
                return
            except Aborted:
                store.release(self.db, claim.id, self.name, "worker stopping")
                self.log(f"submission {claim.id}: handed back (worker stopping)")
                return
            except ScorerDied as error:
                store.release(self.db, claim.id, self.name, str(error), count_attempt=True)
                self.log(f"submission {claim.id}: {error}; handed back")
                return
        if outcome.get("status") == "error":
            outcome = {"status": store.REJECTED, "message": f"{claim.filename}: {outcome['message']}"}
        if store.finish(self.db, claim.id, self.name, outcome, self.gt_sha256):
            self.processed += 1
            self.log(f"submission {claim.id}: {outcome['status']} in {time.monotonic() - started:.1f} s")
        else:
            store.record_lost(self.db, claim.id, self.name, "finished after losing the lease; result discarded")
            self.log(f"submission {claim.id}: finished, but another worker holds it now; result discarded")


class _LeaseLost(Exception):
    pass
