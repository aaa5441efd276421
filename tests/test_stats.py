"""``mixedparts stats``: counts and distributions computed from the shards agree with the rows; the histogram PNG."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from PIL import Image

from mixedparts.build.options import BuildOptions
from mixedparts.cli import main
from mixedparts.metrics.ground_truth import read_dataset_split
from mixedparts.schema import SAMPLE_FIELDS
from mixedparts.stats import compute_stats, draw_histograms, format_stats


@pytest.fixture(scope="module")
def built(build_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    build_tiny(root / "dataset", BuildOptions(seed=1, shard_rows=100), sources_seed=1)
    rows = {split: read_dataset_split(root / "dataset", split, columns=SAMPLE_FIELDS)
            for split in ("train", "val", "test")}
    return SimpleNamespace(root=root, data=root / "dataset", rows=rows)


def test_stats_agree_with_the_rows(built):
    stats = compute_stats(built.data, top=500)
    manifest = json.loads((built.data / "manifest.json").read_text())
    assert stats["samples"] == manifest["splits"]
    assert stats["counts"] == {split: {source: dict(tasks) for source, tasks in per.items()}
                               for split, per in manifest["counts"].items()}
    rows = [row for split_rows in built.rows.values() for row in split_rows]
    for task, summary in stats["masks_per_sample"].items():
        lengths = [len(r["segments"]) for r in rows if r["task"] == task]
        assert summary["histogram"] == dict(sorted(Counter(lengths).items()))
        assert summary["mean"] == pytest.approx(np.mean(lengths))
        assert summary["median"] == int(np.percentile(lengths, 50, method="lower"))
        assert (summary["min"], summary["max"], summary["samples"]) == (min(lengths), max(lengths), len(lengths))
    assert stats["images_per_sample"] == {2: len(rows)}
    objects = Counter(s["label"] for r in rows for s in r["segments"] if s["kind"] == "object")
    parts = Counter(s["label"] for r in rows for s in r["segments"] if s["kind"] != "object")
    assert dict(stats["top_object_labels"]) == dict(objects) and dict(stats["top_part_labels"]) == dict(parts)
    assert dict(stats["top_categories"]) == dict(Counter(o["category"] for r in rows for o in r["objects"]))
    only_val = compute_stats(built.data, ["val"])
    assert list(only_val["samples"]) == ["val"] and only_val["counts"]["val"] == stats["counts"]["val"]


def test_stats_of_a_stream_match(built, monkeypatch):
    """A Hub dataset is streamed through datasets: the same numbers (the stream is faked by the local folder)."""
    local = compute_stats(built.data, top=10)
    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: real_load(str(built.data), **kw))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline, an uncached Hub id is refused up front
    hub = compute_stats("someone/mixedparts", top=10)
    assert hub["dataset"] == "someone/mixedparts"
    for key in ("samples", "counts", "masks_per_sample", "images_per_sample", "top_object_labels", "top_part_labels"):
        assert hub[key] == local[key]


def test_stats_command(built, tmp_path, capsys):
    picture = tmp_path / "hist.png"
    assert main(["stats", "--data", str(built.data), "--histogram", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "masks per sample" in out and "most frequent part labels" in out and str(picture) in out
    for split, rows in built.rows.items():
        assert f"{len(rows):,}" in out
    with Image.open(picture) as image:
        assert image.width == 1100 and 500 < image.height < 1200
        pixels = np.asarray(image.convert("RGB"))
    # The task colours of the bars are there.
    for colour in ((0, 130, 200), (60, 180, 75), (230, 25, 75)):
        assert np.all(pixels == colour, axis=2).sum() > 50

    assert main(["stats", "--data", str(built.data), "--json", "--histogram", "", "--split", "test"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert list(stats["samples"]) == ["test"]
    assert "test" in format_stats(stats)
    assert main(["stats", "--data", str(tmp_path / "nothing")]) == 2


def test_histogram_without_parts():
    stats = {"samples": {"test": 2}, "counts": {}, "masks_per_sample": {
        "common_object": {"samples": 2, "min": 2, "max": 2, "mean": 2.0, "median": 2, "histogram": {2: 2}}},
        "top_part_labels": [], "top_object_labels": [("chair", 4)]}
    image = draw_histograms(stats)
    assert image.size[0] == 1100
