"""The ground truth as columns (what scoring reads) against the rows it comes from.

Reading a dataset folder keeps its Parquet tables and checks them in bulk; units are routed on
arrays. Both must give exactly what the row-by-row definitions give: the same columns as from the
rows, the same messages for a damaged split, and the same units, label ids and label order as the
routing loop below (the definition the columnar ``build_units`` replaced).
"""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metrics_helpers import make_rows, minilm, oracle_predictions, write_parquet_dataset  # noqa: F401 (a fixture)
from mixedparts.metrics.ground_truth import (GroundTruth, GroundTruthColumns, GroundTruthError, _check_rows,
                                            load_ground_truth)
from mixedparts.errors import MixedPartsError
from mixedparts.metrics.options import EvalOptions
from mixedparts.metrics.semantic import LabelTable
from mixedparts.metrics.units import PART_TASKS, build_units
from mixedparts.schema import SAMPLE_FEATURES


def awkward_rows() -> list[dict]:
    """Rows whose order of first label occurrences interleaves GT and predictions, with duplicate and
    out-of-range objects and a sample without GT segments."""
    rows = make_rows(4, seed=3)
    rows[1]["objects"].append({"image_index": 0, "category": "stool"})  # a later object of the image wins
    rows[2]["objects"].append({"image_index": 5, "category": "ghost"})  # no such image: ignored
    rows[3]["objects"] = []
    rows[4]["segments"] = []
    for number, row in enumerate(rows):
        for j, segment in enumerate(row["segments"]):
            if (number + j) % 4 == 0:
                segment["label"] = f"{segment['label']} {number % 3}"
    return rows


def awkward_predictions(rows: list[dict]) -> dict[str, dict]:
    predictions = oracle_predictions(rows)
    rng = np.random.default_rng(1)
    for number, prediction in enumerate(predictions):
        for j, segment in enumerate(prediction["segments"]):
            segment["score"] = float(rng.choice([0.5, 1.0, 0.25]))
            if j % 3 == 1:
                segment["label"] = f"The {segment['label'].split(' ', 1)[1].upper()}"  # new raw, same text
            if (number + j) % 5 == 2:
                segment["label"] = f"a new label {number}"  # met first in a prediction
        prediction["segments"].reverse()  # per image, the file order differs from the GT's
    del predictions[5]  # a sample without a prediction
    return {p["sample_id"]: p for p in predictions}


def write_two_shards(rows: list[dict], folder):
    (folder / "data").mkdir(parents=True)
    half = len(rows) // 2
    for index, part in enumerate((rows[:half], rows[half:])):
        table = pa.Table.from_pylist(part, schema=SAMPLE_FEATURES.arrow_schema)
        pq.write_table(table, folder / "data" / f"test-{index:05d}-of-00002.parquet", row_group_size=3)
    return folder


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.dtype, value.tolist()
    return value if isinstance(value, list) else value.to_pylist()


def _masks(columns: GroundTruthColumns) -> list[dict]:
    """Per segment its RLE dict, whichever way the columns hold them."""
    if columns.mask_dicts is not None:
        return columns.mask_dicts
    return [{"size": [h, w], "counts": c} for h, w, c in zip(columns.mask_heights.tolist(),
                                                           columns.mask_widths.tolist(),
                                                           columns.mask_counts.to_pylist())]


def assert_same_columns(a: GroundTruthColumns, b: GroundTruthColumns) -> None:
    mask_fields = ("mask_heights", "mask_widths", "mask_counts", "mask_dicts")
    for name, value in vars(a).items():
        if name not in mask_fields:
            assert _plain(value) == _plain(getattr(b, name)), name
    assert _masks(a) == _masks(b)


def test_columns_of_a_dataset_folder_equal_the_columns_of_its_rows(tmp_path):
    rows = awkward_rows()
    truth = load_ground_truth(write_two_shards(rows, tmp_path / "ds"), "test")
    assert len(truth) == len(rows)
    assert_same_columns(truth.columns, GroundTruth(rows, "test", "<rows>").columns)
    assert truth.rows == [{key: row[key] for key in truth.rows[0]} for row in rows]  # made on demand, same rows
    assert truth.image_sizes() == GroundTruth(rows, "test", "<rows>").image_sizes()


