"""The HTTP client behind ``mixedparts-leaderboard submit`` / ``status`` / ``table`` (httpx)."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from leaderboard.status import FINAL
from mixedparts.errors import MixedPartsError
from mixedparts.schema import MEAN, METRICS, TASKS

TOKEN_ENV = "MIXEDPARTS_LEADERBOARD_TOKEN"
# Tries of each request on a network error or a 5xx (mixedparts.http_retry): reads are idempotent, and an
# upload carries an idempotency key, so a retry never makes a second submission. 429 (the daily quota)
# is final.
TRIES = 3


class ClientError(MixedPartsError):
    pass


def _client(server: str, token: str | None = None, timeout: float = 60.0):
    from mixedparts.http_retry import retrying_client

    if not server.startswith(("http://", "https://")):
        raise ClientError(f"{server}: the server must be an http:// or https:// URL")
    headers = {"User-Agent": "mixedparts-leaderboard"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return retrying_client(TRIES - 1, base_url=server.rstrip("/"), headers=headers, timeout=timeout,
                           follow_redirects=False)


def _detail(response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"HTTP {response.status_code}: {detail or response.reason_phrase or 'error'}"


def _get_json(client, path: str, **params):
    import httpx

    try:
        response = client.get(path, params=params or None)
    except httpx.HTTPError as error:
        raise ClientError(f"{client.base_url}: cannot reach the server: {error}") from None
    if response.status_code != 200:
        raise ClientError(f"{client.base_url}{path}: {_detail(response)}")
    try:
        return response.json()
    except ValueError:
        raise ClientError(f"{client.base_url}{path}: the answer is not JSON") from None


def fetch_table(server: str, task: str = "mean", sort: str = "mIoU", order: str = "desc",
                include_paper: bool = True, every: bool = False) -> dict:
    """The table; ``every``: all submissions instead of each team's best per model."""
    with _client(server) as client:
        return _get_json(client, "/api/table", task=task, sort=sort, order=order, paper=int(include_paper),
                         all=int(every))


def health(server: str) -> dict:
    with _client(server) as client:
        return _get_json(client, "/api/health")


def status(server: str, token: str, submission_id: int) -> dict:
    with _client(server, token) as client:
        return _get_json(client, f"/api/submissions/{int(submission_id)}")


def upload(server: str, token: str, path: Path, model: str, url: str | None = None, key: str | None = None) -> dict:
    """Upload a predictions file; retried on network errors and 5xx with the same idempotency key, so a
    retry never makes a second submission."""
    import httpx

    key = key or uuid.uuid4().hex
    data = {"model": model}
    if url:
        data["url"] = url
    with _client(server, token, timeout=600.0) as client:
        try:
            with open(path, "rb") as f:  # httpx rewinds the file for each try
                response = client.post("/api/submissions", data=data, headers={"Idempotency-Key": key},
                                       files={"file": (path.name, f, "application/octet-stream")})
        except httpx.HTTPError as error:
            raise ClientError(f"upload failed after {TRIES} tries: cannot reach the server: {error}") from None
    if response.status_code >= 500:
        raise ClientError(f"upload failed after {TRIES} tries: {_detail(response)}")
    if response.status_code not in (200, 202):
        raise ClientError(f"the server refused the upload: {_detail(response)}")
    return response.json()


def wait(server: str, token: str, submission_id: int, timeout: float = 3600.0, interval: float = 1.0,
         progress=None) -> dict:
    """Poll until the submission is scored or rejected; ``progress(status, elapsed)`` is told each poll."""
    started = time.monotonic()
    with _client(server, token) as client:
        while True:
            current = _get_json(client, f"/api/submissions/{int(submission_id)}")
            elapsed = time.monotonic() - started
            if progress:
                progress(current, elapsed)
            if current["status"] in FINAL:
                return current
            if elapsed > timeout:
                raise ClientError(f"submission {submission_id} is still {current['status']} after {timeout:g} s; "
                                  f"check later with: mixedparts-leaderboard status {submission_id} --server {server}")
            time.sleep(interval)


class Progress:
    """One updating line on a terminal, one line per status change otherwise (stderr)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = None
        self.spin = 0

    def __call__(self, current: dict, elapsed: float) -> None:
        state = current["status"]
        if state == "queued" and current.get("queue_position"):
            state += f" (position {current['queue_position']} in the queue)"
        if self.tty:
            self.spin = (self.spin + 1) % 4
            final = current["status"] in FINAL
            mark = "" if final else " " + "|/-\\"[self.spin]
            self.stream.write(f"\r\033[Ksubmission {current['id']}: {state} · {elapsed:.0f} s{mark}")
            if final:
                self.stream.write("\n")
            self.stream.flush()
        elif state != self.last:
            print(f"submission {current['id']}: {state} ({elapsed:.0f} s)", file=self.stream, flush=True)
        self.last = state


def format_scores(submission: dict) -> str:
    """The scored row: per-task scores and the macro mean, as mixedparts-eval prints them."""
    metrics = METRICS
    scores = submission.get("scores") or {}
    lines = [f"{'task':15s} {'samples':>7s} " + " ".join(f"{m:>6s}" for m in metrics)]
    for task in (*TASKS, MEAN):
        if task not in scores:
            continue
        row = scores[task]
        cells = " ".join("     –" if row.get(m) is None else f"{row[m]:6.1f}" for m in metrics)
        lines.append(f"{task:15s} {row.get('samples', ''):>7} {cells}")
    return "\n".join(lines)
