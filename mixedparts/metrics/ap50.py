"""AP50: class-agnostic COCO mask AP at IoU 0.5, as pycocotools' COCOeval computes it (docs/metrics.md, A4).

Each unit (sample, image) is one COCO image; every mask has category 1. GLaMM runs COCOeval with
default parameters and reports ``stats[1]``. Only the IoU-0.5 threshold, area range "all" and
maxDets 100 enter that number, and no mask is a crowd, so COCOeval's per-image matching reduces to
a greedy loop over an IoU matrix, and its accumulation to a few array operations. Both are done
here on arrays, without COCO's index objects, with COCOeval's operations in COCOeval's order: the
result equals ``stats[1]`` to the last bit, which tests check against pycocotools itself on random
cases (ties, overlapping GT masks, more than 100 detections, empty units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100  # COCO's maxDets[-1]: further masks of a unit are silently dropped, as in GLaMM


@dataclass(frozen=True)
class UnitMatches:
    """What COCOeval's ``evaluateImg`` keeps of one unit at IoU 0.5, area "all", maxDets 100.

    Detections are in COCO's rank order (descending score, ties in file order), at most 100.
    """

    scores: np.ndarray  # float64
    matched: np.ndarray  # bool: the detection took a GT mask at IoU >= 0.5
    gt_count: int


def match_detections(iou: np.ndarray) -> np.ndarray:
    """COCOeval's greedy matching of one unit: ``iou`` is detections (rank order) x GT masks.

    Each detection in turn takes the unmatched GT mask of highest IoU, if that IoU is at least 0.5;
    of equal IoUs the last GT mask wins (COCO replaces its candidate on ``>=``). No mask is a crowd
    or outside the area range, so none is ignored.
    """
    hits = iou >= IOU_THRESHOLD
    if not hits.any():
        return np.zeros(iou.shape[0], dtype=bool)
    if hits.sum(axis=0).max() <= 1 and hits.sum(axis=1).max() <= 1:
        return hits.any(axis=1)  # no GT mask is contested and no detection has a choice: order is moot
    matched = np.zeros(iou.shape[0], dtype=bool)
    taken = np.zeros(iou.shape[1], dtype=bool)
    last = iou.shape[1] - 1
    for d, row in enumerate(iou):
        candidates = np.where(taken, -1.0, row)
        best = last - int(np.argmax(candidates[::-1]))
        if candidates[best] >= IOU_THRESHOLD:
            matched[d] = taken[best] = True
    return matched


def evaluate_units(gt_masks: list[list[dict]], predicted_masks: list[list[dict]],
                   scores: list[list[float]]) -> tuple[list[UnitMatches | None], list]:
    """COCOeval's per-image evaluation of some units, without building COCO objects.

    Returns, per unit, its :class:`UnitMatches` (None when it has neither GT nor predicted masks, as
    COCOeval's ``evalImgs``) and its IoU matrix (detections in rank order x GT masks; ``[]`` when a
    side is empty, as COCOeval's ``ious``), which mIoU and Recall reuse. The IoUs are pycocotools'
    ``iou`` of the same RLEs COCOeval passes it; tests check every field against COCOeval's.
    """
    iou_of = mask_utils.iou
    results, ious = [], []
    for truth, predicted, unit_scores in zip(gt_masks, predicted_masks, scores):
        if not truth and not predicted:
            results.append(None)
            ious.append([])
            continue
        ranked = np.asarray(unit_scores, dtype=float)
        order = np.argsort(-ranked, kind="mergesort")[:MAX_DETECTIONS]
        ranked = ranked[order]
        if truth and predicted:
            iou = iou_of([predicted[i] for i in order], truth, [0] * len(truth))
            matched = match_detections(iou)
        else:
            iou, matched = [], np.zeros(len(order), dtype=bool)
        results.append(UnitMatches(ranked, matched, len(truth)))
        ious.append(iou)
    return results, ious


def accumulate_ap50(matches: list[UnitMatches | None], unit_ids: list[int]) -> float:
    """AP at IoU 0.5 over the given units, as COCOeval's ``accumulate`` and ``stats[1]`` compute it.

    ``matches[i]`` belongs to ``unit_ids[i]``; COCO lists units by id. Returns NaN when the units hold
    no GT (pycocotools reports -1) and 0 when they hold GT but no predictions.
    """
    listed = [matches[i] for i in np.argsort(unit_ids, kind="stable")]
    listed = [m for m in listed if m is not None]
    if not listed:
        return float("nan")
    scores = np.concatenate([m.scores for m in listed])
    matched = np.concatenate([m.matched for m in listed])
    return ap_from_flags(scores, matched, ~matched, sum(m.gt_count for m in listed))


def detection_flags(matches: UnitMatches | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(scores, true positives, false positives, GT count) of one unit at IoU 0.5."""
    if matches is None:
        empty = np.zeros(0)
        return empty, empty.astype(bool), empty.astype(bool), 0
    return matches.scores, matches.matched, ~matches.matched, matches.gt_count


RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)  # COCO's recThrs


def ap_from_flags(scores: np.ndarray, true_positive: np.ndarray, false_positive: np.ndarray, gt_count: int,
                  presorted: bool = False) -> float:
    """COCOeval.accumulate's AP for one threshold, to the last bit (the same operations in the same order).

    Detections are in unit order; a stable sort by descending score gives COCO's ranking
    (``presorted``: they are in it already).
    """
    if gt_count == 0:
        return float("nan")
    if not presorted:
        order = np.argsort(-scores, kind="mergesort")
        true_positive, false_positive = true_positive[order], false_positive[order]
    tp = np.cumsum(true_positive, dtype=float)
    fp = np.cumsum(false_positive, dtype=float)
    precision_at = np.zeros(len(RECALL_THRESHOLDS))
    if len(tp):
        recall = tp / gt_count
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # COCO's envelope loop
        index = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        reachable = index < len(precision)  # unreachable recall thresholds keep precision 0, as in COCO
        precision_at[reachable] = precision[index[reachable]]
    # stats[1] is np.mean over the 101 thresholds; summing in another order changes the last bits.
    return float(np.mean(precision_at))