def reference_units(rows, predictions, table, options, recall_table):
    """The routing loop: row by row, GT before predictions, labels interned as they are met."""
    gt_masks, gt_labels, predicted_masks, predicted_labels, scores, category = [], [], [], [], [], []
    gt_recall, predicted_recall = [], []
    for row in rows:
        segments = row["segments"]
        if options.gt_masks == "parts-only" and row["task"] in PART_TASKS:
            segments = [s for s in segments if s["kind"] != "object"]
        guesses = predictions[row["sample_id"]]["segments"] if row["sample_id"] in predictions else []
        count = len(row["images"])
        routed = {}
        for side, items, predicted in (("gt", segments, False), ("predicted", guesses, True)):
            per_image = [[] for _ in range(count)]
            for s in items:
                per_image[s["image_index"]].append(
                    (s["mask"], table.intern(s["label"], predicted), recall_table.intern(s["label"], predicted),
                     float(s.get("score", 1.0))))
            routed[side] = per_image
        objects = {o["image_index"]: o["category"] for o in row["objects"]}
        for k in range(count):
            gt, guess = routed["gt"][k], routed["predicted"][k]
            gt_masks.append([m for m, *_ in gt])
            gt_labels.append([i for _, i, _, _ in gt])
            gt_recall.append([r for _, _, r, _ in gt])
            predicted_masks.append([m for m, *_ in guess])
            predicted_labels.append([i for _, i, _, _ in guess])
            predicted_recall.append([r for _, _, r, _ in guess])
            scores.append([s if options.ap_scores == "predicted" else 1.0 for *_, s in guess])
            category.append(objects.get(k, "?"))
    return dict(gt_masks=gt_masks, gt_labels=gt_labels, gt_recall_labels=gt_recall, predicted_masks=predicted_masks,
                predicted_labels=predicted_labels, predicted_recall_labels=predicted_recall, scores=scores,
                category=category)


@pytest.mark.parametrize("options", [EvalOptions(), EvalOptions(gt_masks="parts-only", ap_scores="predicted"),
                                     EvalOptions(labels="osprey", fold_plurals=True)],
                         ids=["default", "parts-only+predicted-scores", "osprey+plurals"])
@pytest.mark.parametrize("from_folder", [True, False], ids=["folder", "rows"])
def test_units_equal_the_row_by_row_routing(tmp_path, options, from_folder):
    rows = awkward_rows()
    predictions = awkward_predictions(rows)
    truth = load_ground_truth(write_two_shards(rows, tmp_path / "ds"), "test") if from_folder \
        else GroundTruth(rows, "test", "<rows>")
    table, recall_table = LabelTable(options.labels, options.fold_plurals), LabelTable("none")
    units = build_units(truth.columns, predictions, table, options, recall_table)
    expected_table, expected_recall = LabelTable(options.labels, options.fold_plurals), LabelTable("none")
    expected = reference_units(rows, predictions, expected_table, options, expected_recall)

    assert table.texts == expected_table.texts and recall_table.texts == expected_recall.texts  # the embedding order
    assert len(units) == len(expected["category"]) == 2 * len(rows)
    assert units.category == expected["category"]
    assert list(units.gt_masks) == expected["gt_masks"]
    assert [units.gt_masks[u] for u in range(len(units))] == expected["gt_masks"]
    assert units.gt_masks[3:7] == expected["gt_masks"][3:7] and units.gt_masks[-1] == expected["gt_masks"][-1]
    assert units.gt_masks[5:5] == []
    for name in ("gt_labels", "predicted_labels", "gt_recall_labels", "predicted_recall_labels"):
        assert [list(ids) for ids in getattr(units, name)] == expected[name], name
    assert units.predicted_masks == expected["predicted_masks"]
    assert units.scores == expected["scores"]
    assert units.gt_counts().tolist() == [len(m) for m in expected["gt_masks"]]


