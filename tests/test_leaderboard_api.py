"""The leaderboard web application in process (FastAPI TestClient), scored by an in-process worker.

Covers: scores identical to mixedparts-eval's, rejection messages identical to read_predictions',
auth, quotas, upload limits, hostile names and files, idempotent uploads, the table views and
formats, the paper's rows, and that no route ever returns the hidden ground truth.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from leaderboard import store
from leaderboard.db import Database
from leaderboard.paper import PAPER_NOTE, PAPER_ROWS
from leaderboard.scoring import InProcessScorer, gt_fingerprint
from leaderboard.table import format_table
from leaderboard.web import AppConfig, create_app
from leaderboard.worker import Worker
from leaderboard_helpers import imperfect, make_gt, write_oracle
from metrics_helpers import minilm  # noqa: F401 - the session's text model
from mixedparts.errors import MixedPartsError
from mixedparts.metrics.evaluate import METRICS, evaluate
from mixedparts.metrics.ground_truth import read_ground_truth
from mixedparts.predictions import read_predictions, write_predictions


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lb-truth")
    gt, rows = make_gt(folder)
    return gt, rows


@pytest.fixture
def board(truth, tmp_path, minilm):
    """A fresh database, the app, a client and a team token; ``board.drain()`` scores the queue."""
    gt, rows = truth
    db = Database(str(tmp_path / "lb.db")).create()
    config = AppConfig(db.url, gt_fingerprint(gt), max_upload_bytes=200_000, daily_quota=20)
    app = create_app(config, db)

    class Board:
        pass

    b = Board()
    b.db, b.gt, b.rows, b.config, b.tmp = db, gt, rows, config, tmp_path
    b.client = TestClient(app)
    b.token = store.create_team(db, "alpha")
    b.auth = {"Authorization": f"Bearer {b.token}"}
    scorer = InProcessScorer(gt)

    def upload(content: bytes | str, model="m", filename="predictions.json", url=None, headers=None, token=None):
        data = {"model": model}
        if url is not None:
            data["url"] = url
        if isinstance(content, str):
            content = content.encode()
        auth = {"Authorization": f"Bearer {token or b.token}"}
        return b.client.post("/api/submissions", files={"file": (filename, content)}, data=data,
                             headers={**auth, **(headers or {})})

    def drain():
        Worker(db, gt, scorer=scorer, log=lambda m: None).run(once=True, handle_signals=False)

    def status(submission_id):
        return b.client.get(f"/api/submissions/{submission_id}", headers=b.auth).json()

    b.upload, b.drain, b.status = upload, drain, status
    yield b
    db.dispose()


def test_scores_are_exactly_mixedparts_evals(board):
    oracle = write_oracle(board.tmp, board.rows)
    partial = write_predictions(board.tmp / "partial.jsonl", imperfect(board.rows), model="p", split="test")
    ids = [board.upload(oracle.read_bytes(), "oracle").json()["id"],
           board.upload(partial.read_bytes(), "partial", filename="partial.jsonl").json()["id"]]
    assert [board.status(i)["status"] for i in ids] == ["queued", "queued"]
    board.drain()
    truth = read_ground_truth(board.gt)
    for submission_id, path in zip(ids, (oracle, partial)):
        got = board.status(submission_id)
        assert got["status"] == "scored" and got["attempts"] == 1
        expected = evaluate(truth, read_predictions(path)).to_dict()
        assert got["scores"] == expected["scores"]  # every task and the mean, unrounded
        assert got["variant"] == expected["variant"]
        assert got["counts"] == expected["counts"]
    assert all(v == pytest.approx(100) for task in board.status(ids[0])["scores"].values() for k, v in task.items()
               if k in METRICS)
    assert board.status(ids[1])["scores"]["mean"]["mIoU"] < 100
    events = [e["event"] for e in store.events(board.db, ids[0])]
    assert events == ["uploaded", "claimed", "scored"]


MALFORMED = {
    "wrong-format.json": '{"format": "something-else/1", "predictions": []}',
    "not-json.json": "this is not JSON at all",
    "unknown-id.json": '{"format": "mixedparts-predictions/1", "predictions": [{"sample_id": "nope", "text": "", '
                       '"segments": []}]}',
    "bad-rle.json": '{"format": "mixedparts-predictions/1", "predictions": [{"sample_id": "s0", "text": "", '
                    '"segments": [{"label": "chair", "image_index": 0, "mask": {"size": [20, 30], "counts": "!!"}}]}]}',
    "wrong-size.json": '{"format": "mixedparts-predictions/1", "predictions": [{"sample_id": "s0", "text": "", '
                       '"segments": [{"label": "chair", "image_index": 0, "mask": {"size": [2, 3], "counts": "6"}}]}]}',
    "nan-score.json": '{"format": "mixedparts-predictions/1", "predictions": [{"sample_id": "s0", "text": "", '
                      '"segments": [{"label": "chair", "image_index": 0, "score": NaN, '
                      '"mask": {"size": [20, 30], "counts": "0h9"}}]}]}',
    "deep.json": "[" * 50_000 + "]" * 50_000,
    "binary.json": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage",
    "wrong-split.json": '{"format": "mixedparts-predictions/1", "split": "train", "predictions": []}',
}


def expected_message(tmp_path, name, content, truth) -> str:
    """What mixedparts-eval says about the same bytes, with the file named as uploaded."""
    path = tmp_path / "direct" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        evaluate(truth, read_predictions(path))
    except MixedPartsError as error:
        return str(error).replace(str(path), name)
    raise AssertionError(f"{name} was accepted")


def test_malformed_uploads_are_rejected_with_the_validation_message(board):
    truth = read_ground_truth(board.gt)
    ids = {name: board.upload(content, name, filename=name).json()["id"] for name, content in MALFORMED.items()}
    board.drain()
    for name, submission_id in ids.items():
        got = board.status(submission_id)
        assert got["status"] == "rejected", name
        assert got["message"] == expected_message(board.tmp, name, MALFORMED[name], truth), name
        assert str(board.tmp) not in got["message"] and "/tmp" not in got["message"]
    assert board.client.get("/api/table").json()["rows"][0]["kind"] == "paper"  # nothing rejected is listed


def test_auth(board):
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    assert board.client.post("/api/submissions", files={"file": ("p.json", oracle)}, data={"model": "x"}).status_code \
        == 401
    assert board.upload(oracle, token="mpl_not-a-token").status_code == 401
    response = board.client.post("/api/submissions", files={"file": ("p.json", oracle)}, data={"model": "x"},
                                 headers={"Authorization": f"Basic {board.token}"})
    assert response.status_code == 401
    first = board.upload(oracle).json()["id"]
    other = store.create_team(board.db, "beta")
    assert board.client.get(f"/api/submissions/{first}", headers={"Authorization": f"Bearer {other}"}).status_code \
        == 404
    assert board.client.get("/api/submissions", headers={"Authorization": f"Bearer {other}"}).json()["submissions"] \
        == []
    store.set_team_active(board.db, "alpha", False)
    assert board.upload(oracle).status_code == 403
    store.set_team_active(board.db, "alpha", True)
    new = store.rotate_token(board.db, "alpha")
    assert board.upload(oracle).status_code == 401
    assert board.upload(oracle, token=new).status_code == 202
    with pytest.raises(store.StoreError, match="already exists"):
        store.create_team(board.db, "alpha")


def test_daily_quota(board):
    store.set_team_quota(board.db, "alpha", 2)
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    assert [board.upload(oracle).status_code for _ in range(2)] == [202, 202]
    refused = board.upload(oracle)
    assert refused.status_code == 429 and "daily quota" in refused.json()["detail"]
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    team = store.authenticate(board.db, board.token)
    tomorrow = store.utcnow() + timedelta(days=1)
    store.create_submission(board.db, team, "next day", None, store.Upload.from_bytes("p.json", oracle), now=tomorrow)
    # The server-wide quota applies when the team has none of its own.
    store.set_team_quota(board.db, "alpha", None)
    assert board.upload(oracle).status_code == 202


def test_quota_holds_under_concurrent_uploads(board):
    """Ten uploads at once against a quota of three: exactly three get in (the team row serializes them)."""
    store.set_team_quota(board.db, "alpha", 3)
    team = store.authenticate(board.db, board.token)
    upload = store.Upload.from_bytes("p.json", b"{}")
    results, barrier = [], threading.Barrier(10)

    def one(i):
        barrier.wait()
        try:
            results.append(store.create_submission(board.db, team, f"m{i}", None, upload)[0])
        except store.StoreError as error:
            results.append(error.status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert sorted(r for r in results if r == 429) == [429] * 7
    assert len({r for r in results if r != 429}) == 3


def test_upload_size_limit(board):
    big = b"{" + b" " * 300_000 + b"}"
    response = board.upload(big)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]

    # Streamed without a Content-Length: refused while it streams in.
    boundary = "lbtestboundary"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nstreamed\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.json\"\r\n"
               f"Content-Type: application/json\r\n\r\n").encode()
        for _ in range(40):
            yield b" " * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = board.client.post("/api/submissions", content=body(),
                                 headers={**board.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413
    assert board.upload(b"").status_code == 400  # empty file
    assert board.client.get("/api/submissions", headers=board.auth).json()["submissions"] == []


def test_hostile_names_are_escaped_or_refused(board):
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    response = board.upload(oracle, evil, filename="../../etc/<b>passwd</b>.json",
                            url='https://example.org/"><script>alert(2)</script>')
    assert response.status_code == 400 and "URL" in response.json()["detail"]  # quotes and spaces: not a URL
    response = board.upload(oracle, evil, filename="../../etc/<b>passwd</b>.json",
                            url="https://example.org/a?b=c&d='e'")
    assert response.status_code == 202, response.text
    submission = response.json()
    assert submission["model"] == evil and submission["filename"] == "b_.json"
    assert board.upload(oracle, filename="..\\..\\windows\\evil.json").json()["filename"] == "evil.json"
    for bad_url in ("javascript:alert(1)", "data:text/html,<script>", "//example.org", "ftp://example.org/x"):
        assert board.upload(oracle, url=bad_url).status_code == 400, bad_url
    for bad_model in ("", "   ", "a" * 101, "tab\there", "new\nline", "bidi\u202eoverride"):
        assert board.upload(oracle, bad_model).status_code == 400, repr(bad_model)
    board.drain()

    page = board.client.get("/")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert '<a href="https://example.org/a?b=c&amp;d=&#x27;e&#x27;"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*src=\"/static/leaderboard\.js\")", page.text)  # no inline script at all
    detail = board.client.get(f"/submissions/{submission['id']}").text
    assert "<script>alert" not in detail and "&lt;script&gt;" in detail and "b_.json" in detail
    svg = board.client.get("/plot.svg").text
    assert "<script" not in svg and "&lt;script&gt;" in svg
    table = board.client.get("/api/table").json()
    markdown = format_table(table, "markdown")
    assert "<script>" not in markdown and "\\<script\\>" in markdown
    rows = list(csv.reader(io.StringIO(format_table(table, "csv"))))
    assert any(row[2] == evil for row in rows)


def test_csv_cells_never_start_a_formula(board):
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    board.upload(oracle, '=HYPERLINK("http://evil","x")')
    board.drain()
    rows = list(csv.reader(io.StringIO(format_table(board.client.get("/api/table").json(), "csv"))))
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in [row[2] for row in rows]


def test_idempotent_upload(board):
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    first = board.upload(oracle, headers={"Idempotency-Key": "key-0123456789"})
    again = board.upload(oracle, headers={"Idempotency-Key": "key-0123456789"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False
    assert len(board.client.get("/api/submissions", headers=board.auth).json()["submissions"]) == 1
    assert board.upload(oracle, headers={"Idempotency-Key": "bad key!"}).status_code == 400


def test_table_views_sorting_and_paper_rows(board):
    oracle = write_oracle(board.tmp, board.rows)
    partial = write_predictions(board.tmp / "partial.json", imperfect(board.rows), split="test")
    board.upload(oracle.read_bytes(), "oracle", url="https://example.org/oracle")
    board.upload(partial.read_bytes(), "partial")
    board.drain()
    table = board.client.get("/api/table").json()
    assert table["sort"] == "mIoU" and table["order"] == "desc" and table["task"] == "mean"
    models = [row["model"] for row in table["rows"]]
    assert models[0] == "oracle" and set(models) >= {"partial", *(r["model"] for r in PAPER_ROWS)}
    miou = [row["mIoU"] for row in table["rows"]]
    assert miou == sorted(miou, reverse=True)
    paper = [row for row in table["rows"] if row["kind"] == "paper"]
    assert len(paper) == 6 and all(row["note"] == PAPER_NOTE and row["id"] is None for row in paper)
    calico = next(row for row in paper if row["model"] == "Calico")
    assert (calico["AP50"], calico["mIoU"], calico["Recall"], calico["SS"], calico["S-IoU"]) == \
        (45.9, 63.7, 59.7, 82.7, 77.1)
    assert all(row["variant"] == "default" for row in table["rows"] if row["kind"] == "submission")

    ascending = board.client.get("/api/table", params={"sort": "AP50", "order": "asc"}).json()["rows"]
    assert [r["AP50"] for r in ascending] == sorted(r["AP50"] for r in ascending)
    by_name = board.client.get("/api/table", params={"sort": "model", "order": "asc"}).json()["rows"]
    assert [r["model"].casefold() for r in by_name] == sorted(r["model"].casefold() for r in by_name)
    parts = board.client.get("/api/table", params={"task": "common_parts"}).json()
    assert [r["model"] for r in parts["rows"] if r["kind"] == "paper"] == ["Calico"]
    assert next(r for r in parts["rows"] if r["model"] == "Calico")["AP50"] == 38.4
    no_paper = board.client.get("/api/table", params={"paper": 0}).json()
    assert {r["kind"] for r in no_paper["rows"]} == {"submission"}
    for bad in ({"task": "everything"}, {"sort": "speed"}, {"order": "sideways"}):
        assert board.client.get("/api/table", params=bad).status_code == 400
        assert board.client.get("/", params=bad).status_code == 400

    page = board.client.get("/", params={"task": "unique_parts"}).text
    assert PAPER_NOTE in page and 'class="paper"' in page and 'id="leaderboard"' in page
    assert board.client.get("/static/leaderboard.js").headers["content-type"].startswith("text/javascript")

    markdown = format_table(table, "markdown")
    assert "| 1 | [oracle](<https://example.org/oracle>) | alpha | 100.0 | 100.0 |" in markdown
    assert f"† {PAPER_NOTE}." in markdown and "[Calico](<https://arxiv.org/abs/2412.19331>) †" in markdown
    rows = list(csv.DictReader(io.StringIO(format_table(table, "csv"))))
    assert rows[0]["model"] == "oracle" and float(rows[0]["mIoU"]) == 100.0 and len(rows) == len(table["rows"])
    assert json.loads(format_table(table, "json")) == table


def test_hidden_rows_leave_the_table(board):
    submission_id = board.upload(write_oracle(board.tmp, board.rows).read_bytes(), "to hide").json()["id"]
    board.drain()
    assert board.client.get(f"/submissions/{submission_id}").status_code == 200
    store.set_hidden(board.db, submission_id, True)
    assert "to hide" not in [r["model"] for r in board.client.get("/api/table").json()["rows"]]
    assert board.client.get(f"/submissions/{submission_id}").status_code == 404
    store.set_hidden(board.db, submission_id, False)
    assert "to hide" in [r["model"] for r in board.client.get("/api/table").json()["rows"]]


def test_the_ground_truth_is_never_served(board):
    """Walk every route (and path tricks) after scoring: no response holds the GT file, a GT mask or its path."""
    board.upload(write_oracle(board.tmp, board.rows).read_bytes(), "oracle")
    board.upload(write_predictions(board.tmp / "p.json", imperfect(board.rows), split="test").read_bytes(), "p")
    board.drain()
    gt_text = board.gt.read_text()
    # The GT's masks are what must stay hidden: a few long RLE strings from it (oracle uploads were
    # built from them, so look only where an upload's content could never be echoed).
    secret_counts = sorted({s["mask"]["counts"] for row in board.rows for s in row["segments"]}, key=len)[-5:]
    needles = [str(board.gt), board.gt.name, str(board.gt.parent), gt_text[:200], *secret_counts]
    assert not any(hasattr(board.config, name) for name in ("gt", "gt_path", "gt_file"))

    app_routes = [route for route in board.client.app.routes if "GET" in getattr(route, "methods", set())]
    paths = set()
    for route in app_routes:
        for value in ("1", "2", board.gt.name, "..%2F..%2F" + board.gt.name):
            paths.add(re.sub(r"\{[^}]+\}", value, route.path))
    paths |= {"/" + board.gt.name, "/static/" + board.gt.name, "/static/../" + board.gt.name,
              "/static/%2e%2e/%2e%2e/" + board.gt.name, "/api/..%2f" + board.gt.name, "/gt", "/api/gt",
              "/api/ground_truth", "/hidden-gt.jsonl", "/api/openapi.json", "/docs", "/redoc",
              "/api/table?task=common_object&paper=0", "/plot.svg?task=unique_parts&top=8"}
    seen = 0
    for path in sorted(paths):
        for headers in ({}, board.auth):
            response = board.client.get(path, headers=headers)
            body = response.text
            for needle in needles:
                assert needle not in body, (path, needle[:40])
            seen += 1
    assert seen > 30
    # Uploads are never echoed either: a submission's file has no download route.
    assert not [r for r in app_routes if "file" in r.path or "download" in r.path]


def test_health_shows_limits_and_queue(board):
    board.upload(write_oracle(board.tmp, board.rows).read_bytes())
    health = board.client.get("/api/health").json()
    assert health["queue"]["queued"] == 1 and health["limits"] == {"max_upload_bytes": 200_000, "daily_quota": 20}
    assert health["ground_truth"]["samples"] == 9 and health["ground_truth"]["split"] == "test"
    assert set(health["ground_truth"]) == {"split", "samples", "sha256"}
