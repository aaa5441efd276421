"""Scoring one uploaded file on the hidden ground truth, with exactly ``mixedparts-eval``'s code and defaults.

:func:`score_file` is the whole of it: ``read_predictions`` (every validation of the predictions
file) then ``evaluate(truth, predictions, EvalOptions())``. Its outcome is a plain dict:

- ``{"status": "scored", "scores": {...}, "variant": {...}, "result": {...}}``
- ``{"status": "rejected", "message": "<file>: sample 's3': field 'segments[0].mask': ..."}``

Two scorers run it: :class:`ScorerProcess`, a child process that loads the ground truth and the
SS text model once and is killed when a submission runs past the scoring timeout (what the worker
uses), and :class:`InProcessScorer` (offline ``--local`` mode and tests). Nothing in an upload is
ever executed: it is parsed as JSON and scored.

The scorer child runs under an address-space limit (``RLIMIT_AS``, ``--scorer-memory-mb``): a file
with millions of segments then fails with ``MemoryError`` inside the child and is rejected as too
large (or, if the child dies of it, retried then rejected by the worker), instead of taking the
machine's memory from the server and the other workers.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from leaderboard.status import REJECTED, SCORED


class ScorerError(Exception):
    """The scorer could not give an outcome (see the subclasses)."""


class ScoringTimeout(ScorerError):
    pass


class ScorerDied(ScorerError):
    pass


class Aborted(ScorerError):
    """The caller's tick said stop (the lease was lost, or the worker is stopping)."""


def gt_fingerprint(path: str | os.PathLike) -> dict:
    """The ground-truth file's split, sample count and SHA-256, without keeping its rows."""
    from mixedparts.metrics.ground_truth import GT_FORMAT, GroundTruthError

    path = Path(path)
    digest = hashlib.sha256()
    header = None
    try:
        with open(path, "rb") as f:
            first = f.readline()
            digest.update(first)
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        header = json.loads(first)
    except OSError as error:
        raise GroundTruthError(f"{path}: cannot read: {error.strerror}") from None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != GT_FORMAT:
        raise GroundTruthError(f"{path}: not a ground-truth file (the first line must be the header "
                               f"{{\"format\": \"{GT_FORMAT}\", ...}}; write one with `mixedparts export-gt`)")
    return {"split": header.get("split"), "samples": header.get("samples"), "sha256": digest.hexdigest()}


def score_file(truth, path: str | os.PathLike, display: str, workers: int | None = 1, embedder=None) -> dict:
    """Validate and score the predictions file ``path`` on ``truth`` (a GroundTruth).

    ``display`` replaces the server-side path in messages and in the stored result."""
    from mixedparts.errors import MixedPartsError
    from mixedparts.metrics.evaluate import evaluate
    from mixedparts.metrics.options import EvalOptions
    from mixedparts.predictions import read_predictions

    path = str(path)
    try:
        predictions = read_predictions(path, workers=workers)
        result = evaluate(truth, predictions, EvalOptions(), breakdowns=("source",), workers=workers,
                          embedder=embedder, bootstrap=REPORT_BOOTSTRAP, keep_details=True)
    except MixedPartsError as error:
        return {"status": REJECTED, "message": str(error).replace(path, display)}
    except (MemoryError, RecursionError) as error:
        return {"status": REJECTED, "message": f"{display}: too large or too deeply nested to score "
                f"({type(error).__name__})"}
    document = result.to_dict()
    document["predictions"] = display
    document["ground_truth"] = f"hidden ({truth.split} split, {len(truth)} samples)"
    document.pop("breakdowns", None)
    document.update(_report_parts(result))
    document = _json_safe(document)
    return {"status": SCORED, "scores": document["scores"], "variant": document["variant"], "result": document}


REPORT_BOOTSTRAP = 200
"""Resamplings behind the intervals of the detail page's report: a tenth of a small submission's scoring
time (1000 would double it and slow the queue); the table's paired test runs its own 1000 in the server."""


def _report_parts(result) -> dict:
    """The detail page's report (aggregates only: the ground truth is hidden) and the per-sample sums that
    the table's paired test needs (leaderboard.significance)."""
    from mixedparts.analysis.report import public_report, resampling_arrays

    return {"report": public_report(result), "resampling": resampling_arrays(result)}


