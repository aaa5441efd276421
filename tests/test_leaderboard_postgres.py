"""The same leaderboard on a real PostgreSQL server, started here on 127.0.0.1 (skipped where none is installed).

Debian: ``apt-get install postgresql`` (the server binaries land in /usr/lib/postgresql/VERSION/bin).
The database URL is an ordinary ``postgresql://`` URL: nothing in the leaderboard changes for it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from leaderboard import store
from leaderboard.db import Database
from leaderboard.scoring import InProcessScorer, gt_fingerprint
from leaderboard.web import AppConfig, create_app
from leaderboard.worker import Worker
from leaderboard_helpers import free_port, imperfect, make_gt, write_oracle
from metrics_helpers import minilm  # noqa: F401
from mixedparts.metrics.evaluate import evaluate
from mixedparts.metrics.ground_truth import read_ground_truth
from mixedparts.predictions import read_predictions, write_predictions

pytest.importorskip("psycopg")


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    binaries = _pg_bin()
    if binaries is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql)")
    folder = tmp_path_factory.mktemp("pg")
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
        os.chmod(folder, 0o700)
        for parent in list(folder.parents)[:-1]:  # postgres must be able to reach its folders
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    port = free_port()

    def run(*command):
        return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, timeout=120)

    run(f"{binaries}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(f"{binaries}/pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(f"{binaries}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "leaderboard")
        yield f"postgresql://postgres@127.0.0.1:{port}/leaderboard"
    finally:
        subprocess.run([*prefix, f"{binaries}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)


@pytest.fixture
def db(postgres):
    database = Database(postgres).create()
    yield database
    from leaderboard.models import Base

    Base.metadata.drop_all(database.engine)
    database.dispose()


def test_the_url_is_used_unchanged_with_psycopg(db):
    assert db.engine.dialect.name == "postgresql" and db.engine.dialect.driver in ("psycopg", "psycopg2")


def test_upload_score_and_table_on_postgresql(db, tmp_path, minilm):
    gt, rows = make_gt(tmp_path)
    app = create_app(AppConfig(db.url, gt_fingerprint(gt)), db)
    client = TestClient(app)
    token = store.create_team(db, "pg team <i>")
    auth = {"Authorization": f"Bearer {token}"}
    oracle = write_oracle(tmp_path, rows)
    partial = write_predictions(tmp_path / "partial.json", imperfect(rows), split="test")
    ids = []
    for name, path in (("oracle", oracle), ("partial", partial)):
        response = client.post("/api/submissions", files={"file": (path.name, path.read_bytes())},
                               data={"model": name}, headers=auth)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    bad = client.post("/api/submissions", files={"file": ("bad.json", b"[1, 2")}, data={"model": "bad"}, headers=auth)
    Worker(db, gt, scorer=InProcessScorer(gt), log=lambda m: None).run(once=True, handle_signals=False)
    truth = read_ground_truth(gt)
    for submission_id, path in zip(ids, (oracle, partial)):
        got = client.get(f"/api/submissions/{submission_id}", headers=auth).json()
        assert got["status"] == "scored"
        assert got["scores"] == evaluate(truth, read_predictions(path)).to_dict()["scores"]
    rejected = client.get(f"/api/submissions/{bad.json()['id']}", headers=auth).json()
    assert rejected["status"] == "rejected" and rejected["message"].startswith("bad.json: ")
    table = client.get("/api/table").json()
    assert [r["model"] for r in table["rows"]][0] == "oracle"
    assert "&lt;i&gt;" in client.get("/").text


def test_claims_and_quota_under_concurrency_on_postgresql(db):
    team = store.authenticate(db, store.create_team(db, "racers", daily_quota=12))
    upload = store.Upload.from_bytes("p.json", b"{}")
    results, barrier = [], threading.Barrier(20)

    def submit(i):
        barrier.wait()
        try:
            results.append(store.create_submission(db, team, f"m{i}", None, upload)[0])
        except store.StoreError as error:
            results.append(error.status)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    ids = sorted(r for r in results if r != 429)
    assert len(ids) == 12 and results.count(429) == 8

    taken, lock = [], threading.Lock()

    def work(name):
        while (claim := store.claim(db, name, 60)) is not None:
            assert store.finish(db, claim.id, name, {"status": "scored", "scores": {}, "variant": {}, "result": {}})
            with lock:
                taken.append(claim.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert sorted(taken) == ids
    events = Counter((e["submission_id"], e["event"]) for e in store.events(db))
    assert all(events[(i, "claimed")] == 1 and events[(i, "scored")] == 1 for i in ids)
