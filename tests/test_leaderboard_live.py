"""The real thing on loopback: `mixedparts-leaderboard serve` with two worker processes, driven over HTTP.

- 50 concurrent uploads (one burst, 127.0.0.1 only): all recorded and scored once, none lost or duplicated;
- the command-line client: submit (scored, rejected by the server, refused locally), status, table;
- headless Chromium (Debian's chromium and chromedriver through Selenium, no browser download): the
  page loads, sorts by a column, and shows a row submitted through the API, escaped; a file submitted
  through the page's own upload form comes back as a scored row. Where the browser is missing the
  browser test is skipped, with the reason.

One server serves every test of the module (it loads two scorers: start it once); its fixture checks
that it and its worker processes stop cleanly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from leaderboard import store
from leaderboard.cli import main
from leaderboard.db import Database
from leaderboard.paper import PAPER_NOTE
from leaderboard_helpers import LiveServer, make_gt, wait_until, write_oracle
from mixedparts.predictions import write_predictions

LOAD = 50


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    with live_server(folder) as running:
        yield running
    assert running["server"].process.returncode == 0, running["server"].output()

    def group_gone():  # the workers and their scorers ended with the server
        try:
            os.killpg(running["server"].process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(group_gone, 15, what="the server's worker processes to exit")


def test_fifty_concurrent_submissions_are_all_scored_exactly_once(live):
    check_fifty_concurrent_submissions_are_all_scored_exactly_once(live)


def test_the_command_line_client(live, tmp_path, capsys):
    check_the_command_line_client(live, tmp_path, capsys)


def test_uploads_over_the_limit_are_refused_over_http(live, tmp_path):
    check_uploads_over_the_limit_are_refused_over_http(live, tmp_path)


def test_browser_end_to_end(live, monkeypatch):
    check_browser_end_to_end(live, monkeypatch)


@contextlib.contextmanager
def live_server(folder):
    gt, rows = make_gt(folder)
    db_url = f"sqlite:///{folder / 'leaderboard.db'}"
    tokens = {}
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["admin", "--db", db_url, "init"]) == 0
    for team, quota in (("load", str(LOAD)), ("cli", "3"), ("e2e", "5")):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            assert main(["admin", "--db", db_url, "create-team", team, "--daily-quota", quota]) == 0
        tokens[team] = buffer.getvalue().strip()
    server = LiveServer(gt, db_url, workers=2, extra=("--max-upload-mb", "1", "--lease", "5"),
                        log=folder / "server.log")
    try:
        server.wait_ready(60)
        yield {"server": server, "url": server.url, "gt": gt, "rows": rows, "db": Database(db_url),
               "tokens": tokens, "folder": folder, "oracle": write_oracle(folder, rows)}
    finally:
        server.stop()


def all_scored(live, ids, timeout):
    from sqlalchemy import func, select

    from leaderboard.models import Submission

    def done():
        with live["db"].read() as session:
            return session.scalar(select(func.count()).select_from(Submission).where(
                Submission.id.in_(ids), Submission.status.in_(("scored", "rejected")))) == len(ids)

    return wait_until(done, timeout, interval=0.5, what=f"{len(ids)} submissions to be scored")


def check_fifty_concurrent_submissions_are_all_scored_exactly_once(live):
    payload = live["oracle"].read_bytes()
    token = live["tokens"]["load"]
    barrier = threading.Barrier(LOAD)

    def submit(i):
        with httpx.Client(base_url=live["url"], timeout=60) as client:
            barrier.wait(30)
            return client.post("/api/submissions", files={"file": (f"load-{i}.json", payload)},
                               data={"model": f"load {i}"}, headers={"Authorization": f"Bearer {token}"})

    with ThreadPoolExecutor(LOAD) as pool:
        responses = list(pool.map(submit, range(LOAD)))
    assert [r.status_code for r in responses] == [202] * LOAD, [r.text for r in responses if r.status_code != 202]
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == LOAD
    all_scored(live, ids, timeout=300)  # bounded; generous because the test machine may be shared

    db = live["db"]
    team = store.authenticate(db, token)
    mine = store.team_submissions(db, team, limit=1000)
    assert sorted(s["id"] for s in mine) == sorted(ids)  # none lost, none duplicated
    assert sorted(s["model"] for s in mine) == sorted(f"load {i}" for i in range(LOAD))
    assert all(s["status"] == "scored" and s["scores"]["mean"]["mIoU"] == pytest.approx(100) for s in mine)
    events = Counter((e["submission_id"], e["event"]) for e in store.events(db) if e["submission_id"] in ids)
    assert all(events[(i, "uploaded")] == 1 and events[(i, "claimed")] == 1 and events[(i, "scored")] == 1
               for i in ids), events
    workers = {e["worker"] for e in store.events(db) if e["event"] == "scored" and e["submission_id"] in ids}
    assert 1 <= len(workers) <= 2
    table = httpx.get(live["url"] + "/api/table", timeout=60).json()  # a loaded CI machine can take over 5 s
    assert sum(1 for row in table["rows"] if row["team"] == "load") == LOAD


def check_the_command_line_client(live, tmp_path, capsys):
    url, token = live["url"], live["tokens"]["cli"]
    assert main(["submit", str(live["oracle"]), "--server", url, "--token", token, "--model", "cli oracle",
                 "--url", "https://example.org/code"]) == 0
    out = capsys.readouterr().out
    assert "cli oracle — team cli" in out and "page: " + url + "/submissions/" in out
    mean = next(line for line in out.splitlines() if line.startswith("mean"))
    assert mean.split()[2:] == ["100.0"] * 5

    # Passes the local format check, but the server's ground truth does not know the sample.
    unknown = write_predictions(tmp_path / "unknown.json", [{"sample_id": "not-in-gt", "text": "", "segments": []}],
                                split="test")
    assert main(["submit", str(unknown), "--server", url, "--token", token, "--model", "unknown"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: submission ")
    assert "rejected: unknown.json: sample 'not-in-gt': field 'sample_id'" in err

    # A malformed file is refused before upload: it costs no submission.
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "mixedparts-predictions/1", "predictions": [{"sample_id": 3}]}')
    assert main(["submit", str(broken), "--server", url, "--token", token, "--model", "broken"]) == 2
    assert "field 'sample_id'" in capsys.readouterr().err
    assert main(["submit", str(live["oracle"]), "--server", url, "--token", "mpl_wrong", "--model", "x"]) == 2
    assert "HTTP 401" in capsys.readouterr().err

    # The quota is 3 per day (two used above): the third upload goes through, the fourth is refused.
    assert main(["submit", str(live["oracle"]), "--server", url, "--token", token, "--model", "third",
                 "--no-wait"]) == 0
    submission_id = int(capsys.readouterr().out.strip())
    assert main(["submit", str(live["oracle"]), "--server", url, "--token", token, "--model", "fourth"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 429" in err and "daily quota" in err
    assert main(["status", str(submission_id), "--server", url, "--token", token]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "third"

    for fmt in ("markdown", "csv", "json"):
        assert main(["table", "--server", url, "--format", fmt]) == 0
        text = capsys.readouterr().out
        assert "cli oracle" in text and "Calico" in text
    assert main(["table", "--server", url, "--format", "markdown", "--task", "common_object", "--no-paper"]) == 0
    text = capsys.readouterr().out
    assert "Calico" not in text and "[cli oracle](<https://example.org/code>)" in text


def check_uploads_over_the_limit_are_refused_over_http(live, tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * (1024 * 1024 + 10) + b"}")
    with httpx.Client(base_url=live["url"], timeout=60) as client:
        try:
            response = client.post("/api/submissions", files={"file": ("big.json", big.read_bytes())},
                                   data={"model": "big"},
                                   headers={"Authorization": f"Bearer {live['tokens']['e2e']}"})
            assert response.status_code == 413
        except httpx.WriteError:
            pass  # the server answered 413 and closed while the body was still being sent
    assert main(["submit", str(big), "--server", live["url"], "--token", live["tokens"]["e2e"],
                 "--model", "big"]) == 2


def _browser():
    """Headless Chromium through Selenium; the test is skipped, with the reason, where either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the browser test needs selenium (pip install selenium)")
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("the browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1200", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def check_browser_end_to_end(live, monkeypatch):
    """Load the table, sort it by a column, submit through the API, see the new row (escaped)."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    driver = _browser()
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    try:
        driver.set_page_load_timeout(30)
        driver.get(live["url"] + "/")
        assert driver.title == "MixedParts leaderboard"
        paper_rows = driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.paper")
        assert len(paper_rows) == 6 and all(PAPER_NOTE in row.text for row in paper_rows)

        def column(key):
            index = [th.get_attribute("data-key") for th in
                     driver.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")].index(key)
            return [float(row.find_elements(By.TAG_NAME, "td")[index].get_attribute("data-value"))
                    for row in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]

        header = driver.find_element(By.CSS_SELECTOR, '#leaderboard th[data-key="AP50"] a')
        header.click()
        table = driver.find_element(By.ID, "leaderboard")
        assert table.get_attribute("data-sort") == "AP50" and table.get_attribute("data-order") == "desc"
        values = column("AP50")
        assert values == sorted(values, reverse=True) and len(values) >= 6
        assert driver.current_url.rstrip("/") == live["url"]  # sorted in the page, no navigation
        driver.find_element(By.CSS_SELECTOR, '#leaderboard th[data-key="AP50"] a').click()
        values = column("AP50")
        assert values == sorted(values)
        ranks = [int(row.find_element(By.TAG_NAME, "td").text)
                 for row in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]
        # competition ranks, as the server gives them: equal values share one (1, 2, 2, 4)
        assert ranks == [1 + sum(v < value for v in values) for value in values]
        assert len(set(ranks)) < len(ranks)  # the fifty identical oracle rows tie

        name = 'e2e <img src=x onerror=alert(1)> <em>model</em>'
        response = httpx.post(live["url"] + "/api/submissions", data={"model": name},
                              files={"file": ("e2e.json", live["oracle"].read_bytes())},
                              headers={"Authorization": f"Bearer {live['tokens']['e2e']}"}, timeout=30)
        assert response.status_code == 202, response.text
        all_scored(live, [response.json()["id"]], timeout=60)

        driver.refresh()
        rows = [row for row in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.submission")
                if name in row.text]
        assert len(rows) == 1
        assert rows[0].find_elements(By.TAG_NAME, "em") == [] and rows[0].find_elements(By.TAG_NAME, "img") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - no script ran
        rows[0].find_element(By.CSS_SELECTOR, "td a").click()
        wait_until(lambda: "/submissions/" in driver.current_url, 10, what="the submission page")
        per_task = driver.find_element(By.ID, "per-task").text
        assert "common object" in per_task and "mean (headline)" in per_task and "100.0" in per_task
        assert driver.find_element(By.TAG_NAME, "h1").text == name

        # The page's own upload form: token, file, model name and URL, then the row appears by itself.
        driver.get(live["url"] + "/")
        form = driver.find_element(By.ID, "upload-form")
        form.find_element(By.NAME, "token").send_keys(live["tokens"]["e2e"])
        form.find_element(By.NAME, "file").send_keys(str(live["oracle"]))
        form.find_element(By.NAME, "model").send_keys("submitted through the form")
        form.find_element(By.NAME, "url").send_keys("https://example.org/form")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(lambda: "uploaded as submission" in driver.find_element(By.ID, "upload-status").text
                   or "error" in driver.find_element(By.ID, "upload-status").text, 30, what="the upload's answer")
        status = driver.find_element(By.ID, "upload-status").text
        assert "uploaded as submission" in status and "left today" in status, status

        def row_shown():
            try:
                return [row for row in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.submission")
                        if "submitted through the form" in row.text]
            except Exception:  # noqa: BLE001 - the page is reloading under us
                return []

        rows = wait_until(row_shown, 90, interval=0.5, what="the form's submission to appear in the table")
        link = rows[0].find_element(By.CSS_SELECTOR, 'a[href="https://example.org/form"]')
        assert link.text == "link"
        # Wrong token: the form says why, in the page.
        form = driver.find_element(By.ID, "upload-form")
        form.find_element(By.NAME, "token").send_keys("mpl_wrong")
        form.find_element(By.NAME, "file").send_keys(str(live["oracle"]))
        form.find_element(By.NAME, "model").send_keys("never")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(lambda: "HTTP 401" in driver.find_element(By.ID, "upload-status").text, 30,
                   what="the refusal to be shown")
    finally:
        driver.quit()


def test_ci_fails_loudly_where_apt_exists_but_cannot_install_the_browser(tmp_path):
    """`.ci/run` on a machine with apt-get but no chromium: a failed install stops CI (exit 1), with the reason."""
    import subprocess

    from leaderboard_helpers import REPO

    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname", "ls", "mktemp", "tail", "cat", "env"):
        (tools / tool).symlink_to(shutil.which(tool))
    apt = tools / "apt-get"
    apt.write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
    apt.chmod(0o755)
    result = subprocess.run([str(tools / "bash"), str(REPO / ".ci" / "run")], env={"PATH": str(tools)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "error: apt-get could not install chromium" in result.stderr
    assert "Unable to locate package chromium" in result.stderr
