"""The predictions file: round trips, GCG folders, bulk RLE validation, the malformed corpus and a fuzz test."""

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixedparts.masks import encode, first_invalid, validation_error
from mixedparts.metrics.cli import main
from mixedparts.metrics.ground_truth import write_ground_truth
from mixedparts.predictions import (PredictionsError, check_against_ground_truth,
                                    read_predictions, write_predictions)
from mixedparts.schema import PREDICTIONS_FORMAT
from metrics_helpers import SIZES, box, make_rows, minilm, oracle_predictions  # noqa: F401

CORPUS = Path(__file__).parent / "data" / "malformed_predictions"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


@pytest.fixture(scope="module")
def gt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gt") / "gt.jsonl"
    write_ground_truth(make_rows(1), path)
    return path


def test_corpus_is_large_and_complete():
    files = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".json", ".jsonl") and p.name != "expected.json")
    assert len(files) >= 30
    assert files == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_is_rejected_with_file_sample_and_field(name, gt_file, tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = main([str(CORPUS / name), "--gt", str(gt_file), "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert not out.exists()
    assert captured.out == ""
    message = captured.err.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert name in message
    expected = EXPECTED[name]
    if expected["sample"] is not None:
        assert f"sample '{expected['sample']}'" in message
    if expected["field"] is not None:
        assert f"field '{expected['field']}'" in message


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_round_trip(tmp_path, suffix):
    rows = make_rows(1)
    predictions = oracle_predictions(rows)
    predictions[0]["segments"][0]["score"] = 0.25
    path = write_predictions(tmp_path / f"p{suffix}", predictions, model="oracle", split="test")
    read = read_predictions(path)
    assert read.format == suffix[1:]
    assert (read.model, read.split) == ("oracle", "test")
    assert list(read.by_sample.values()) == predictions
    images = {row["sample_id"]: [tuple(SIZES[0]), tuple(SIZES[1])] for row in rows}
    assert check_against_ground_truth(read, images, "test") == []
    assert check_against_ground_truth(read, {**images, "extra": [SIZES[0]]}, "test") == ["extra"]


def test_json_lines_are_recognized_without_the_suffix(tmp_path):
    rows = make_rows(1)
    path = write_predictions(tmp_path / "p.txt", oracle_predictions(rows), jsonl=True)
    assert read_predictions(path).format == "jsonl"
    assert len(read_predictions(path).by_sample) == 3


def test_writer_refuses_what_a_reader_would(tmp_path):
    with pytest.raises(PredictionsError, match="score"):
        write_predictions(tmp_path / "p.json", [{"sample_id": "s0", "text": "", "segments": [
            {"label": "x", "image_index": 0, "mask": box(SIZES[0], 0, 0, 1, 1), "score": math.nan}]}])
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("name, where", [("trailing_garbage.json", "line 2 column 1"),
                                         ("trailing_garbage_pretty.json", "column 1")])
def test_trailing_data_after_the_document_is_called_that(name, where):
    with pytest.raises(PredictionsError) as caught:
        read_predictions(CORPUS / name)
    message = str(caught.value)
    assert "unexpected data after the end of the predictions document" in message and where in message
    assert "header" not in message  # was: "a JSON Lines header must not hold 'predictions'"


def test_json_lines_line_with_trailing_data():
    with pytest.raises(PredictionsError, match="line 2: not valid JSON: unexpected data after the end of the JSON "
                                               "value"):
        read_predictions(CORPUS / "jsonl_trailing_garbage.jsonl")


def test_lone_surrogates_are_rejected_before_any_tokenizer_sees_them(tmp_path):
    with pytest.raises(PredictionsError, match=r"sample 's0': field 'segments\[0\]\.label': not valid UTF-8 text: "
                                               r"lone surrogate U\+D800 at character 2"):
        read_predictions(CORPUS / "label_lone_surrogate.json")
    images = {"s0": [SIZES[0], SIZES[1]]}
    folder = tmp_path / "gcg"
    folder.mkdir()
    record = gcg_record("s0_IMAGE1", ["le\udc00g"], [box(SIZES[0], 0, 0, 2, 2)])
    (folder / "s0_IMAGE1.json").write_text(json.dumps(record))  # ensure_ascii writes the escape "\\udc00"
    with pytest.raises(PredictionsError, match=r"s0_IMAGE1.json: sample 's0_IMAGE1': field 'phrases\[0\]': not valid"):
        read_predictions(folder, "gcg", images)


def test_unknown_keys_warn_once_with_their_names(gt_file, tmp_path, minilm, capsys):
    rows = make_rows(1)
    predictions = oracle_predictions(rows)
    predictions[1]["answer"] = "typo for text"
    for prediction in predictions:
        for segment in prediction["segments"]:
            segment["lable"] = segment.pop("label")
            segment["label"] = ""
    predictions[2]["segments"][0]["masks"] = predictions[2]["segments"][0]["mask"]
    path = write_predictions(tmp_path / "p.json", predictions)
    read = read_predictions(path)
    assert read.warnings == [
        f"{path}: unknown prediction keys ignored: 'answer' (1 prediction, first in sample 's1'); a prediction "
        f"has sample_id, segments, text",
        f"{path}: unknown segment keys ignored: 'lable' (12 segments, first in sample 's0'), 'masks' (1 segment, "
        f"first in sample 's2'); a segment has image_index, label, mask, score"]
    assert read_predictions(write_predictions(tmp_path / "clean.json", oracle_predictions(rows))).warnings == []
    assert main([str(path), "--gt", str(gt_file)]) == 0
    err = capsys.readouterr().err
    assert err.count("unknown segment keys") == 1 and "'lable'" in err


def gcg_record(image_id, phrases, masks, caption="a caption"):
    return {"image_id": image_id, "caption": caption, "phrases": phrases, "pred_masks": masks}


def test_gcg_folder_per_image_and_per_sample(tmp_path):
    rows = make_rows(1)
    images = {row["sample_id"]: list(SIZES) for row in rows}
    a, b = box(SIZES[0], 0, 0, 5, 5), box(SIZES[1], 0, 0, 5, 5)
    (tmp_path / "s0_IMAGE1.json").write_text(json.dumps(gcg_record("s0_IMAGE1", ["the chair"], [a])))
    (tmp_path / "s0_IMAGE2.json").write_text(json.dumps({"s0_IMAGE2": gcg_record("s0_IMAGE2", ["chair", "leg"], [b])}))
    tagged = "<p> a chair </p> [SEG] (IMAGE2) [SEG] (IMAGE1) and <p> the leg </p> [SEG] (IMAGE1)"
    (tmp_path / "s1.json").write_text(json.dumps(gcg_record("s1", ["a chair", "the leg"], [b, a, a], tagged)))
    (tmp_path / "s2.json").write_text(json.dumps(gcg_record("s2", ["seat", "arm"], [a, b])))  # routed by size
    read = read_predictions(tmp_path, "gcg", images)
    assert read.by_sample["s0"]["segments"] == [{"label": "the chair", "image_index": 0, "mask": a},
                                                {"label": "chair", "image_index": 1, "mask": b}]
    assert read.mismatched == {"s0"}  # two phrases, one mask
    assert [(s["label"], s["image_index"]) for s in read.by_sample["s1"]["segments"]] == \
        [("a chair", 1), ("a chair", 0), ("the leg", 0)]
    assert [(s["label"], s["image_index"]) for s in read.by_sample["s2"]["segments"]] == [("seat", 0), ("arm", 1)]
    assert check_against_ground_truth(read, images) == []


def test_gcg_errors_name_the_file(tmp_path):
    images = {"s0": [SIZES[0], SIZES[0]]}
    mask = box(SIZES[0], 0, 0, 2, 2)
    (tmp_path / "s0.json").write_text(json.dumps(gcg_record("s0", ["leg"], [mask])))
    with pytest.raises(PredictionsError, match=r"s0\.json.*cannot route"):
        read_predictions(tmp_path, "gcg", images)
    (tmp_path / "s0.json").write_text(json.dumps(gcg_record("zz_IMAGE1", ["leg"], [mask])))
    with pytest.raises(PredictionsError, match="unknown sample id"):
        read_predictions(tmp_path, "gcg", images)
    (tmp_path / "s0.json").write_text(json.dumps(gcg_record("s0_IMAGE1", ["leg"], [{"size": [20, 30], "counts": "0"}])))
    with pytest.raises(PredictionsError, match=r"field 'pred_masks\[0\]'"):
        read_predictions(tmp_path, "gcg", images)


def mutated_rle(data) -> dict:
    h = data.draw(st.integers(1, 12))
    w = data.draw(st.integers(1, 12))
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))).reshape(h, w)
    rle = encode(mask)
    counts = rle["counts"]
    edit = data.draw(st.sampled_from(["none", "drop", "insert", "replace", "size", "random"]))
    if edit == "drop" and counts:
        i = data.draw(st.integers(0, len(counts) - 1))
        counts = counts[:i] + counts[i + 1:]
    elif edit == "insert":
        i = data.draw(st.integers(0, len(counts)))
        counts = counts[:i] + data.draw(st.characters(min_codepoint=40, max_codepoint=120)) + counts[i:]
    elif edit == "replace" and counts:
        i = data.draw(st.integers(0, len(counts) - 1))
        counts = counts[:i] + data.draw(st.characters(min_codepoint=40, max_codepoint=120)) + counts[i + 1:]
    elif edit == "size":
        h += 1
    elif edit == "random":
        counts = data.draw(st.text(alphabet=st.characters(min_codepoint=44, max_codepoint=115), max_size=12))
    return {"size": [h, w], "counts": counts}


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_bulk_rle_validation_agrees_with_validation_error(data):
    masks = [mutated_rle(data) for _ in range(data.draw(st.integers(1, 5)))]
    verdicts = [validation_error(m) is not None for m in masks]
    assert first_invalid(masks) == next((i for i, bad in enumerate(verdicts) if bad), None)


