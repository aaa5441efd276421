"""The ground-truth files GLaMM's GCG evaluation reads (``eval/gcg/evaluate.py``, see docs/formats.md).

For one split and one task, in ``GTDIR``:

- ``{split}_gcg_coco_mask_gt.json``: COCO instances; one image per (sample, image) unit, whose id is
  the string ``<sample_id>_IMAGE<k>`` (k 1-based; safe as a file name: the script opens
  ``{prediction_dir}/{image_id}.json``); every annotation has ``category_id`` 1, an RLE
  ``segmentation``, ``area``, ``bbox`` and ``iscrowd`` 0, in the unit's label order;
- ``{split}_gcg_coco_caption_gt.json``: COCO-caption style: the same ``images``, and one annotation
  per unit with ``image_id``, ``caption`` (the sample's answer) and ``labels`` (the unit's ground-truth
  labels, aligned with its mask annotations).

:func:`gcg_predictions` writes a predictions file as the matching prediction folder (one
``{unit_id}.json`` per unit with ``image_id``, ``caption``, ``phrases`` and ``pred_masks``, the
layout :func:`mixedparts.predictions.read_gcg_folder` reads back). GLaMM scores one task at a
time; MixedParts' headline is the mean of the three task scores. With constant scores, AP50
depends on the order of units: GLaMM's COCOeval sorts the string unit ids, i.e. orders samples by
sample id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pycocotools import mask as mask_utils

from mixedparts.atomic import write_json
from mixedparts.export import unit_id

MASK_GT = "{split}_gcg_coco_mask_gt.json"
CAPTION_GT = "{split}_gcg_coco_caption_gt.json"
CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}


def _units(rows: Iterable[Mapping]):
    for row in rows:
        for k, meta in enumerate(row["images"]):
            segments = [s for s in row["segments"] if int(s["image_index"]) == k]
            yield row, k, meta, segments


def gcg_ground_truth(rows: Iterable[Mapping]) -> tuple[dict, dict]:
    """(mask GT, caption GT) dicts for ``rows`` (all of one split and, for GLaMM, one task)."""
    images, mask_annotations, caption_annotations = [], [], []
    for row, k, meta, segments in _units(rows):
        uid = unit_id(row["sample_id"], k)
        images.append({"id": uid, "file_name": meta["file_name"], "height": int(meta["height"]),
                       "width": int(meta["width"]), "sample_id": row["sample_id"], "image_index": k,
                       "source": row["source"], "task": row["task"], "source_image_id": meta["image_id"]})
        if segments:
            rles = [{"size": [int(s["mask"]["size"][0]), int(s["mask"]["size"][1])],
                     "counts": s["mask"]["counts"].encode("ascii")} for s in segments]
            for segment, rle, area, box in zip(segments, rles, mask_utils.area(rles), mask_utils.toBbox(rles)):
                mask_annotations.append({
                    "id": len(mask_annotations) + 1, "image_id": uid, "category_id": CATEGORY["id"],
                    "segmentation": {"size": rle["size"], "counts": segment["mask"]["counts"]},
                    "area": float(area), "bbox": [float(v) for v in box], "iscrowd": 0, "label": segment["label"]})
        caption_annotations.append({"id": len(caption_annotations) + 1, "image_id": uid, "caption": row["answer"],
                                    "labels": [s["label"] for s in segments]})
    info = {"description": "MixedParts ground truth for GLaMM's eval/gcg/evaluate.py", "unit": "<sample_id>_IMAGE<k>"}
    mask_gt = {"info": info, "licenses": [], "images": images, "annotations": mask_annotations,
               "categories": [dict(CATEGORY)]}
    caption_gt = {"info": info, "licenses": [], "images": [dict(i) for i in images],
                  "annotations": caption_annotations}
    return mask_gt, caption_gt


def write_gcg_ground_truth(rows: Iterable[Mapping], out: str | Path, split: str) -> tuple[Path, Path]:
    """Write both GT files into the folder ``out``; return their paths (mask GT, caption GT)."""
    out = Path(out)
    mask_gt, caption_gt = gcg_ground_truth(rows)
    return (write_json(out / MASK_GT.format(split=split), mask_gt),
            write_json(out / CAPTION_GT.format(split=split), caption_gt))


def gcg_predictions(rows: Iterable[Mapping], predictions: Mapping[str, Mapping]) -> dict[str, dict]:
    """unit id -> GLaMM prediction record, for every unit of ``rows`` (an empty record where a sample has no
    prediction: the script opens one file per GT unit). The caption is the prediction's whole text."""
    records = {}
    for row, k, _meta, _segments in _units(rows):
        uid = unit_id(row["sample_id"], k)
        prediction = predictions.get(row["sample_id"]) or {}
        own = [s for s in prediction.get("segments", []) if int(s["image_index"]) == k]
        records[uid] = {"image_id": uid, "caption": prediction.get("text", ""),
                        "phrases": [s.get("label", "") for s in own],
                        "pred_masks": [{"size": list(s["mask"]["size"]), "counts": s["mask"]["counts"]} for s in own]}
    return records


def write_gcg_predictions(rows: Iterable[Mapping], predictions: Mapping[str, Mapping], folder: str | Path) -> int:
    """Write :func:`gcg_predictions` as ``folder/{unit_id}.json``; return the number of files."""
    folder = Path(folder)
    records = gcg_predictions(rows, predictions)
    for uid, record in records.items():
        write_json(folder / f"{uid}.json", record)
    return len(records)
