"""AP50: class-agnostic COCO mask AP at IoU 0.5, computed by pycocotools' COCOeval (docs/metrics.md, A4).

Each unit (sample, image) is one COCO image; every mask has category 1. GLaMM runs COCOeval with
default parameters and reports ``stats[1]``. Only the IoU-0.5 threshold, area range "all" and
maxDets 100 enter that number, so we ask COCOeval for exactly those: the per-image matching and the
accumulation are COCOeval's own code, run on chunks of units in parallel, then accumulated once.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100  # COCO's maxDets[-1]: further masks of a unit are silently dropped, as in GLaMM
AREA_ALL = [0**2, 1e5**2]
CATEGORY = 1


def restricted_params(unit_ids: list[int]) -> Params:
    params = Params(iouType="segm")
    params.imgIds = sorted(unit_ids)
    params.catIds = [CATEGORY]
    params.iouThrs = np.array([IOU_THRESHOLD])
    params.maxDets = [MAX_DETECTIONS]
    params.areaRng = [AREA_ALL]
    params.areaRngLbl = ["all"]
    return params


def mask_areas(masks: list[dict]) -> np.ndarray:
    """pycocotools' ``area`` of each RLE (uint32, as loadRes stores it), in calls of at most 255 masks:
    pycocotools 2.0.x sizes a scratch array as uint8 and overflows on more under NumPy 2."""
    if not masks:
        return np.zeros(0, dtype=np.uint32)
    return np.concatenate([mask_utils.area(masks[i:i + 255]) for i in range(0, len(masks), 255)])


def coco_pair(unit_ids: list[int], sizes: list[tuple[int, int]], gt_masks: list[list[dict]],
              predicted_masks: list[list[dict]], scores: list[list[float]]) -> tuple[COCO, COCO]:
    """COCO ground truth and results objects for some units, as GLaMM's files would load them.

    Annotation ids follow mask order within each unit, and units follow ``unit_ids``; with equal
    scores this order decides COCO's ties, so it is part of the metric.
    """
    images = [{"id": uid, "height": h, "width": w} for uid, (h, w) in zip(unit_ids, sizes)]
    annotations = []
    for uid, masks in zip(unit_ids, gt_masks):
        if not masks:
            continue
        for mask, area in zip(masks, mask_areas(masks)):
            annotations.append({"id": len(annotations) + 1, "image_id": uid, "category_id": CATEGORY,
                                "segmentation": mask, "area": float(area), "iscrowd": 0})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": CATEGORY, "name": "segment"}]}
        gt.createIndex()
        # What gt.loadRes(detections) builds for segmentation results (ids from 1 in list order, area
        # and bbox of each RLE, iscrowd 0), with one vectorized area/bbox call instead of two per mask.
        masks = [mask for unit_masks in predicted_masks for mask in unit_masks]
        areas = mask_areas(masks)
        boxes = mask_utils.toBbox(masks) if masks else []
        flat_scores = [score for unit_scores in scores for score in unit_scores]
        owners = [uid for uid, unit_masks in zip(unit_ids, predicted_masks) for _ in unit_masks]
        detections = [{"image_id": uid, "category_id": CATEGORY, "segmentation": mask, "score": float(score),
                       "area": area, "bbox": box, "id": i + 1, "iscrowd": 0}
                      for i, (uid, mask, score, area, box) in enumerate(zip(owners, masks, flat_scores, areas, boxes))]
        dt = COCO()
        dt.dataset = {"images": list(images), "annotations": detections, "categories": gt.dataset["categories"]}
        dt.createIndex()
    return gt, dt


def evaluate_units(unit_ids: list[int], sizes: list[tuple[int, int]], gt_masks: list[list[dict]],
                   predicted_masks: list[list[dict]], scores: list[list[float]]) -> tuple[list, dict]:
    """COCOeval's per-image results (``evalImgs``, in ``unit_ids`` order) and IoU matrices for some units.

    The IoU matrices (``{unit_id: detections x GT}``, detections in COCO's score order) are returned
    so that mIoU and Recall need not recompute them.
    """
    gt, dt = coco_pair(unit_ids, sizes, gt_masks, predicted_masks, scores)
    evaluator = COCOeval(gt, dt, iouType="segm")
    evaluator.params = restricted_params(unit_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    position = {uid: i for i, uid in enumerate(evaluator.params.imgIds)}
    eval_imgs = [evaluator.evalImgs[position[uid]] for uid in unit_ids]
    ious = {uid: evaluator.ious[uid, CATEGORY] for uid in unit_ids}
    return eval_imgs, ious


def accumulate_ap50(eval_imgs: list, unit_ids: list[int]) -> float:
    """AP at IoU 0.5 over the given units by COCOeval.accumulate, as ``stats[1]`` would report it.

    ``eval_imgs[i]`` belongs to ``unit_ids[i]``. Returns NaN when the units hold no GT (pycocotools
    reports -1) and 0 when they hold GT but no predictions.
    """
    if not unit_ids:
        return float("nan")
    order = np.argsort(unit_ids, kind="stable")
    evaluator = COCOeval(iouType="segm")
    evaluator.params = restricted_params(list(unit_ids))
    evaluator.evalImgs = [eval_imgs[i] for i in order]
    evaluator._paramsEval = copy.deepcopy(evaluator.params)
    if not any(e is not None for e in evaluator.evalImgs):
        return float("nan")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, 0, 0, 0]
    valid = precision[precision > -1]
    return float(np.mean(valid)) if len(valid) else float("nan")


def detection_flags(eval_img: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(scores, true positives, false positives, GT count) of one unit's COCOeval result at IoU 0.5."""
    if eval_img is None:
        empty = np.zeros(0)
        return empty, empty.astype(bool), empty.astype(bool), 0
    matched = eval_img["dtMatches"][0] > 0
    ignored = eval_img["dtIgnore"][0].astype(bool)
    scores = np.asarray(eval_img["dtScores"], dtype=float)
    return scores, matched & ~ignored, ~matched & ~ignored, int(np.count_nonzero(eval_img["gtIgnore"] == 0))


RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)


