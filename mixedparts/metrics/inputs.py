"""An evaluation's two inputs, the ground truth and the predictions, read at the same time."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from mixedparts.gc_pause import cyclic_gc_paused
from mixedparts.metrics.ground_truth import GroundTruth, load_ground_truth
from mixedparts.predictions import (Predictions, PredictionsError, is_gcg, parse_predictions, read_predictions,
                                    validate_predictions)


@cyclic_gc_paused()  # one pause for both threads: either one's own pause would end in the middle of the other's
def read_inputs(data: str | os.PathLike | None, split: str, gt_file: str | os.PathLike | None,
                predictions: str | os.PathLike, format: str = "auto",
                workers: int | None = None) -> tuple[GroundTruth, Predictions]:
    """``load_ground_truth(data, split, gt_file)`` and ``read_predictions(predictions, format)``: the same
    results, and the same error where both inputs are bad (the ground truth's).

    The ground truth is read in a second thread while this one reads and parses the predictions file:
    pyarrow reads Parquet without holding the GIL, and ``json.loads`` holds it, so the two take a core
    each. The predictions' checks, which fork workers, start once that thread has ended (a fork while
    another thread runs can copy a lock it holds into the child, and Python 3.12 warns of it). A GCG
    folder needs the ground truth's image sizes first, so it is read after it.
    """
    if is_gcg(predictions, format):
        truth = load_ground_truth(data, split, gt_file)
        return truth, read_predictions(predictions, format, images=truth.image_sizes(), workers=workers)
    with ThreadPoolExecutor(1, thread_name_prefix="mixedparts-ground-truth") as pool:
        pending = pool.submit(load_ground_truth, data, split, gt_file)
        try:
            parsed = parse_predictions(predictions, format)
        except PredictionsError:
            pending.result()  # raises the ground truth's error, if it has one: it comes first
            raise
        truth = pending.result()
    return truth, validate_predictions(parsed, workers)
