"""Two reference predictors that need no weights, used by ``mixedparts demo`` and as sanity checks.

- ``oracle``: the ground-truth answer and masks. Every metric must be 100.
- ``object-box``: the ground-truth labels and answer text, but every mask is the bounding box of the
  image's object (the object sentence's mask, or the label's own mask in common-object samples):
  honest about what a detector that finds the object but not its parts would score.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mixedparts import masks

PREDICTORS = ("oracle", "object-box")


def oracle(row: dict) -> dict:
    return {"sample_id": row["sample_id"], "text": row["answer"],
            "segments": [{"label": s["label"], "image_index": s["image_index"], "mask": s["mask"], "score": 1.0}
                         for s in row["segments"]]}


def bounding_box(rle: dict) -> dict:
    pixels = masks.decode(rle)
    box = np.zeros_like(pixels)
    ys, xs = np.nonzero(pixels)
    if len(ys):
        box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    return masks.encode(box)


def object_box(row: dict) -> dict:
    object_masks = {}
    for segment in row["segments"]:
        if segment["kind"] == "object":
            object_masks.setdefault(segment["image_index"], segment["mask"])
    boxes = {i: bounding_box(m) for i, m in object_masks.items()}
    return {"sample_id": row["sample_id"], "text": row["answer"],
            "segments": [{"label": s["label"], "image_index": s["image_index"], "mask": boxes[s["image_index"]],
                          "score": 1.0} for s in row["segments"]]}


def predict(name: str, rows: Iterable[dict]) -> list[dict]:
    function = {"oracle": oracle, "object-box": object_box}[name]
    return [function(row) for row in rows]