def ap_from_flags(scores: np.ndarray, true_positive: np.ndarray, false_positive: np.ndarray, gt_count: int,
                  presorted: bool = False) -> float:
    """COCOeval.accumulate's AP for one threshold, vectorized (used for bootstrap replicates).

    Detections are in unit order; a stable sort by descending score gives COCO's ranking. Equal to
    :func:`accumulate_ap50` on the same units (tested).
    """
    if gt_count == 0:
        return float("nan")
    if not presorted:
        order = np.argsort(-scores, kind="mergesort")
        true_positive, false_positive = true_positive[order], false_positive[order]
    tp = np.cumsum(true_positive, dtype=float)
    fp = np.cumsum(false_positive, dtype=float)
    if len(tp) == 0:
        return 0.0
    recall = tp / gt_count
    precision = tp / (fp + tp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    reachable = index < len(precision)  # unreachable recall thresholds keep precision 0, as in COCO
    return float(np.sum(precision[index[reachable]]) / len(RECALL_THRESHOLDS))


def cocoeval_ap50(unit_ids: list[int], sizes: list[tuple[int, int]], gt_masks: list[list[dict]],
                  predicted_masks: list[list[dict]], scores: list[list[float]]) -> float:
    """AP50 exactly as GLaMM's script gets it: results through ``COCO.loadRes``, default COCOeval
    parameters, ``stats[1]`` (reference for tests)."""
    gt, dt = coco_pair(unit_ids, sizes, gt_masks, predicted_masks, scores)
    detections = [{"image_id": uid, "category_id": CATEGORY, "segmentation": mask, "score": float(score)}
                  for uid, masks, unit_scores in zip(unit_ids, predicted_masks, scores)
                  for mask, score in zip(masks, unit_scores)]
    if detections:  # loadRes indexes the first result and fails on an empty list
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(detections)
    evaluator = COCOeval(gt, dt, iouType="segm")
    evaluator.params.catIds = [CATEGORY]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    value = float(evaluator.stats[1])
    return value if value >= 0 else float("nan")
