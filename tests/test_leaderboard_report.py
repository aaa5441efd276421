"""The leaderboard's report on each submission's page and the "below the top entry" markers.

The hidden ground truth here has labels, categories, ids and file names found nowhere else, so any
of them on a page or in an API answer is a leak (the oracle submission carries the GT labels too,
which is why no predicted label may be shown either).
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from leaderboard import store
from leaderboard.db import Database
from leaderboard.scoring import InProcessScorer, gt_fingerprint
from leaderboard.web import AppConfig, create_app
from leaderboard.worker import Worker
from leaderboard_helpers import imperfect
from metrics_helpers import make_rows, minilm, oracle_predictions  # noqa: F401
from mixedparts.metrics.ground_truth import write_ground_truth
from mixedparts.predictions import write_predictions

SECRET = "qx"  # every hidden label, category, id and file name carries it


def _hidden_rows() -> list[dict]:
    rows = make_rows(3)
    for row in rows:
        row["sample_id"] = f"{SECRET}{row['sample_id']}id"
        for image in row["images"]:
            image["image_id"] = f"{SECRET}{image['image_id']}"
            image["file_name"] = f"{SECRET}{image['file_name']}"
        for obj in row["objects"]:
            obj["category"] = f"{SECRET}{obj['category']}cat"
        for segment in row["segments"]:
            segment["label"] = f"{SECRET}{segment['label']}lab"
    return rows


@pytest.fixture
def board(tmp_path, minilm):
    rows = _hidden_rows()
    gt = write_ground_truth(rows, tmp_path / "hidden-gt.jsonl")
    db = Database(str(tmp_path / "lb.db")).create()
    client = TestClient(create_app(AppConfig(db.url, gt_fingerprint(gt), max_upload_bytes=500_000), db))
    token = store.create_team(db, "alpha")
    scorer = InProcessScorer(gt)

    def upload(predictions, model):
        path = write_predictions(tmp_path / f"{model}.json", predictions, model=model, split="test")
        response = client.post("/api/submissions", files={"file": (path.name, path.read_bytes())},
                               data={"model": model}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def drain():
        Worker(db, gt, scorer=scorer, log=lambda m: None).run(once=True, handle_signals=False)

    yield {"client": client, "rows": rows, "upload": upload, "drain": drain, "token": token}
    db.dispose()


def test_submission_page_shows_the_report_and_leaks_no_ground_truth(board):
    ids = {"oracle": board["upload"](oracle_predictions(board["rows"]), "oracle"),
           "partial": board["upload"](imperfect(board["rows"]), "partial")}
    board["drain"]()
    client = board["client"]
    page = client.get(f"/submissions/{ids['partial']}").text
    for section in ('id="report"', 'id="headline"', 'id="tasks"', 'id="breakdowns"', 'id="errors"',
                    'id="histograms"'):
        assert section in page, section
    assert 'id="gallery"' not in page and 'id="confusions"' not in page and "<img" not in page
    assert "missed GT segment" in page and "<svg" in page and "by-source" in page
    secret_masks = {s["mask"]["counts"] for row in board["rows"] for s in row["segments"]}
    answers = [page, client.get(f"/submissions/{ids['oracle']}").text,
               json.dumps(client.get(f"/api/submissions/{ids['oracle']}",
                                     headers={"Authorization": f"Bearer {board['token']}"}).json()),
               client.get("/").text, json.dumps(client.get("/api/table").json())]
    for answer in answers:
        assert SECRET not in answer
        assert not any(counts in answer for counts in secret_masks)
    report = client.get(f"/api/submissions/{ids['partial']}",
                        headers={"Authorization": f"Bearer {board['token']}"}).json()["report"]
    assert report["public"] is True and "resampling" not in report
    assert report["errors"]["common_parts"]["gt"]["missed"] > 0
    for task, metrics in report["eval"]["ci95"].items():
        for metric, (low, high) in metrics.items():
            assert low - 1e-9 <= report["eval"]["scores"][task][metric] <= high + 1e-9, (task, metric)


def test_entries_significantly_below_the_top_are_marked(board):
    rows = board["rows"]
    top = board["upload"](oracle_predictions(rows), "oracle")
    twin = board["upload"](oracle_predictions(rows)[::-1], "oracle twin")  # the same masks, another file
    low = board["upload"](imperfect(rows), "partial")
    board["drain"]()
    client = board["client"]
    table = client.get("/api/table", params={"sort": "mIoU"}).json()
    marks = {row["id"]: row.get("below_top") for row in table["rows"] if row["kind"] == "submission"}
    assert marks[top] is None and marks[twin] is None
    assert marks[low]["metric"] == "mIoU" and marks[low]["difference"] < 0 and marks[low]["p_value"] < 0.05
    assert marks[low]["ci95"][1] < 0
    assert table["significance"]["top"] == top and table["significance"]["replicates"] == 1000
    page = client.get("/", params={"task": "common_parts", "sort": "Recall"}).text
    assert page.count("&#9660; below top</span>") == 2  # the partial entry's marker and the legend
    assert "significantly below the top entry in Recall" in page
