"""The error-analysis report (mixedparts-eval --report) and the paired test (mixedparts-compare).

End to end on the tiny synthetic build (what ``mixedparts demo`` builds) with the two reference
predictors; error types on a hand-built sample where each kind of failure is put in on purpose.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from metrics_helpers import box, minilm  # noqa: F401
from mixedparts.analysis import failures as fail
from mixedparts.analysis.compare_cli import main as compare_main
from mixedparts.metrics.cli import main as eval_main
from mixedparts.metrics.evaluate import METRICS, evaluate
from mixedparts.predictions import write_predictions


@pytest.fixture(scope="module")
def demo(build_tiny, tmp_path_factory):
    """The demo's setting: the tiny build's test split, oracle and object-box predictions, one report."""
    from mixedparts.metrics.ground_truth import read_dataset_split
    from mixedparts.reference_predictions import predict
    from mixedparts.schema import SAMPLE_FIELDS

    folder = tmp_path_factory.mktemp("report-demo")
    dataset = build_tiny(folder / "dataset")
    rows = read_dataset_split(dataset, "test", columns=SAMPLE_FIELDS)
    files = {name: write_predictions(folder / f"predictions-{name}.json", predict(name, rows), model=name,
                                     split="test") for name in ("oracle", "object-box")}
    report = folder / "rep"
    code = eval_main([str(files["object-box"]), "--data", str(dataset), "--split", "test", "--report", str(report),
                      "--json", str(folder / "eval.json"), "--bootstrap", "100", "--seed", "3", "--gallery", "2",
                      "--workers", "1"])
    assert code == 0
    return {"folder": folder, "dataset": dataset, "rows": rows, "files": files, "report": report}


def test_report_numbers_are_the_evaluations(demo):
    document = json.loads((demo["report"] / "report.json").read_text())
    evaluation = json.loads((demo["folder"] / "eval.json").read_text())
    for key in ("scores", "ci95", "counts", "breakdowns", "variant", "bootstrap", "secondary_all_gt_labels"):
        assert document["eval"][key] == evaluation[key], key
    errors = document["errors"]
    # Every GT segment is classified once; "correct" is exactly what Recall counted.
    for task, counts in errors.items():
        assert sum(counts["gt"].values()) == counts["gt_segments"]
        assert sum(counts["predicted"].values()) == counts["predicted_segments"]
    assert sum(c["gt_segments"] for c in errors.values()) == evaluation["counts"]["gt_masks"]
    recall_points = {task: 100 * errors[task]["gt"]["correct"] / errors[task]["gt_segments"] for task in errors}
    for task, value in recall_points.items():
        assert value == pytest.approx(evaluation["scores"][task]["Recall"], abs=1e-9)
    # object-box keeps every GT label and finds every object's box: no missed or extra segment.
    assert all(c["gt"]["missed"] == 0 and c["predicted"]["extra"] == 0 for c in errors.values())
    assert errors["common_parts"]["gt"]["mask_wrong"] > 0
    assert set(document["gallery"]) == set(errors) and all(len(v) == 2 for v in document["gallery"].values())
    for entries in document["gallery"].values():
        for entry in entries:
            assert (demo["report"] / entry["image"]).stat().st_size > 1000 and entry["note"] is None
    worst = document["worst"]["common_parts"]
    assert worst[0]["mIoU"] <= worst[1]["mIoU"]
    assert document["by_label"] and all(r["AP50"] is None for r in document["by_label"])
    html = (demo["report"] / "index.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html


def test_intervals_are_reproducible_with_the_seed(demo, tmp_path):
    first = json.loads((demo["report"] / "report.json").read_text())["eval"]["ci95"]
    args = [str(demo["files"]["object-box"]), "--data", str(demo["dataset"]), "--bootstrap", "100", "--gallery", "0",
            "--workers", "1"]
    assert eval_main([*args, "--seed", "3", "--report", str(tmp_path / "same")]) == 0
    assert eval_main([*args, "--seed", "4", "--report", str(tmp_path / "other")]) == 0
    same = json.loads((tmp_path / "same" / "report.json").read_text())
    other = json.loads((tmp_path / "other" / "report.json").read_text())
    assert same["eval"]["ci95"] == first
    assert other["eval"]["ci95"] != first
    assert not (tmp_path / "same" / "gallery").exists() or not any((tmp_path / "same" / "gallery").iterdir())


def test_report_into_a_file_is_one_error_line(demo, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    code = eval_main([str(demo["files"]["oracle"]), "--data", str(demo["dataset"]), "--report", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--report needs a folder" in err


def test_compare_oracle_with_object_box_and_with_itself(demo, tmp_path, capsys):
    oracle, boxes = str(demo["files"]["oracle"]), str(demo["files"]["object-box"])
    data = ["--data", str(demo["dataset"]), "--split", "test", "--bootstrap", "200", "--workers", "1"]
    assert compare_main([oracle, boxes, *data, "--json", str(tmp_path / "ab.json")]) == 0
    text = capsys.readouterr().out
    ab = json.loads((tmp_path / "ab.json").read_text())
    entries = [(task, m, e) for task, metrics in ab["differences"].items() for m, e in metrics.items()]
    assert len(entries) == 4 * len(METRICS)
    for task, metric, entry in entries:
        # Every difference there is (object-box keeps the GT labels, so a few label scores tie at 0) is significant.
        if abs(entry["difference"]) > 1e-9:
            assert entry["significant"] and entry["difference"] > 0 and entry["ci95"][0] > 0, (task, metric)
        else:
            assert not entry["significant"] and entry["p_value"] == 1.0
    assert all(ab["differences"]["mean"][m]["significant"] for m in METRICS)
    assert ab["differences"]["mean"]["mIoU"]["difference"] == pytest.approx(
        ab["a"]["scores"]["mean"]["mIoU"] - ab["b"]["scores"]["mean"]["mIoU"])
    assert "mIoU (headline): oracle is significantly better than object-box" in text
    assert ab["groups"]["source"] and ab["groups"]["category"]

    assert compare_main([boxes, boxes, *data, "--json", str(tmp_path / "aa.json")]) == 0
    aa = json.loads((tmp_path / "aa.json").read_text())
    for metrics in aa["differences"].values():
        for entry in metrics.values():
            assert entry["difference"] == 0 and entry["p_value"] == 1.0 and not entry["significant"]
            assert entry["ci95"] == [0.0, 0.0]
    assert all("no significant difference" in line for line in aa["verdicts"])

    assert compare_main([oracle, boxes, *data, "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["differences"] == ab["differences"]


def test_compare_bad_input_is_one_error_line(demo, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code = compare_main([str(demo["files"]["oracle"]), str(broken), "--data", str(demo["dataset"])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "broken.json" in err


# ----------------------------------------------------------------------- error types, one by one


def _rows():
    """One common_parts sample (image 0: leg, seat, back; image 1: leg, arm; boxes that do not overlap)
    and one common_object sample."""
    size0, size1 = (20, 30), (25, 15)
    parts = [("leg", 0, box(size0, 0, 0, 10, 10)), ("seat", 0, box(size0, 10, 10, 20, 20)),
             ("back", 0, box(size0, 0, 20, 10, 30)), ("leg", 1, box(size1, 0, 0, 10, 10)),
             ("arm", 1, box(size1, 15, 5, 25, 15))]
    images = [{"image_id": f"i{k}", "file_name": f"{k}.png", "width": w, "height": h}
              for k, (h, w) in enumerate((size0, size1))]
    common = {"sample_id": "parts", "source": "synthetic", "split": "test", "task": "common_parts",
              "images": images, "objects": [{"image_index": 0, "category": "chair"},
                                            {"image_index": 1, "category": "chair"}],
              "segments": [{"label": label, "kind": "common_part", "image_index": k, "mask": mask}
                           for label, k, mask in parts]}
    objects = {**common, "sample_id": "objects", "task": "common_object",
               "segments": [{"label": "chair", "kind": "object", "image_index": k, "mask": box(size, 0, 0, 5, 5)}
                            for k, size in enumerate((size0, size1))]}
    return [common, objects], size0, size1


def test_each_error_type_is_recognized(minilm):
    rows, size0, size1 = _rows()
    segments = [
        ("leg", 0, rows[0]["segments"][0]["mask"]),  # correct
        ("banana", 0, rows[0]["segments"][1]["mask"]),  # seat's mask, wrong label
        ("back", 0, box(size0, 0, 20, 3, 23)),  # right label, IoU 0.09
        ("wheel", 0, box(size0, 12, 0, 20, 8)),  # overlaps nothing: extra
        ("zebra", 1, box(size1, 15, 5, 17, 7)),  # arm, both wrong
        ("back", 1, box(size1, 20, 0, 25, 4)),  # back is a GT label of image 0 only: wrong image
    ]  # image 1's leg is never predicted: missed
    predictions = [{"sample_id": "parts", "text": "",
                    "segments": [{"label": label, "image_index": k, "mask": mask} for label, k, mask in segments]},
                   {"sample_id": "objects", "text": "", "segments": []}]
    result = evaluate(rows, predictions, keep_details=True, embedder=minilm)
    failures = fail.analyse(result.details)
    assert list(failures.gt_outcome) == ["correct", "label_wrong", "mask_wrong", "missed", "both_wrong",
                                         "empty_answer", "empty_answer"]
    assert list(failures.predicted_outcome) == ["paired", "paired", "paired", "extra", "paired", "wrong_image"]
    assert np.array_equal(failures.recall_matched, result.details.scored.matched)
    counts = fail.error_counts(result.details, failures)
    assert counts["common_object"]["empty_answers"] == 1 and counts["common_parts"]["empty_answers"] == 0
    confusions = fail.confusions(result.details, failures)["common_parts"]
    assert {(c["gt"], c["predicted"]) for c in confusions} == {("seat", "banana"), ("arm", "zebra")}
    by_label = {r["label"]: r for r in fail.label_breakdown(result.details, failures)}
    assert by_label["leg"]["support"] == 2 and by_label["leg"]["Recall"] == 50.0
    assert by_label["leg"]["mIoU"] == pytest.approx(50.0)  # one exact mask, one unpaired
    assert by_label["seat"]["SS"] < 50
    histogram = fail.histograms(result.details, failures)["iou"]
    assert histogram["unpaired"] == {"common_parts": 1, "common_object": 2}
    assert sum(histogram["counts"]["common_parts"]) == 4


def test_public_summary_keeps_no_label_or_sample(demo):
    from mixedparts.analysis.report import public_summary

    document = json.loads((demo["report"] / "report.json").read_text())
    public = json.dumps(public_summary(document))
    for row in demo["rows"]:
        assert row["sample_id"] not in public
    labels = {s["label"] for row in demo["rows"] for s in row["segments"]}
    categories = {o["category"] for row in demo["rows"] for o in row["objects"]}
    leaked = [w for w in labels | categories if f'"{w}"' in public]
    assert not leaked


def test_report_page_in_a_browser(demo, tmp_path, monkeypatch):
    """Headless Chromium opens rep/index.html from disk: every section is there, every gallery image loads,
    a breakdown table sorts; the screenshot is kept beside the report."""
    monkeypatch.setenv("SE_OFFLINE", "true")
    driver = _browser()
    from selenium.webdriver.common.by import By

    page = tmp_path / "rep"
    shutil.copytree(demo["report"], page)
    try:
        driver.set_page_load_timeout(30)
        driver.get(page.joinpath("index.html").as_uri())
        for section in ("headline", "tasks", "breakdowns", "errors", "confusions", "histograms", "gallery"):
            assert driver.find_element(By.ID, section).is_displayed(), section
        images = driver.find_elements(By.CSS_SELECTOR, "#gallery img")
        assert len(images) == 6
        for image in images:
            driver.execute_script("arguments[0].scrollIntoView();", image)
        from selenium.webdriver.support.ui import WebDriverWait

        def widths(d):  # lazily loaded: wait for them
            loaded = d.execute_script("return Array.from(document.querySelectorAll('#gallery img'))"
                                      ".map(i => i.complete ? i.naturalWidth : 0);")
            return loaded if all(w > 100 for w in loaded) else False

        WebDriverWait(driver, 30).until(widths)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#histograms svg rect")) >= 20
        values = lambda: [float(td.get_attribute("data-value")) for td in  # noqa: E731
                          driver.find_elements(By.CSS_SELECTOR, "#by-source tbody tr td:nth-child(3)")]
        header = driver.find_element(By.CSS_SELECTOR, "#by-source thead th:nth-child(3)")
        header.click()
        assert values() == sorted(values())
        header.click()
        assert values() == sorted(values(), reverse=True)
        driver.set_window_size(1280, 1600)
        assert driver.save_screenshot(str(page / "screenshot.png"))
        assert (page / "screenshot.png").stat().st_size > 10_000
    finally:
        driver.quit()


def _browser():
    """Headless Chromium through Selenium (Debian's chromium and chromium-driver; nothing is downloaded)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1200", "--disable-extensions", "--no-first-run",
                     "--allow-file-access-from-files"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def test_resampler_arrays_round_trip_and_full_draw_is_the_point_estimate(minilm):
    """What the leaderboard stores (to_arrays, through JSON) re-scores draws exactly as the live resampler."""
    from mixedparts.metrics.resampling import TaskResampler

    rows, _, _ = _rows()
    predictions = [{"sample_id": "parts", "text": "", "segments": [
        {"label": s["label"], "image_index": s["image_index"], "mask": s["mask"]} for s in rows[0]["segments"][::2]]}]
    result = evaluate(rows, predictions, keep_details=True, embedder=minilm)
    for task in result.details.tasks:
        live = result.details.resampler(task)
        stored = TaskResampler.from_arrays(json.loads(json.dumps(live.to_arrays())))
        everything = np.arange(live.samples)
        assert stored.metrics(everything) == pytest.approx(live.metrics(everything), rel=0, abs=0, nan_ok=True)
        for metric, value in live.metrics(everything).items():
            assert 100 * value == pytest.approx(result.scores.loc[task, metric], abs=1e-9, nan_ok=True), metric
        block = live.replicates(np.random.default_rng(5), 7)
        rng = np.random.default_rng(5)
        one_by_one = [live.metrics(live.draw(rng)) for _ in range(7)]
        for metric in block:
            assert block[metric] == pytest.approx([m[metric] for m in one_by_one], rel=1e-12, nan_ok=True)
