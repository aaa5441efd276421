"""Multi-Image VLPart / PartGLEE recipe (docs/baselines.md) driven by a detector stand-in with known instances."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from baselines.cli import main
from baselines.part_detector import (Instance, SavedDetections, co_segment, merge, run_detector,
                                    vocabulary_from_rows)
from mixedparts import markup, masks
from mixedparts.build.options import BuildOptions
from mixedparts.metrics.cli import main as eval_main
from mixedparts.metrics.ground_truth import read_dataset_split
from mixedparts.predictions import read_predictions
from mixedparts.schema import SAMPLE_FIELDS

H, W = 6, 8


def box(y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def row(task: str) -> dict:
    return {"sample_id": f"s-{task}", "task": task, "source": "synthetic",
            "images": [{"image_id": "a", "file_name": "a.jpg", "height": H, "width": W},
                       {"image_id": "b", "file_name": "b.jpg", "height": H, "width": W}],
            "objects": [{"image_index": 0, "category": "dog"}, {"image_index": 1, "category": "snake"}],
            "segments": []}


class StandIn:
    """Known instances per image id; records what it was asked."""

    def __init__(self, by_image):
        self.by_image = by_image
        self.calls = []

    def detect(self, image, image_info, vocabulary):
        self.calls.append((image_info["image_id"], tuple(vocabulary)))
        return self.by_image[image_info["image_id"]]


DETECTIONS = {
    "a": [Instance("dog", 0.9, box(0, 6, 0, 8)),
          Instance("cat", 0.75, box(0, 2, 0, 2)),                 # a weaker object guess
          Instance("dog:head", 0.8, box(0, 2, 0, 3)),
          Instance("dog:head", 0.72, box(0, 2, 5, 8)),            # a second head instance: merged
          Instance("dog:leg", 0.95, box(4, 6, 0, 2)),
          Instance("dog:tail", 0.5, box(3, 4, 6, 8))],            # below the threshold: dropped
    "b": [Instance("snake", 0.85, box(1, 5, 1, 7)),
          Instance("cat", 0.71, box(2, 3, 2, 3)),
          Instance("snake head", 0.9, box(1, 2, 1, 3)),           # a prompt form, mapped to snake:head
          Instance("snake:body", 0.88, box(2, 5, 1, 7))],
}
VOCABULARY = ["cat", "dog", "snake", "dog:head", "dog:leg", "dog:tail", "snake:body", "snake:head"]


def decoded(prediction) -> list[tuple[str, int, np.ndarray]]:
    return [(s["label"], s["image_index"], masks.decode(s["mask"]).astype(bool)) for s in prediction["segments"]]


def check_same(prediction, expected):
    got = decoded(prediction)
    assert [(label, i) for label, i, _ in got] == [(label, i) for label, i, _ in expected]
    for (_, _, mask), (_, _, want) in zip(got, expected):
        assert (mask == want).all()
    assert markup.seg_image_indices(prediction["text"]) == [i for _, i, _ in expected]


def detections():
    return [DETECTIONS["a"], DETECTIONS["b"]]


def test_common_object_is_the_object_label_found_in_every_image():
    prediction = co_segment(row("common_object"), detections(), 0.7, VOCABULARY)
    # "cat" (0.75 / 0.71) is the only object name in both images; dog and snake are in one each
    check_same(prediction, [("cat", 0, box(0, 2, 0, 2)), ("cat", 1, box(2, 3, 2, 3))])
    assert prediction["text"] == "The common object is <p> a cat </p> [SEG] (IMAGE1) [SEG] (IMAGE2)."


def test_common_parts_merge_same_label_masks_and_compare_bare_part_names():
    prediction = co_segment(row("common_parts"), detections(), 0.7, VOCABULARY)
    head_a = box(0, 2, 0, 3) | box(0, 2, 5, 8)
    check_same(prediction, [("dog", 0, box(0, 6, 0, 8)), ("snake", 1, box(1, 5, 1, 7)),
                            ("head", 0, head_a), ("head", 1, box(1, 2, 1, 3))])
    assert [s["score"] for s in prediction["segments"]][2:] == [pytest.approx(0.8)] * 2


def test_unique_parts_are_the_part_names_of_exactly_one_image():
    prediction = co_segment(row("unique_parts"), detections(), 0.7, VOCABULARY)
    # leg (0.95) only in image 1, body (0.88) only in image 2; tail is under the threshold
    check_same(prediction, [("dog", 0, box(0, 6, 0, 8)), ("snake", 1, box(1, 5, 1, 7)),
                            ("leg", 0, box(4, 6, 0, 2)), ("body", 1, box(2, 5, 1, 7))])
    lowered = co_segment(row("unique_parts"), detections(), 0.4, VOCABULARY)
    assert ("tail", 0) in [(s["label"], s["image_index"]) for s in lowered["segments"]]


def test_nothing_found_gives_a_valid_empty_answer():
    prediction = co_segment(row("common_parts"), [[], []], 0.7, VOCABULARY)
    assert prediction["segments"] == [] and markup.seg_count(prediction["text"]) == 0


def test_run_detector_asks_once_per_image_with_the_vocabulary():
    stand_in = StandIn(DETECTIONS)
    rows = [row("common_parts"), row("unique_parts")]
    predictions = run_detector(stand_in, rows, images=None, vocabulary=VOCABULARY, threshold=0.7,
                               needs_pixels=False)
    assert [c[0] for c in stand_in.calls] == ["a", "b"]
    assert all(c[1] == tuple(VOCABULARY) for c in stand_in.calls)
    assert [p["sample_id"] for p in predictions] == ["s-common_parts", "s-unique_parts"]


def test_vocabulary_has_objects_and_object_part_names():
    r = row("common_parts")
    r["segments"] = [{"label": "dog", "kind": "object", "image_index": 0},
                     {"label": "head", "kind": "common_part", "image_index": 0},
                     {"label": "head", "kind": "common_part", "image_index": 1}]
    assert vocabulary_from_rows([r]) == ["dog", "snake", "dog:head", "snake:head"]


def test_saved_coco_results_and_torch_instances_read_the_same_instances(tmp_path):
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(VOCABULARY)]
    index = {name: i for i, name in enumerate(VOCABULARY)}
    results, saved = [], {}
    for image_id, instances in DETECTIONS.items():
        keep = [x for x in instances if x.label in index]
        for x in keep:
            results.append({"image_id": image_id, "category_id": index[x.label] + 1, "score": x.score,
                            "segmentation": masks.encode(x.mask)})
        saved[image_id] = {"pred_classes": torch.tensor([index[x.label] for x in keep]),
                           "scores": torch.tensor([x.score for x in keep], dtype=torch.float64),
                           "pred_masks": torch.from_numpy(np.stack([x.mask for x in keep]))}
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "categories.json").write_text(json.dumps({"categories": categories}))
    torch.save({**saved, "__vocabulary__": VOCABULARY}, tmp_path / "instances.pth")
    from_json = SavedDetections(tmp_path / "results.json", tmp_path / "categories.json")
    from_torch = SavedDetections(tmp_path / "instances.pth")
    for r in (row("common_object"), row("common_parts"), row("unique_parts")):
        expected = co_segment(r, [[x for x in DETECTIONS[k] if x.label in index] for k in "ab"], 0.7, VOCABULARY)
        for reader in (from_json, from_torch):
            got = co_segment(r, [reader.detect(None, info, VOCABULARY) for info in r["images"]], 0.7, VOCABULARY)
            assert got == expected
    with pytest.raises(Exception, match="--categories"):
        SavedDetections(tmp_path / "results.json")


@pytest.fixture(scope="module")
def dataset(build_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("detector")
    build_tiny(root / "dataset", BuildOptions(max_samples_per_split=30), sources_seed=1)
    return root / "dataset"


def test_vlpart_cli_with_saved_ground_truth_object_detections(dataset, tmp_path):
    """Detections = every true object mask and category of each image: the true common object comes out exact."""
    rows = read_dataset_split(dataset, "test", columns=SAMPLE_FIELDS)
    names, found = {}, {}  # image id -> {(category, counts): result}
    for r in rows:
        for segment in r["segments"]:
            if segment["kind"] == "object":
                key = r["images"][segment["image_index"]]["image_id"]
                category = names.setdefault(segment["label"], len(names) + 1)
                found.setdefault(key, {})[(segment["label"], segment["mask"]["counts"])] = {
                    "image_id": key, "category_id": category, "score": 0.9, "segmentation": segment["mask"]}
    results = [result for per_image in found.values() for result in per_image.values()]
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    out = tmp_path / "vlpart.json"
    assert main(["vlpart", "--data", str(dataset), "--out", str(out), "--detections", str(tmp_path / "results.json"),
                 "--categories", str(tmp_path / "names.txt")]) == 0
    predictions = read_predictions(out)
    assert len(predictions.by_sample) == len(rows) and not predictions.mismatched
    checked = 0
    for r in rows:
        if r["task"] != "common_object":
            continue
        (label,) = {s["label"] for s in r["segments"]}
        single = all(sum(1 for (name, _) in found[image["image_id"]] if name == label) == 1 for image in r["images"])
        if single:
            got = [(s["image_index"], s["mask"]) for s in predictions.by_sample[r["sample_id"]]["segments"]
                   if s["label"] == label]
            assert got == [(s["image_index"], s["mask"]) for s in r["segments"]]
            checked += 1
    assert checked
    assert eval_main([str(out), "--data", str(dataset), "--split", "test", "--json", str(tmp_path / "e.json")]) == 0


def two_sources_row() -> dict:
    """Image 1 of PartImageNet's test split beside image 1 of ADE20K-Part-234's validation split."""
    return {"sample_id": "s-two", "task": "common_parts", "source": "mixed",
            "images": [{"image_id": "partimagenet:test:1", "file_name": "n02085620_1.JPEG", "height": H, "width": W},
                       {"image_id": "ade20k_part234:validation:1", "file_name": "ADE_val_00000001.jpg",
                        "height": H, "width": W}],
            "objects": [{"image_index": 0, "category": "dog"}, {"image_index": 1, "category": "dog"}],
            "segments": []}


def test_saved_detections_are_looked_up_by_their_source_qualified_image_id(tmp_path):
    """A COCO results file of PartImageNet's test split, numbered as PartImageNet numbers its images: its image 1
    is not ADE20K's image 1."""
    (tmp_path / "categories.txt").write_text("dog\ndog:head\n")
    results = [{"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": masks.encode(box(0, 6, 0, 8))},
               {"image_id": 1, "category_id": 2, "score": 0.9, "segmentation": masks.encode(box(0, 2, 0, 3))}]
    (tmp_path / "results.json").write_text(json.dumps(results))
    r = two_sources_row()
    with pytest.raises(Exception, match="--detections-source"):  # a bare number names no image by itself
        SavedDetections(tmp_path / "results.json", tmp_path / "categories.txt")
    saved = SavedDetections(tmp_path / "results.json", tmp_path / "categories.txt", source="partimagenet:test")
    found = [saved.detect(None, info, ["dog", "dog:head"]) for info in r["images"]]
    assert [len(f) for f in found] == [2, 0]
    prediction = co_segment(r, found, 0.7, ["dog", "dog:head"])
    assert [(s["label"], s["image_index"]) for s in prediction["segments"]] == [("dog", 0)]  # no common head
    saved.check_matched()
    other = SavedDetections(tmp_path / "results.json", tmp_path / "categories.txt", source="paco_lvis:test")
    for info in r["images"]:
        assert other.detect(None, info, ["dog"]) == []
    with pytest.raises(Exception, match="none of its 1 images"):
        other.check_matched()


