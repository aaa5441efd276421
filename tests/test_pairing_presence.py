"""Unique parts are unique: presence comes from every annotation, masks from what survives the area filter.

The release is a hand-written PACO-LVIS file (the reader's real input format, fields as in
``paco_lvis_v1_*.json``): a stool with big legs and seat, and a bench whose seat and back are big but
whose legs cover 1.5% of the image, below the 2% filter (as in the demo's bench). Under the old rule
the stool's "leg" was labelled unique to the stool although the bench visibly has legs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixedparts import masks
from mixedparts.build import plan_split, read_pools
from mixedparts.build.materialize import materialize
from mixedparts.build.options import BuildOptions
from mixedparts.build.pairing import unique_parts_by_object
from mixedparts.sources.paco import PacoReader

H, W = 40, 50  # 2000 pixels: the 2% filter keeps masks of 40 pixels or more
STOOL, BENCH = 1, 2
STOOL_LEG, STOOL_SEAT, BENCH_LEG, BENCH_SEAT, BENCH_BACK = range(10, 15)
CATEGORIES = [{"id": STOOL, "name": "stool"}, {"id": BENCH, "name": "bench"},
              {"id": STOOL_LEG, "name": "stool:leg"}, {"id": STOOL_SEAT, "name": "stool:seat"},
              {"id": BENCH_LEG, "name": "bench:leg"}, {"id": BENCH_SEAT, "name": "bench:seat"},
              {"id": BENCH_BACK, "name": "bench:back"}]


def _box(top, left, bottom, right) -> dict:
    mask = np.zeros((H, W), dtype=bool)
    mask[top:bottom, left:right] = True
    return masks.encode(mask)


def _annotation(annotation_id, image_id, category_id, obj_ann_id, mask) -> dict:
    return {"id": annotation_id, "image_id": image_id, "category_id": category_id, "obj_ann_id": obj_ann_id,
            "segmentation": mask}


def _split(offset: int) -> dict:
    stool_image, bench_image = offset + 1, offset + 2
    stool, bench = offset * 10 + 1, offset * 10 + 2
    return {
        "images": [{"id": i, "file_name": f"train2017/{i:012d}.jpg", "width": W, "height": H}
                   for i in (stool_image, bench_image)],
        "annotations": [
            _annotation(stool, stool_image, STOOL, stool, _box(0, 0, 40, 50)),
            _annotation(stool + 100, stool_image, STOOL_LEG, stool, _box(20, 0, 40, 10)),  # 200 px, kept
            _annotation(stool + 200, stool_image, STOOL_SEAT, stool, _box(10, 0, 20, 50)),
            _annotation(bench, bench_image, BENCH, bench, _box(0, 0, 40, 50)),
            _annotation(bench + 100, bench_image, BENCH_LEG, bench, _box(35, 0, 40, 6)),  # 30 px = 1.5%, dropped
            _annotation(bench + 200, bench_image, BENCH_SEAT, bench, _box(20, 0, 30, 50)),
            _annotation(bench + 300, bench_image, BENCH_BACK, bench, _box(0, 0, 20, 50)),
        ],
        "categories": CATEGORIES,
    }


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paco") / "annotations"
    folder.mkdir()
    for offset, split in enumerate(("train", "val", "test")):
        (folder / f"paco_lvis_v1_{split}.json").write_text(json.dumps(_split(offset)))
    return folder.parent


def _unique_samples(release, part_presence: str) -> list[dict]:
    options = BuildOptions(part_presence=part_presence)
    pools = read_pools([PacoReader(release, check_images=False)], options, progress=False)
    plan = plan_split(pools["train"], "train", options, progress=False)
    rows = [materialize(pools["train"][p], t, objects, options.seed)
            for p, t, objects in (plan.row(i) for i in range(len(plan)))]
    return [row for row in rows if row["task"] == "unique_parts"]


def _unique_labels(row: dict) -> dict[str, list[str]]:
    by_category = {obj["image_index"]: obj["category"] for obj in row["objects"]}
    labels: dict[str, list[str]] = {category: [] for category in by_category.values()}
    for segment in row["segments"]:
        if segment["kind"] == "unique_part":
            labels[by_category[segment["image_index"]]].append(segment["label"])
    return labels


def test_the_reader_keeps_the_names_the_area_filter_dropped(release):
    bench = [image for image in PacoReader(release, check_images=False).read("train")][1].objects[0]
    assert [p.name for p in bench.parts] == ["seat", "back"]
    assert bench.dropped_part_names == {"leg"} and bench.annotated_part_names == {"leg", "seat", "back"}


def test_a_part_small_on_the_other_object_is_not_unique(release):
    (row,) = _unique_samples(release, "all-annotations")
    assert _unique_labels(row) == {"stool": [], "bench": ["back"]}
    # masks still come from surviving masks only: the bench's 1.5% legs are never a label
    assert all(s["label"] != "leg" for s in row["segments"])


def test_the_old_rule_is_an_option_named_for_what_it_does(release):
    (row,) = _unique_samples(release, "surviving-masks")
    assert _unique_labels(row) == {"stool": ["leg"], "bench": ["back"]}  # builder 1.0's "unique" leg
    with pytest.raises(ValueError, match="part_presence"):
        BuildOptions(part_presence="masks")


def test_unique_parts_by_object_needs_a_mask_here_and_no_annotation_elsewhere():
    masked = [frozenset({"leg", "seat"}), frozenset({"seat", "back"}), frozenset({"arm"})]
    present = [masked[0], masked[1] | {"leg"}, masked[2] | {"back"}]
    assert unique_parts_by_object(masked, present) == [frozenset(), frozenset(), frozenset({"arm"})]
    assert unique_parts_by_object(masked, masked) == [frozenset({"leg"}), frozenset({"back"}), frozenset({"arm"})]
    two = unique_parts_by_object(masked[:2], present[:2])
    assert two == [frozenset(), frozenset({"back"})]
