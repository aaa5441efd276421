"""MixedParts as COCO instances JSON: one COCO image per (sample, image) unit, one annotation per segment.

Loadable by ``pycocotools.coco.COCO`` and by detectron2's ``load_coco_json`` (integer image and
annotation ids from 1, contiguous category ids from 1, RLE ``segmentation`` with string counts,
``area``, ``bbox`` as [x, y, w, h] and ``iscrowd`` 0). Units follow the rows' order, then image
order; annotations follow segment order within a unit (the answer's ``[SEG]`` order).

Image records carry ``file_name`` as an absolute path when the image root of the unit's source is
known (``manifest.json`` or ``image_roots``: detectron2 joins it with its ``image_root``, which then
changes nothing) and as the row's relative ``file_name`` otherwise, plus the unit's ``unit_id``
(``<sample_id>_IMAGE<k>``), ``sample_id``, ``image_index``, ``source``, ``split``, ``task``,
``source_image_id`` and ``source_file_name``. Annotations also carry ``label``, ``kind`` and
``segment_index``.

Categories: ``label`` (default) gives one category per distinct label, ids in label order;
``agnostic`` gives the single category 1 ("segment"), as GLaMM's class-agnostic AP50.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pycocotools import mask as mask_utils

from mixedparts import __version__
from mixedparts.errors import MixedPartsError
from mixedparts.export import unit_id
from mixedparts.images import ImageResolver

CATEGORY_MODES = ("label", "agnostic")
AGNOSTIC_CATEGORY = {"id": 1, "name": "segment", "supercategory": "segment"}


def _rles(segments: list[Mapping]) -> list[dict]:
    return [{"size": [int(s["mask"]["size"][0]), int(s["mask"]["size"][1])],
             "counts": s["mask"]["counts"].encode("ascii")} for s in segments]


def unit_file_name(row: Mapping, index: int, resolver: ImageResolver | None) -> str:
    """The unit's image as an absolute path when its root is known, else the row's relative file name."""
    file_name = row["images"][index]["file_name"]
    if resolver is None:
        return file_name
    try:
        return str(resolver.root(row["source"], row["split"], file_name) / file_name)
    except MixedPartsError:  # no root, or the file is not there: say where it would be, if anywhere
        try:
            candidates, _ = resolver.candidates(row["source"], row["split"])
        except MixedPartsError:
            return file_name
        return str(candidates[0] / file_name)


def coco_instances(rows: Iterable[Mapping], resolver: ImageResolver | None = None, categories: str = "label",
                   description: str = "MixedParts") -> dict:
    """The COCO instances dict of ``rows`` (sample rows of :data:`mixedparts.schema.SAMPLE_FEATURES`)."""
    if categories not in CATEGORY_MODES:
        raise ValueError(f"categories must be one of {CATEGORY_MODES}, got {categories!r}")
    rows = list(rows)
    if categories == "label":
        names = sorted({s["label"] for row in rows for s in row["segments"]})
        category_list = [{"id": i + 1, "name": name, "supercategory": "part-or-object"} for i, name in enumerate(names)]
        category_of = {c["name"]: c["id"] for c in category_list}
    else:
        category_list = [dict(AGNOSTIC_CATEGORY)]
        category_of = None
    images, annotations = [], []
    splits, tasks = set(), set()
    for row in rows:
        splits.add(row["split"])
        tasks.add(row["task"])
        first_image_id = len(images) + 1
        for k, meta in enumerate(row["images"]):
            images.append({"id": first_image_id + k, "file_name": unit_file_name(row, k, resolver),
                           "height": int(meta["height"]), "width": int(meta["width"]),
                           "unit_id": unit_id(row["sample_id"], k), "sample_id": row["sample_id"], "image_index": k,
                           "source": row["source"], "split": row["split"], "task": row["task"],
                           "source_image_id": meta["image_id"], "source_file_name": meta["file_name"]})
        segments = list(row["segments"])
        if not segments:
            continue
        rles = _rles(segments)
        # pycocotools wants equal sizes per call only for merges; area/toBbox take any list.
        areas = mask_utils.area(rles)
        boxes = mask_utils.toBbox(rles)
        for j, (segment, area, box) in enumerate(zip(segments, areas, boxes)):
            annotations.append({
                "id": len(annotations) + 1, "image_id": first_image_id + int(segment["image_index"]),
                "category_id": category_of[segment["label"]] if category_of else 1,
                "segmentation": {"size": rles[j]["size"], "counts": segment["mask"]["counts"]},
                "area": float(area), "bbox": [float(v) for v in box], "iscrowd": 0,
                "label": segment["label"], "kind": segment["kind"], "segment_index": j})
    info = {"description": description, "version": __version__, "split": ",".join(sorted(splits)),
            "task": ",".join(sorted(tasks)), "categories": categories,
            "unit": "one COCO image per (sample, image); see unit_id"}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": category_list}