def test_partimagenet_labels_without_a_colon_are_parts():
    vocabulary = ["quadruped", "quadruped:head", "quadruped:tail"]
    objects, parts = merge([Instance("Quadruped Head", 0.9, box(0, 2, 0, 2)),
                            Instance("Quadruped Foot", 0.9, box(4, 6, 0, 2)),
                            Instance("Car Side Mirror", 0.9, box(0, 1, 6, 8)),
                            Instance("quadruped", 0.9, box(0, 6, 0, 8))], 0.7, vocabulary)
    assert sorted(objects) == ["quadruped"]
    assert sorted(parts) == ["foot", "head", "side mirror"]


def test_coco_categories_with_a_supercategory_name_parts(tmp_path):
    """PartImageNet's own categories file: {"name": "Quadruped Head", "supercategory": "Quadruped"}."""
    categories = [{"id": 1, "name": "Quadruped Head", "supercategory": "Quadruped"},
                  {"id": 2, "name": "Car Tier", "supercategory": "Car"}]
    results = [{"image_id": "partimagenet:test:1", "category_id": c, "score": 0.9,
                "segmentation": masks.encode(box(0, 2, 0, 2))} for c in (1, 2)]
    (tmp_path / "categories.json").write_text(json.dumps({"categories": categories}))
    (tmp_path / "results.json").write_text(json.dumps(results))
    saved = SavedDetections(tmp_path / "results.json", tmp_path / "categories.json")
    labels = [x.label for x in saved.detect(None, two_sources_row()["images"][0], [])]
    assert labels == ["quadruped:head", "car:tire"]