def damaged(rows: list[dict], how: str) -> list[dict]:
    rows = copy.deepcopy(rows)
    if how == "duplicate id":
        rows[4]["sample_id"] = rows[2]["sample_id"]
    elif how == "other split":
        rows[3]["split"] = "val"
    elif how == "unknown task":
        rows[5]["task"] = "common_things"
    elif how == "unknown kind":
        rows[2]["segments"][1]["kind"] = "part"
    elif how == "image index out of range":
        rows[6]["segments"][0]["image_index"] = 2
    elif how == "negative image index":
        rows[1]["segments"][0]["image_index"] = -1
    return rows


@pytest.mark.parametrize("how", ["duplicate id", "other split", "unknown task", "unknown kind",
                                 "image index out of range", "negative image index"])
def test_a_damaged_split_fails_with_the_row_checks_message(tmp_path, how):
    rows = damaged(make_rows(3), how)
    folder = write_parquet_dataset(rows, tmp_path / "ds")
    with pytest.raises(GroundTruthError) as expected:
        _check_rows(rows, str(folder), "test")
    with pytest.raises(GroundTruthError) as raised:
        load_ground_truth(folder, "test")
    assert str(raised.value) == str(expected.value)


def test_nulls_the_row_checks_do_not_look_at_are_refused_too(tmp_path):
    rows = make_rows(3)
    rows[2]["segments"][1]["mask"]["counts"] = None
    folder = write_parquet_dataset(rows, tmp_path / "ds")
    with pytest.raises(GroundTruthError, match="null values in the ground truth's mask counts"):
        load_ground_truth(folder, "test")


def test_evaluating_a_folder_or_its_rows_gives_the_same_result(tmp_path, minilm):
    from mixedparts.metrics.evaluate import evaluate

    rows = awkward_rows()
    predictions = list(awkward_predictions(rows).values())
    folder = write_parquet_dataset(rows, tmp_path / "ds")
    for options in (EvalOptions(), EvalOptions(gt_masks="parts-only", label_pairs="recall")):
        from_folder = evaluate(load_ground_truth(folder, "test"), predictions, options, embedder=minilm,
                               keep_details=True).to_dict()
        from_rows = evaluate(rows, predictions, options, embedder=minilm).to_dict()
        assert from_folder.pop("ground_truth") == str(folder) and from_rows.pop("ground_truth") == "<rows>"
        assert from_folder == from_rows


def _widened(data_type):
    """The type with 64-bit offsets and integers, as other Arrow writers (or ``datasets``) may hand them."""
    if pa.types.is_string(data_type):
        return pa.large_string()
    if pa.types.is_list(data_type):
        return pa.large_list(_widened(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct([pa.field(f.name, _widened(f.type)) for f in data_type])
    return pa.int64() if pa.types.is_int32(data_type) else data_type


def test_columns_of_wider_arrow_types_and_of_an_empty_table(tmp_path):
    from mixedparts.metrics.evaluate import evaluate
    from mixedparts.metrics.ground_truth import SCORING_FIELDS

    rows = awkward_rows()
    table = pa.Table.from_pylist(rows, schema=SAMPLE_FEATURES.arrow_schema).select(list(SCORING_FIELDS))
    wide = table.cast(pa.schema([pa.field(f.name, _widened(f.type)) for f in table.schema]))
    assert_same_columns(GroundTruthColumns.from_tables([wide, wide.slice(0, 0)], "<wide>", "test"),
                        GroundTruth(rows, "test", "<rows>").columns)

    empty = GroundTruthColumns.from_tables([table.slice(0, 0)], "<empty>", "test")
    assert len(empty) == 0 and empty.image_offsets.tolist() == [0]
    folder = write_parquet_dataset([], tmp_path / "empty")
    with pytest.raises(MixedPartsError, match="holds no samples"):
        evaluate(load_ground_truth(folder, "test"), [])
