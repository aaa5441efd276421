"""Reading the ground truth and the predictions at once (``mixedparts.metrics.inputs``) gives what
reading them one after the other gives: the same columns and predictions, the same first error."""

from __future__ import annotations

import gc
import json
import threading

import numpy as np
import pytest

from metrics_helpers import make_rows, oracle_predictions, write_parquet_dataset
from mixedparts.metrics import inputs
from mixedparts.metrics.ground_truth import GroundTruthError, load_ground_truth
from mixedparts.predictions import PredictionsError, read_predictions, write_predictions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rows = make_rows(40, seed=5)
    folder = write_parquet_dataset(rows, tmp_path_factory.mktemp("inputs") / "dataset")
    return rows, folder


def test_same_ground_truth_and_predictions_as_one_after_the_other(dataset, tmp_path):
    rows, folder = dataset
    predictions = oracle_predictions(rows)
    predictions[3]["segments"][0]["score"] = 0.5
    path = write_predictions(tmp_path / "p.json", predictions, model="m", split="test")
    truth, read = inputs.read_inputs(folder, "test", None, path, workers=2)
    alone_truth = load_ground_truth(folder, "test")
    alone = read_predictions(path, images=alone_truth.image_sizes(), workers=2)
    assert read.by_sample == alone.by_sample and (read.model, read.split, read.format) == ("m", "test", "json")
    assert truth.image_sizes() == alone_truth.image_sizes()
    for name in ("tasks", "mask_heights", "mask_widths"):
        assert np.array_equal(getattr(truth.columns, name), getattr(alone_truth.columns, name))
    assert truth.columns.mask_counts.equals(alone_truth.columns.mask_counts)


def test_the_ground_truth_is_read_while_the_predictions_are_parsed(dataset, tmp_path, monkeypatch):
    rows, folder = dataset
    path = write_predictions(tmp_path / "p.json", oracle_predictions(rows))
    seen = {}
    real_load, real_loads = inputs.load_ground_truth, json.loads

    def load(*args):
        seen["ground truth thread"] = threading.current_thread() is not threading.main_thread()
        return real_load(*args)

    def loads(text, *args, **kwargs):
        seen["gc during parse"] = gc.isenabled()
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(inputs, "load_ground_truth", load)
    monkeypatch.setattr(json, "loads", loads)
    gc.enable()
    inputs.read_inputs(folder, "test", None, path)
    # the pause spans both threads, and ends with them
    assert seen == {"ground truth thread": True, "gc during parse": False} and gc.isenabled()


def test_the_ground_truths_error_comes_first(dataset, tmp_path):
    rows, folder = dataset
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mixedparts-predictions/1", "predictions": [')
    with pytest.raises(GroundTruthError, match="no split 'val'"):
        inputs.read_inputs(folder, "val", None, bad)
    with pytest.raises(PredictionsError, match="not valid JSON"):
        inputs.read_inputs(folder, "test", None, bad)
    good = write_predictions(tmp_path / "p.json", oracle_predictions(rows))
    with pytest.raises(GroundTruthError, match="folder not found"):
        inputs.read_inputs(tmp_path / "nowhere", "test", None, good)
    broken = oracle_predictions(rows)
    broken[2]["segments"][0]["mask"] = {"size": [4, 4], "counts": "!!"}
    bad_mask = tmp_path / "b.json"
    bad_mask.write_text(json.dumps({"format": "mixedparts-predictions/1", "predictions": broken}))
    with pytest.raises(PredictionsError, match=r"predictions\[2\].*segments\[0\]\.mask"):
        inputs.read_inputs(folder, "test", None, bad_mask)


def test_a_gcg_folder_is_read_with_the_ground_truths_image_sizes(dataset, tmp_path):
    rows, folder = dataset
    gcg = tmp_path / "gcg"
    gcg.mkdir()
    for row in rows:  # GLaMM's layout: one file per image, named <sample_id>_IMAGE<k>
        for k in range(len(row["images"])):
            segments = [s for s in row["segments"] if s["image_index"] == k]
            record = {"image_id": f"{row['sample_id']}_IMAGE{k + 1}", "caption": "",
                      "phrases": [s["label"] for s in segments], "pred_masks": [s["mask"] for s in segments]}
            (gcg / f"{record['image_id']}.json").write_text(json.dumps(record))
    truth, read = inputs.read_inputs(folder, "test", None, gcg)
    assert read.format == "gcg" and len(truth) == len(rows)
    assert sorted(read.by_sample) == sorted(row["sample_id"] for row in rows)
