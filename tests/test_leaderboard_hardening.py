"""The leaderboard's refusals, errors, fairness and table rules, in process (FastAPI TestClient).

- an upload is authorised from its headers before its body is read (counted at the ASGI boundary);
- no database is made unasked, commits are durable, a database file that disappears is noticed;
- every error is JSON with a reason and the security headers; health checks that the database takes writes;
- the queue is served round robin per team; the scorer runs under a memory cap;
- invisible characters and the paper's row names are refused;
- the table: shared ranks, each team's best per model, duplicate files flagged, paged lists, visible quota.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from leaderboard import store
from leaderboard.db import Database
from leaderboard.scoring import gt_fingerprint
from leaderboard.table import build_table
from leaderboard.web import SECURITY_HEADERS, AppConfig, create_app
from leaderboard_helpers import CountingApp, child_env, write_oracle
from metrics_helpers import minilm  # noqa: F401 - the session's text model
from test_leaderboard_api import board, truth  # noqa: F401 - the shared fixtures


def test_refused_uploads_are_answered_from_the_headers_without_reading_the_body(board):
    counting = CountingApp(board.client.app)
    client = TestClient(counting)
    payload = write_oracle(board.tmp, board.rows).read_bytes() + b" " * 150_000

    def post(headers):
        counting.body_bytes = 0
        response = client.post("/api/submissions", files={"file": ("p.json", payload)}, data={"model": "m"},
                               headers=headers)
        return response.status_code, counting.body_bytes, response.json().get("detail")

    assert post({})[:2] == (401, 0)
    assert post({"Authorization": "Bearer mpl_forged"})[:2] == (401, 0)
    disabled = store.create_team(board.db, "disabled")
    store.set_team_active(board.db, "disabled", False)
    assert post({"Authorization": f"Bearer {disabled}"})[:2] == (403, 0)
    spent = store.create_team(board.db, "spent", daily_quota=1)
    assert post({"Authorization": f"Bearer {spent}"})[:2] == (202, len(payload) + post_overhead(payload))
    code, read, detail = post({"Authorization": f"Bearer {spent}"})
    assert (code, read) == (429, 0) and "daily quota" in detail


def post_overhead(payload):
    """The multipart framing around the file and the model field (as httpx writes it): read in full when accepted."""
    request = httpx.Request("POST", "http://x/", files={"file": ("p.json", payload)}, data={"model": "m"})
    return len(request.read()) - len(payload)


def test_commits_are_durable_and_a_vanished_database_file_is_noticed(board):
    with board.db.read() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL: on disk before the 202
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    assert board.upload(oracle).status_code == 202
    assert board.client.get("/api/health").status_code == 200
    board.db.file.unlink()  # the folder cleaned up under a running server
    for suffix in ("-wal", "-shm"):
        board.db.file.with_name(board.db.file.name + suffix).unlink(missing_ok=True)
    response = board.upload(oracle)
    assert response.status_code == 503 and "disappeared" in response.json()["detail"]  # never a 202
    health = board.client.get("/api/health")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert str(board.tmp) not in response.text + health.text  # the path is for the operator's log only


def test_errors_are_json_with_a_reason_and_the_security_headers(board, monkeypatch):
    for path in ("/submissions/99999999999999999999999", "/api/submissions/99999999999999999999999",
                 "/submissions/2147483648", "/submissions/0", "/no/such/page"):
        response = board.client.get(path, headers=board.auth)
        assert response.status_code == 404, path
        assert response.json()["detail"], path
        assert all(response.headers.get(k) == v for k, v in SECURITY_HEADERS.items()), path
    browser = board.client.get("/submissions/99999999999999999999999", headers={"Accept": "text/html"})
    assert browser.status_code == 404 and "no submission" in browser.text and "<h1>404</h1>" in browser.text

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "scored_rows", broken)
    for path in ("/api/table", "/"):
        response = board.client.get(path)
        assert response.status_code == 500
        assert response.json() == {"detail": "internal server error (logged on the server)"}
        assert all(response.headers.get(k) == v for k, v in SECURITY_HEADERS.items())
        assert "a bug" not in response.text


def test_a_read_only_database_is_a_503_with_its_reason_and_health_says_so(truth, tmp_path, monkeypatch):
    gt, rows = truth
    writable = Database(str(tmp_path / "lb.db")).create()
    token = store.create_team(writable, "alpha")
    writable.dispose()
    read_only = Database(f"sqlite:///file:{tmp_path / 'lb.db'}?mode=ro&uri=true").open()
    app = create_app(AppConfig(read_only.url, gt_fingerprint(gt)), read_only)
    client = TestClient(app)
    health = client.get("/api/health")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert "readonly" in health.json()["detail"]
    response = client.post("/api/submissions", files={"file": ("p.json", b"{}")}, data={"model": "m"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503 and "readonly database" in response.json()["detail"]
    assert all(response.headers.get(k) == v for k, v in SECURITY_HEADERS.items())

    # The command-line client passes the reason on.
    from leaderboard import client as lb_client

    def in_process(server, token=None, timeout=60.0):
        return TestClient(app, base_url=server, headers={"Authorization": f"Bearer {token}"} if token else {})

    monkeypatch.setattr(lb_client, "_client", in_process)
    monkeypatch.setattr(lb_client.time, "sleep", lambda s: None)
    oracle = write_oracle(tmp_path, rows)
    with pytest.raises(lb_client.ClientError, match="HTTP 503: the leaderboard's database cannot be used right now "
                                                    r"\(attempt to write a readonly database\)"):
        lb_client.upload("http://testserver", token, oracle, "m")
    read_only.dispose()


def test_the_queue_is_served_round_robin_per_team(board):
    teams = {name: store.create_team(board.db, name) for name in ("busy", "second", "third")}
    refs = {name: store.authenticate(board.db, token) for name, token in teams.items()}
    upload = store.Upload.from_bytes("p.json", b"{}")
    ids = {}
    for name, count in (("busy", 4), ("second", 1), ("third", 2)):
        ids[name] = [store.create_submission(board.db, refs[name], f"{name} {i}", None, upload)[0]
                     for i in range(count)]
    order = []
    while (claimed := store.claim(board.db, "w", 30)) is not None:
        order.append(claimed.id)
    busy, second, third = ids["busy"], ids["second"], ids["third"]
    assert order == [busy[0], second[0], third[0], busy[1], third[1], busy[2], busy[3]]


def test_the_scorer_runs_under_a_memory_cap(tmp_path):
    script = textwrap.dedent("""
        import sys
        from leaderboard.scoring import limit_memory
        limit_memory(int(sys.argv[1]))
        try:
            block = bytearray(1024 * 1024 * 1024)
        except MemoryError:
            print("MemoryError")
        else:
            print("allocated", len(block))
    """)
    capped = subprocess.run([sys.executable, "-c", script, "300"], env=child_env(), capture_output=True, text=True,
                            timeout=60)
    assert capped.stdout.strip() == "MemoryError", capped.stderr
    free = subprocess.run([sys.executable, "-c", script, "0"], env=child_env(), capture_output=True, text=True,
                          timeout=60)
    assert free.stdout.strip() == f"allocated {1024 ** 3}", free.stderr

    from leaderboard.scoring import ScorerProcess
    from leaderboard_helpers import limit_reporting_scorer_main

    scorer = ScorerProcess(tmp_path / "gt.jsonl", target=limit_reporting_scorer_main, memory_mb=1234)
    try:
        assert scorer.start()["rlimit_as"] == 1234 * 1024 * 1024
    finally:
        scorer.stop()


@pytest.mark.parametrize("name", ["team\u200bname", "zero\u200dwidth", "mark\u200e", "word\u2060joiner",
                                  "\ufeffbom", "soft\u00adhyphen"])
def test_invisible_characters_are_refused_in_names(board, name):
    with pytest.raises(store.StoreError, match="invisible"):
        store.create_team(board.db, name)
    response = board.upload(write_oracle(board.tmp, board.rows).read_bytes(), name)
    assert response.status_code == 400 and "invisible" in response.json()["detail"]


@pytest.mark.parametrize("model", ["Calico", "calico", " CALICO ", "\uff23alico", "Multi-Image  LISA", "cascade"])
def test_a_submission_cannot_take_a_paper_rows_name(board, model):
    response = board.upload(write_oracle(board.tmp, board.rows).read_bytes(), model,
                            url="https://arxiv.org/abs/2412.19331")
    assert response.status_code == 400 and "Calico paper" in response.json()["detail"]
    with pytest.raises(store.StoreError, match="marks the paper"):
        store.create_team(board.db, "calico PAPER")


def test_a_reproduction_may_say_so_and_link_the_paper(board):
    response = board.upload(write_oracle(board.tmp, board.rows).read_bytes(), "Calico (reproduced)",
                            url="https://arxiv.org/abs/2412.19331")
    assert response.status_code == 202


def scored(id_, team, model, miou, ap50=10.0, sha=None):
    scores = {"mIoU": miou, "AP50": ap50, "Recall": 1.0, "SS": 1.0, "S-IoU": 1.0, "samples": 3}
    return {"id": id_, "team": team, "model": model, "url": None, "scores": {"mean": scores}, "variant": {},
            "date": "2026-01-01", "sha256": sha or f"{id_:064x}"}


def test_tied_scores_share_a_rank():
    rows = [scored(1, "a", "x", 50.0), scored(2, "b", "y", 60.0), scored(3, "c", "z", 50.0), scored(4, "d", "w", 40.0)]
    table = build_table(rows, include_paper=False)
    assert [(r["model"], r["rank"]) for r in table["rows"]] == [("y", 1), ("x", 2), ("z", 2), ("w", 4)]
    by_ap = build_table(rows, sort="AP50", include_paper=False)
    assert [r["rank"] for r in by_ap["rows"]] == [1, 1, 1, 1]


def test_default_view_is_each_teams_best_per_model_and_all_is_a_click_away():
    rows = [scored(1, "a", "net", 50.0), scored(2, "a", "net", 70.0), scored(3, "a", "Net", 60.0),
            scored(4, "a", "other", 20.0), scored(5, "b", "net", 65.0)]
    best = build_table(rows, include_paper=False)
    assert [(r["id"], r["submissions"]) for r in best["rows"]] == [(2, 3), (5, 1), (4, 1)]
    every = build_table(rows, include_paper=False, best_per_model=False)
    assert [r["id"] for r in every["rows"]] == [2, 5, 3, 1, 4]
    assert best["view"] == "best per team and model" and every["view"] == "all submissions"


def test_the_same_file_twice_is_flagged(board):
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    other = store.create_team(board.db, "copycat")
    first = board.upload(oracle, "original").json()["id"]
    again = board.upload(oracle, "again").json()["id"]
    copied = board.upload(oracle, "copied", token=other).json()["id"]
    board.drain()
    rows = {r["id"]: r for r in board.client.get("/api/table", params={"paper": 0}).json()["rows"]}
    assert rows[first]["duplicate_of"] is None
    assert rows[again]["duplicate_of"] == first and rows[copied]["duplicate_of"] == first
    page = board.client.get("/").text
    assert page.count(f"same file as #{first}</span>") == 2


def test_the_page_shows_best_per_model_with_all_submissions_a_click_away(board):
    oracle = write_oracle(board.tmp, board.rows).read_bytes()
    ids = [board.upload(oracle + b" " * i, "same model").json()["id"] for i in range(3)]
    board.drain()
    page = board.client.get("/", params={"paper": 0}).text
    assert page.count('<tr class="submission"') == 1 and "best of 3" in page
    assert 'id="view-toggle" href="?task=mean&amp;sort=mIoU&amp;order=desc&amp;paper=0&amp;all=1"' in page
    every = board.client.get("/", params={"paper": 0, "all": 1}).text
    assert every.count('<tr class="submission"') == 3 and all(f'data-id="{i}"' in every for i in ids)
    # Ties share a rank on the page too: three identical scores are all first.
    assert every.count('<td class="num" data-value="1">1</td>') == 3


def test_submissions_are_paged_and_the_quota_is_visible(board):
    store.set_team_quota(board.db, "alpha", 250)
    team = store.authenticate(board.db, board.token)
    upload = store.Upload.from_bytes("p.json", b"{}")
    ids = [store.create_submission(board.db, team, f"m{i}", None, upload)[0] for i in range(230)]
    first = board.client.get("/api/submissions", headers=board.auth).json()
    assert first["total"] == 230 and len(first["submissions"]) == 100
    assert first["quota"]["daily_quota"] == 250 and first["quota"]["used_today"] == 230
    assert first["quota"]["remaining"] == 20 and first["quota"]["resets_at"].endswith("T00:00:00Z")
    seen = [s["id"] for s in first["submissions"]]
    url = first["next"]
    while url:
        page = board.client.get(url, headers=board.auth).json()
        seen += [s["id"] for s in page["submissions"]]
        url = page["next"]
    assert seen == sorted(ids, reverse=True)  # every one, once, newest first
    assert board.client.get("/api/submissions", params={"limit": 0}, headers=board.auth).status_code == 400
    response = board.upload(write_oracle(board.tmp, board.rows).read_bytes())
    assert response.json()["quota"]["remaining"] == 19


def test_the_page_has_an_upload_form(board):
    page = board.client.get("/").text
    assert '<form id="upload-form"' in page and 'action="/api/submissions"' in page
    for field in ('name="token" type="password"', 'name="file" type="file"', 'name="model"', 'name="url"'):
        assert field in page
