"""Pairing masks within one unit the way GLaMM's GCG evaluation does (docs/metrics.md, mIoU and Recall).

All functions take a dense IoU matrix and return index pairs; they never decode masks.
"""

from __future__ import annotations

import numpy as np


def greedy_pairs(iou: np.ndarray) -> list[tuple[int, int, float]]:
    """GLaMM ``compute_miou``: repeatedly take the largest IoU, pair its row and column, drop both.

    Rows are predictions, columns GT. Stops when the largest remaining IoU is not > 0. Ties go to
    the first entry in row-major order; GLaMM deletes rows and columns, which keeps the relative
    order of the rest, so masking them out with -1 picks the same entries.
    """
    if iou.size == 0:
        return []
    if iou.size <= SMALL:
        return [(r, c, float(iou[r, c])) for r, c in _greedy_small(iou.tolist(), 0.0, None, 0.0, True, strict=True)]
    remaining = _without_nan(iou)
    columns = remaining.shape[1]
    pairs = []
    for _ in range(min(remaining.shape)):
        flat = int(np.argmax(remaining))
        best = remaining.flat[flat]
        if not best > 0:
            break
        row, column = divmod(flat, columns)
        pairs.append((row, column, float(iou[row, column])))
        remaining[row, :] = -1.0
        remaining[:, column] = -1.0
    return pairs


def optimal_pairs(iou: np.ndarray) -> list[tuple[int, int, float]]:
    """Hungarian pairing maximizing the total IoU, keeping pairs with IoU > 0 (A5 variant)."""
    if iou.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    values = _without_nan(iou)
    rows, columns = linear_sum_assignment(values, maximize=True)
    return [(int(r), int(c), float(values[r, c])) for r, c in zip(rows, columns) if values[r, c] > 0]


def recall_matches(iou_gt_by_pred: np.ndarray, text_similarity: np.ndarray | None, iou_threshold: float = 0.5,
                   text_threshold: float = 0.5, stop_at_first_failure: bool = True) -> list[tuple[int, int]]:
    """GLaMM ``find_best_matches``: (gt, prediction) pairs that pass both the IoU and the text gate.

    Rows are GT, columns predictions (transposed relative to :func:`greedy_pairs`, which matters
    for ties). GLaMM stops the whole loop at the first highest-IoU pair that fails a threshold
    (``stop_at_first_failure``); the ``skip`` variant rejects only that pair and goes on, and
    still stops once the best IoU left is below the IoU threshold. ``text_similarity`` None means
    the gate is off. Thresholds must be > 0: used entries are set to -1 where GLaMM sets them to 0,
    which picks the same pairs for any positive threshold and guarantees the loop ends.
    """
    if iou_gt_by_pred.size == 0:
        return []
    if iou_gt_by_pred.size <= SMALL:
        gate = None if text_similarity is None else text_similarity.tolist()
        if text_similarity is not None:  # numpy compares a float32 matrix with the threshold in float32
            text_threshold = float(text_similarity.dtype.type(text_threshold))
        return _greedy_small(iou_gt_by_pred.tolist(), iou_threshold, gate, text_threshold, stop_at_first_failure,
                             strict=False)
    remaining = _without_nan(iou_gt_by_pred)
    columns = remaining.shape[1]
    matches = []
    while True:
        flat = int(np.argmax(remaining))
        row, column = divmod(flat, columns)
        if remaining[row, column] < iou_threshold:
            break
        if text_similarity is not None and text_similarity[row, column] < text_threshold:
            if stop_at_first_failure:
                break
            remaining[row, column] = -1.0
            continue
        matches.append((row, column))
        remaining[row, :] = -1.0
        remaining[:, column] = -1.0
    return matches


def text_pairs(similarity: np.ndarray) -> list[tuple[int, int]]:
    """Label pairs by text alone: the assignment maximizing total similarity (A8 variant c).

    Rows are predictions, columns GT, as in :func:`greedy_pairs`.
    """
    if similarity.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    rows, columns = linear_sum_assignment(similarity.astype(float), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, columns)]


SMALL = 64
"""Matrices up to this many entries are paired on Python lists: a unit holds a few masks, and numpy's
per-call cost is then most of the work. Both paths pick the same pairs (tested). AP's matching
(``ap50.match_detections``) uses the same bound."""


def _greedy_small(values: list[list[float]], threshold: float, similarity: list[list[float]] | None,
                  text_threshold: float, stop_at_first_failure: bool, strict: bool) -> list[tuple[int, int]]:
    """The numpy loops above on lists: the largest entry left (NaN as 0, the first in row-major order
    of equal ones) pairs its row and column while it is above (``strict``) or at least ``threshold``,
    subject to the text gate as in :func:`recall_matches`.

    Taking the largest entry left, again and again, is one pass over the entries sorted by value
    (descending, row-major among equals) that passes over those whose row or column is taken; a
    rejected entry is passed over for good, as the loops' ``-1`` does.
    """
    columns = len(values[0])
    if strict:
        candidates = [(-value, r * columns + c) for r, row in enumerate(values) for c, value in enumerate(row)
                      if value > threshold]  # NaN compares false: never a candidate, as 0 is not
    else:
        candidates = [(-value, r * columns + c) for r, row in enumerate(values) for c, value in enumerate(row)
                      if value >= threshold]
    candidates.sort()
    taken_rows, taken_columns = set(), set()
    pairs = []
    for _, index in candidates:
        row, column = divmod(index, columns)
        if row in taken_rows or column in taken_columns:
            continue
        if similarity is not None and similarity[row][column] < text_threshold:
            if stop_at_first_failure:
                break
            continue
        pairs.append((row, column))
        taken_rows.add(row)
        taken_columns.add(column)
    return pairs


def _without_nan(matrix: np.ndarray) -> np.ndarray:
    """A float copy with NaN as 0: GLaMM's 0/0 for two empty masks; pycocotools itself gives 0."""
    copy = np.array(matrix, dtype=float)
    copy[np.isnan(copy)] = 0.0
    return copy
