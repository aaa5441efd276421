"""The sample row and the predictions file: the two formats every part of the project shares.

Defined once here (described in ``docs/formats.md``); builder, loader, eval, models and leaderboard
import them. The ``datasets`` features are built on first use (``SAMPLE_FEATURES``, ``RLE_FEATURE``):
importing ``datasets`` takes seconds, and the names below are needed by every ``--help``.
"""

from __future__ import annotations

# SOURCES, the values of a row's "source", is the release table's (mixedparts.sources.registry): see
# __getattr__ below.
SPLITS = ("train", "val", "test")
TASKS = ("common_object", "common_parts", "unique_parts")
MEAN = "mean"
"""The headline row: the unweighted mean of the task scores."""
METRICS = ("AP50", "mIoU", "Recall", "SS", "S-IoU")
"""The five scores every evaluation result, report and table names, in this order."""
SEGMENT_KINDS = ("object", "common_part", "unique_part")

PREDICTIONS_FORMAT = "mixedparts-predictions/1"

# The column order of SAMPLE_FEATURES (tests/test_cli_startup.py checks that they agree).
SAMPLE_FIELDS = ("sample_id", "source", "split", "task", "images", "objects", "question", "answer", "segments")


def _features() -> dict:
    import datasets

    rle = {"size": datasets.List(datasets.Value("int32")), "counts": datasets.Value("string")}
    sample = datasets.Features(
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
                    "mask": rle,
                }
            ),
        }
    )
    return {"RLE_FEATURE": rle, "SAMPLE_FEATURES": sample}


def __getattr__(name: str):
    if name == "SOURCES":
        # The registered releases, then hand-made rows: read from the table on every access (never
        # cached here), since a plug-in may register after this module is imported.
        from mixedparts.sources.registry import source_names

        return source_names()
    if name in ("RLE_FEATURE", "SAMPLE_FEATURES"):
        globals().update(_features())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
PREDICTION_FIELDS = ("sample_id", "text", "segments")
PREDICTED_SEGMENT_FIELDS = ("label", "image_index", "mask")  # plus an optional "score"