def test_bulk_rle_validation_on_real_sized_masks():
    rng = np.random.default_rng(0)
    masks = [encode(rng.random((60, 80)) < 0.3) for _ in range(50)]
    assert first_invalid(masks) is None
    masks[37] = dict(masks[37], counts=masks[37]["counts"][:-2])
    assert first_invalid(masks) == 37


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6) | st.sampled_from(["s0", "s1", "s2", PREDICTIONS_FORMAT, "test"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["format", "predictions", "sample_id", "text", "segments", "label", "image_index", "mask",
                         "score", "size", "counts", "split", "model", "x"]), children, max_size=5),
    max_leaves=12)


def near_valid(draw_json):
    """Predictions files whose structure is mostly right, so the fuzzing reaches the deeper checks."""
    mask = st.one_of(st.just(box(SIZES[0], 0, 0, 3, 3)), st.just(box(SIZES[1], 0, 0, 3, 3)),
                     st.fixed_dictionaries({"size": st.lists(st.integers(-1, 30), max_size=3),
                                            "counts": st.text(max_size=5)}), draw_json)
    segment = st.fixed_dictionaries({"label": st.one_of(st.text(max_size=8), draw_json),
                                     "image_index": st.one_of(st.integers(-1, 2), draw_json), "mask": mask},
                                    optional={"score": st.one_of(st.floats(), draw_json)})
    prediction = st.fixed_dictionaries({"sample_id": st.sampled_from(["s0", "s1", "s2", "s9"]),
                                        "text": st.one_of(st.just(""), st.text(max_size=8)),
                                        "segments": st.lists(segment, max_size=3)})
    return st.fixed_dictionaries({"format": st.sampled_from([PREDICTIONS_FORMAT, "other"]),
                                  "predictions": st.lists(prediction, max_size=3)},
                                 optional={"split": st.sampled_from(["test", "val"])})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(content=st.one_of(JSON, near_valid(JSON)), as_lines=st.booleans())
