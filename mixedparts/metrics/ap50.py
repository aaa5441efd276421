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

from mixedparts.metrics import batched, matching

IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100  # COCO's maxDets[-1]: further masks of a unit are silently dropped, as in GLaMM


@dataclass
class Detections:
    """What COCOeval's ``evaluateImg`` keeps of some units at IoU 0.5, area "all", maxDets 100, as arrays.

    Detections are listed unit after unit, each unit's in COCO's rank order (descending score, ties in
    file order, at most 100).
    """

    unit: np.ndarray  # int64: position of the detection's unit in the units given
    scores: np.ndarray  # float64
    matched: np.ndarray  # bool: the detection took a GT mask at IoU >= 0.5

    @classmethod
    def concatenate(cls, parts: list[Detections], unit_offsets: list[int]) -> Detections:
        """One listing of several chunks' detections; chunk ``i`` starts at unit ``unit_offsets[i]``."""
        return cls(np.concatenate([p.unit + offset for p, offset in zip(parts, unit_offsets)] + [np.zeros(0, np.int64)]),
                   np.concatenate([p.scores for p in parts] + [np.zeros(0)]),
                   np.concatenate([p.matched for p in parts] + [np.zeros(0, bool)]))

    def of_units(self, selected: np.ndarray) -> Detections:
        """The detections of the units where the boolean ``selected`` is true, in listing order."""
        keep = selected[self.unit]
        return Detections(self.unit[keep], self.scores[keep], self.matched[keep])


def match_detections(iou: np.ndarray) -> np.ndarray:
    """COCOeval's greedy matching of one unit: ``iou`` is detections (rank order) x GT masks.

    Each detection in turn takes the unmatched GT mask of highest IoU, if that IoU is at least 0.5;
    of equal IoUs the last GT mask wins (COCO replaces its candidate on ``>=``). No mask is a crowd
    or outside the area range, so none is ignored.
    """
    return np.array(_matched_flags(iou), dtype=bool)


def _matched_flags(iou: np.ndarray) -> list[bool]:
    """:func:`match_detections` as a list (what :func:`evaluate_units` gathers)."""
    if iou.size <= matching.SMALL:  # a unit's few masks: see matching.SMALL
        return _match_small(iou.tolist())
    matched = np.zeros(iou.shape[0], dtype=bool)
    taken = np.zeros(iou.shape[1], dtype=bool)
    last = iou.shape[1] - 1
    for d, row in enumerate(iou):
        candidates = np.where(taken, -1.0, row)
        best = last - int(np.argmax(candidates[::-1]))
        if candidates[best] >= IOU_THRESHOLD:
            matched[d] = taken[best] = True
    return matched.tolist()


def _match_small(rows: list[list[float]]) -> list[bool]:
    taken = [False] * len(rows[0])
    matched = []
    for row in rows:
        best, best_value = -1, IOU_THRESHOLD
        for g, value in enumerate(row):
            if not taken[g] and value >= best_value:  # >=: of equal IoUs the last GT mask wins, as in COCO
                best, best_value = g, value
        if best >= 0:
            taken[best] = True
        matched.append(best >= 0)
    return matched


def evaluate_units(gt_masks: list[list[dict]], predicted_masks: list[list[dict]],
                   scores: list[list[float]]) -> tuple[Detections, list]:
    """COCOeval's per-image evaluation of some units, without building COCO objects.

    Returns their :class:`Detections` and, per unit, its IoU matrix (detections in rank order x GT
    masks; ``[]`` when a side is empty, as COCOeval's ``ious``), which mIoU and Recall reuse. The IoUs
    are pycocotools' ``iou`` of the same RLEs COCOeval passes it; tests check every field against
    COCOeval's ``evalImgs`` and ``ious``.
    """
    iou_of = mask_utils.iou
    kept_per_unit: list[int] = []
    ranked_scores: list[float] = []
    ious = []
    matrices = []  # per unit with detections: its IoU matrix, 0 columns without GT
    for truth, predicted, unit_scores in zip(gt_masks, predicted_masks, scores):
        if not predicted:
            kept_per_unit.append(0)
            ious.append([])
            continue
        if min(unit_scores) == max(unit_scores):  # a stable sort of equal scores keeps the file order
            kept = predicted[:MAX_DETECTIONS]
            ranked_scores.extend(unit_scores[:MAX_DETECTIONS])
        else:
            ranked = np.asarray(unit_scores, dtype=float)
            order = np.argsort(-ranked, kind="mergesort")[:MAX_DETECTIONS]
            kept = [predicted[i] for i in order]
            ranked_scores.extend(ranked[order].tolist())
        kept_per_unit.append(len(kept))
        if truth:
            iou = iou_of(kept, truth, [0] * len(truth))
            matrices.append(iou)
        else:
            iou = []
            matrices.append(np.zeros((len(kept), 0)))
        ious.append(iou)
    entries = batched.Entries.of(matrices)
    if np.isnan(entries.value).any():  # never from pycocotools; the unit-by-unit loop defines NaN's handling
        matched = np.array([flag for iou in matrices for flag in _matched_flags(iou)], dtype=bool)
    else:
        matched = batched.coco_matched(entries, IOU_THRESHOLD)
    return Detections(np.repeat(np.arange(len(kept_per_unit), dtype=np.int64), kept_per_unit),
                      np.array(ranked_scores, dtype=float), matched), ious


def accumulate_ap50(detections: Detections, gt_count: int) -> float:
    """AP at IoU 0.5 of units listed in COCO's order (by unit id) with ``gt_count`` GT masks in all, as
    COCOeval's ``accumulate`` and ``stats[1]`` compute it: NaN when there is no GT (pycocotools reports
    -1), 0 when there is GT but no detection."""
    return ap_from_flags(detections.scores, detections.matched, ~detections.matched, gt_count)


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
