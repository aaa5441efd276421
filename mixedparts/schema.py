"""The sample row and the predictions file: the two formats every part of the project shares.

Defined once here (see ``shared/design.md``); builder, loader, eval, models and leaderboard import them.
"""

from __future__ import annotations

import datasets

SOURCES = ("paco_lvis", "partimagenet", "ade20k_part234", "synthetic")
SPLITS = ("train", "val", "test")
TASKS = ("common_object", "common_parts", "unique_parts")
SEGMENT_KINDS = ("object", "common_part", "unique_part")

PREDICTIONS_FORMAT = "mixedparts-predictions/1"

RLE_FEATURE = {"size": datasets.List(datasets.Value("int32")), "counts": datasets.Value("string")}

SAMPLE_FEATURES = datasets.Features(
    {
        "sample_id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "split": datasets.Value("string"),
        "task": datasets.Value("string"),
        "images": datasets.List(
            {
                "image_id": datasets.Value("string"),
                "file_name": datasets.Value("string"),
                "width": datasets.Value("int32"),
                "height": datasets.Value("int32"),
            }
        ),
        "objects": datasets.List({"image_index": datasets.Value("int32"), "category": datasets.Value("string")}),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "segments": datasets.List(
            {
                "label": datasets.Value("string"),
                "kind": datasets.Value("string"),
                "image_index": datasets.Value("int32"),
                "mask": RLE_FEATURE,
            }
        ),
    }
)

SAMPLE_FIELDS = tuple(SAMPLE_FEATURES)
PREDICTION_FIELDS = ("sample_id", "text", "segments")
PREDICTED_SEGMENT_FIELDS = ("label", "image_index", "mask")  # plus an optional "score"