def test_random_json_never_raises(content, as_lines, gt_file, minilm, capsys):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("p.jsonl" if as_lines else "p.json")
        if as_lines and isinstance(content, dict) and isinstance(content.get("predictions"), list):
            header = {k: v for k, v in content.items() if k != "predictions"}
            path.write_text("\n".join(json.dumps(x) for x in [header, *content["predictions"]]))
        else:
            path.write_text(json.dumps(content))
        out = Path(folder) / "out.json"
        code = main([str(path), "--gt", str(gt_file), "--json", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert code in (0, 2)
    if code == 2:
        assert captured.err.startswith("error: ")


def test_a_large_file_is_checked_in_as_many_workers_as_asked(tmp_path, monkeypatch):
    import mixedparts.predictions as predictions_module

    rle = encode(np.eye(4, dtype=bool))
    items = [{"sample_id": f"s{i}", "text": "<p> a </p> [SEG]", "segments": [
        {"label": "a", "image_index": 0, "mask": rle}]} for i in range(40)]
    items[29]["segments"][0]["mask"] = {"size": [4, 4], "counts": rle["counts"][:-1]}  # truncated
    path = write_predictions(tmp_path / "p.json", items)
    monkeypatch.setattr(predictions_module, "PARALLEL_FROM", 0)
    forked = []
    real = predictions_module.fork_map
    monkeypatch.setattr(predictions_module, "fork_map", lambda *args: forked.append(args[3]) or real(*args))
    errors = []
    for workers in (1, 2):
        with pytest.raises(PredictionsError) as caught:
            read_predictions(path, workers=workers)
        errors.append(str(caught.value))
    assert forked == [1, 2]  # workers=1 (the leaderboard's default) runs its one chunk here, forking nothing
    assert errors[0] == errors[1] and "predictions[29]" in errors[0] and "segments[0].mask" in errors[0]


def _chunked_file(tmp_path, damage: str) -> Path:
    rle = encode(np.eye(4, dtype=bool))
    items = [{"sample_id": f"s{i}", "text": "<p> a </p> [SEG]" if i % 7 else "[SEG] [SEG]", "segments": [
        {"label": "a", "image_index": 0, "mask": dict(rle)}]} for i in range(40)]
    items[33]["segments"][0]["lable"] = "typo"
    items[5]["segments"][0]["lable"] = "typo"
    items[8]["extra"] = 1
    if "mask" in damage:
        items[4]["segments"][0]["mask"] = {"size": [4, 4], "counts": rle["counts"][:-1]}
    if "structure" in damage:
        items[31]["segments"][0]["image_index"] = -1
        items[12]["text"] = 7
    if "duplicate" in damage:
        items[10]["sample_id"] = "s3"
    path = tmp_path / f"{damage}.json"
    path.write_text(json.dumps({"format": "mixedparts-predictions/1", "predictions": items}))
    return path


@pytest.mark.parametrize("damage", ["none", "mask", "mask+structure", "mask+structure+duplicate"])
def test_chunked_checks_report_what_one_pass_reports(tmp_path, monkeypatch, damage):
    """Each chunk finds its own first problem; the error, warnings and mismatches are those of one pass in
    file order (structure and duplicate ids before masks, the earliest first)."""
    import mixedparts.predictions as predictions_module

    path = _chunked_file(tmp_path, damage)
    outcomes = []
    for smallest, workers in ((10**9, 1), (0, 1), (0, 2), (0, 3)):
        monkeypatch.setattr(predictions_module, "PARALLEL_FROM", smallest)
        try:
            read = read_predictions(path, workers=workers)
            outcomes.append((read.warnings, sorted(read.mismatched), list(read.by_sample)))
        except PredictionsError as error:
            outcomes.append(str(error))
    assert all(outcome == outcomes[0] for outcome in outcomes), outcomes
    expected = {"none": None, "mask": "predictions[4]", "mask+structure": "predictions[12]",
                "mask+structure+duplicate": "predictions[10]"}[damage]
    if expected is None:
        assert "'lable' (2 segments, first in sample 's5')" in outcomes[0][0][1]
        assert outcomes[0][1] == sorted(f"s{i}" for i in range(40) if i % 7 == 0)
    else:
        assert expected in outcomes[0]
