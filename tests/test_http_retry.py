"""The one retry policy of the HTTP clients (mixedparts.http_retry): what is retried, how often, how long
it waits, and that a retried upload sends the same file and idempotency key again. The transport is
driven by httpx.MockTransport; the leaderboard client by a scripted server on loopback (no network)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mixedparts import http_retry
from mixedparts.http_retry import RetryTransport, retrying_client


class Scripted:
    """A MockTransport handler answering from a list: a status code, or an exception to raise."""

    def __init__(self, *replies):
        self.replies, self.bodies = list(replies), []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return httpx.Response(reply, json={"status": reply})


@pytest.fixture()
def waits(monkeypatch):
    slept = []
    monkeypatch.setattr(http_retry.time, "sleep", slept.append)
    return slept


def client(handler, retries=2, **options):
    return httpx.Client(transport=RetryTransport(httpx.MockTransport(handler), retries, **options))


def test_server_errors_are_retried_until_an_answer_with_the_same_body_each_time(waits, tmp_path):
    upload = tmp_path / "p.json"
    upload.write_bytes(b"x" * 100_000)
    handler = Scripted(503, 500, 202)
    with client(handler, backoff=0.5) as http, open(upload, "rb") as f:
        response = http.post("http://board/api/submissions", files={"file": ("p.json", f)}, data={"model": "m"})
    assert response.status_code == 202
    assert len(handler.bodies) == 3 and len(set(handler.bodies)) == 1 and b"x" * 100_000 in handler.bodies[0]
    assert waits == [0.5, 1.0]


def test_it_gives_up_with_the_last_answer_and_waits_at_most_max_wait(waits):
    handler = Scripted(*[502] * 5)
    with client(handler, retries=4, backoff=3.0, max_wait=10.0) as http:
        assert http.get("http://board/").status_code == 502
    assert handler.replies == [] and waits == [3.0, 6.0, 10.0, 10.0]


def test_only_the_chosen_statuses_are_retried(waits):
    for status in (200, 400, 404, 429):
        handler = Scripted(status, 200)
        with client(handler) as http:
            assert http.get("http://board/").status_code == status
        assert len(handler.bodies) == 1
    handler = Scripted(429, 200)
    with client(handler, statuses=(429,)) as http:
        assert http.get("http://board/").status_code == 200
    assert waits == [1.0]


def test_timeouts_and_dropped_connections_are_retried_then_raised(waits):
    handler = Scripted(httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), 200)
    with client(handler) as http:
        assert http.get("http://board/").status_code == 200
    handler = Scripted(*[httpx.ReadTimeout("slow")] * 3)
    with client(handler) as http, pytest.raises(httpx.ReadTimeout):
        http.get("http://board/")
    assert handler.replies == []


def test_failed_connections_are_left_to_the_httpx_transport(waits):
    """HTTPTransport(retries=N) has already retried a refused connection: it is not retried again here."""
    for error in (httpx.ConnectError("refused"), httpx.ConnectTimeout("no route")):
        handler = Scripted(error, 200)
        with client(handler) as http, pytest.raises(type(error)):
            http.get("http://board/")
        assert len(handler.bodies) == 1
    with retrying_client(3) as http:
        assert isinstance(http._transport, RetryTransport)
        assert isinstance(http._transport.transport, httpx.HTTPTransport) and http._transport.retries == 3


@pytest.fixture()
def board():
    """A leaderboard stand-in: answers POST /api/submissions from a script of status codes."""
    script = {"replies": [], "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            script["requests"].append({"key": self.headers.get("Idempotency-Key"), "body": body})
            status = script["replies"].pop(0)
            payload = (b'{"id": 7, "status": "queued"}' if status == 202
                       else b'{"detail": "scripted %d"}' % status)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    script["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield script
    httpd.shutdown()
    httpd.server_close()


def test_a_leaderboard_upload_is_retried_with_its_idempotency_key_then_gives_up(board, waits, tmp_path):
    from leaderboard import client

    predictions = tmp_path / "p.json"
    predictions.write_text('{"format": "mixedparts-predictions/1", "predictions": []}')
    board["replies"] = [503, 202]
    assert client.upload(board["url"], "token", predictions, "m")["id"] == 7
    first, second = board["requests"]
    assert first["key"] == second["key"] and first["key"] and first["body"] == second["body"]
    assert predictions.read_bytes() in first["body"]

    board["requests"].clear()
    board["replies"] = [500] * client.TRIES
    with pytest.raises(client.ClientError, match=f"upload failed after {client.TRIES} tries: HTTP 500: scripted 500"):
        client.upload(board["url"], "token", predictions, "m")
    assert len(board["requests"]) == client.TRIES

    board["requests"].clear()
    board["replies"] = [429]  # the daily quota: final, not retried
    with pytest.raises(client.ClientError, match="refused the upload: HTTP 429: scripted 429"):
        client.upload(board["url"], "token", predictions, "m")
    assert len(board["requests"]) == 1