def _json_safe(value):
    """NaN and infinities as null (PostgreSQL's json type refuses them), tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class InProcessScorer:
    """Scores in the calling thread; the scoring timeout is not enforced (offline mode, tests)."""

    def __init__(self, gt_path: str | os.PathLike, workers: int | None = 1, embedder=None):
        self.gt_path = Path(gt_path)
        self.workers = workers
        self.embedder = embedder
        self.truth = None
        self.info: dict = {}

    def start(self) -> dict:
        from mixedparts.metrics.ground_truth import read_ground_truth

        if self.truth is None:
            self.info = gt_fingerprint(self.gt_path)
            self.truth = read_ground_truth(self.gt_path)
        return self.info

    def score(self, path, display: str, timeout: float | None = None, tick=None, interval: float = 1.0) -> dict:
        self.start()
        return score_file(self.truth, path, display, self.workers, self.embedder)

    def stop(self, graceful: bool = False) -> None:
        pass


DEFAULT_MEMORY_MB = 8192
"""The scorer's default address-space limit. The loaded scorer (torch, the text model, a small ground
truth) maps about 2.6 GB of address space here, of which about 0.6 GB is resident."""


def limit_memory(megabytes: int | None) -> None:
    """Cap this process's address space (and its children's) at ``megabytes``; None or 0: no cap."""
    if not megabytes:
        return
    import resource

    limit = int(megabytes) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def scorer_main(connection, gt_path: str, workers: int | None, torch_threads: int | None = 1,
                memory_mb: int | None = DEFAULT_MEMORY_MB) -> None:
    """The scorer child: load the ground truth and the text model once, then score job after job.

    ``torch_threads``: torch's intra-op threads for the text model (None: torch's default). One is
    the default because the model embeds a few hundred short labels per submission, for which
    torch's thread pool costs far more than it saves (0.8 s against 20 ms per tiny submission here);
    run more workers for throughput instead.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _exit_with_parent()
    try:
        limit_memory(memory_mb)
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        from mixedparts.metrics.ground_truth import read_ground_truth
        from mixedparts.metrics.text_models import load_embedder

        info = gt_fingerprint(gt_path)
        truth = read_ground_truth(gt_path)
        load_embedder(None).embed(["warm up"])
    except Exception as error:  # noqa: BLE001 - reported to the worker, which stops with it
        connection.send({"status": "fatal", "message": str(error)})
        return
    connection.send({"status": "ready", **info})
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if job is None:
            return
        try:
            outcome = score_file(truth, job["path"], job["display"], workers)
        except Exception:  # noqa: BLE001 - a bug in scoring: logged, and the file is not blamed for it
            traceback.print_exc(file=sys.stderr)
            outcome = {"status": "error", "message": "internal error while scoring (see the worker's log)"}
        connection.send(outcome)


def _exit_with_parent() -> None:
    """End this process when the worker that started it is gone (killed with SIGKILL, say)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class ScorerProcess:
    """A scorer in a child process (spawned: no fork of a process holding threads or torch state).

    It is started once and reused; a submission that runs past ``timeout`` gets the child killed,
    and the next submission starts a fresh one (loading the ground truth and the model again).
    """

    def __init__(self, gt_path: str | os.PathLike, workers: int | None = 1, startup_timeout: float = 600,
                 target=scorer_main, torch_threads: int | None = 1, memory_mb: int | None = DEFAULT_MEMORY_MB):
        self.gt_path = str(gt_path)
        self.workers = workers
        self.torch_threads = torch_threads
        self.memory_mb = memory_mb
        self.startup_timeout = startup_timeout
        self.target = target
        self.process = None
        self.connection = None
        self.info: dict = {}

    def start(self) -> dict:
        if self.process is not None and self.process.is_alive():
            return self.info
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        self.process = context.Process(target=self.target,
                                       args=(child_end, self.gt_path, self.workers, self.torch_threads,
                                             self.memory_mb),
                                       daemon=True, name="mixedparts-scorer")
        self.process.start()
        child_end.close()
        self.connection = parent_end
        if not parent_end.poll(self.startup_timeout):
            self.stop()
            raise ScorerError(f"the scorer did not start within {self.startup_timeout:g} s")
        try:
            message = parent_end.recv()
        except (EOFError, OSError):
            self.stop()
            raise ScorerError("the scorer process exited while starting") from None
        if message.get("status") != "ready":
            self.stop()
            from mixedparts.errors import MixedPartsError

            raise MixedPartsError(message.get("message", "the scorer failed to start"))
        self.info = {k: v for k, v in message.items() if k != "status"}
        return self.info

    def score(self, path, display: str, timeout: float | None = None, tick=None, interval: float = 1.0) -> dict:
        """The outcome of scoring ``path``; ``tick()`` runs every ``interval`` seconds and may return
        False to abort. Raises :class:`ScoringTimeout`, :class:`ScorerDied` or :class:`Aborted`."""
        self.start()
        started = time.monotonic()
        try:
            self.connection.send({"path": str(path), "display": display})
        except (OSError, BrokenPipeError):
            self.stop()
            raise ScorerDied("the scorer process is gone") from None
        while True:
            wait = interval if timeout is None else max(0.0, min(interval, started + timeout - time.monotonic()))
            try:
                if self.connection.poll(wait):
                    return self.connection.recv()
            except (EOFError, OSError):
                code = self.process.exitcode if self.process else None
                self.stop()
                raise ScorerDied(f"the scorer process died (exit code {code})") from None
            if not self.process.is_alive():
                code = self.process.exitcode
                self.stop()
                raise ScorerDied(f"the scorer process died (exit code {code})")
            if timeout is not None and time.monotonic() - started >= timeout:
                self.stop()
                raise ScoringTimeout(f"scoring took longer than the limit of {timeout:g} s")
            if tick is not None and not tick():
                self.stop()
                raise Aborted("stopped while scoring")

    def stop(self, graceful: bool = False) -> None:
        """Kill the child; with ``graceful``, first ask an idle child to exit (it then cleans up after itself)."""
        process, connection = self.process, self.connection
        self.process = self.connection = None
        if graceful and connection is not None and process is not None and process.is_alive():
            try:
                connection.send(None)
                process.join(5)
            except (OSError, BrokenPipeError):
                pass
        if connection is not None:
            try:
                connection.close()
            except OSError:
                pass
        if process is not None and process.is_alive():
            process.kill()
        if process is not None:
            process.join(5)
