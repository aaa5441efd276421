"""AP50 (metrics.md 4.1): equal, to the last bit, to pycocotools' COCOeval run as GLaMM's script runs it.

The reference below is pycocotools itself: a COCO ground-truth object, ``loadRes`` of the detections,
COCOeval with default parameters, ``stats[1]`` (GLaMM's path), and COCOeval's own ``evalImgs`` for the
per-unit matching.
"""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mixedparts.metrics import ap50
from metrics_helpers import box, empty_rle, random_box

CATEGORY = 1


def coco_run(ids, sizes, truth, predicted, scores) -> COCOeval:
    """Evaluated (not accumulated) COCOeval of the units as GLaMM's files would load them: one COCO
    image per unit, annotation ids in mask order, results through ``loadRes``."""
    images = [{"id": uid, "height": h, "width": w} for uid, (h, w) in zip(ids, sizes)]
    annotations = []
    for uid, masks in zip(ids, truth):
        for mask in masks:  # area() one mask at a time: pycocotools 2.0.x overflows on > 255 under NumPy 2
            annotations.append({"id": len(annotations) + 1, "image_id": uid, "category_id": CATEGORY,
                                "segmentation": mask, "area": float(mask_utils.area(mask)), "iscrowd": 0})
    detections = [{"image_id": uid, "category_id": CATEGORY, "segmentation": m, "score": float(s)}
                  for uid, masks, unit_scores in zip(ids, predicted, scores) for m, s in zip(masks, unit_scores)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": CATEGORY, "name": "x"}]}
        gt.createIndex()
        if detections:
            dt = gt.loadRes(detections)
        else:  # loadRes indexes the first result and fails on an empty list
            dt = COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="segm")
        evaluator.params.catIds = [CATEGORY]
        evaluator.evaluate()
    return evaluator


def cocoeval_ap50(*case) -> float:
    evaluator = coco_run(*case)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.accumulate()
        evaluator.summarize()
    value = float(evaluator.stats[1])
    return value if value >= 0 else float("nan")


def random_case(seed: int, units: int = 12, constant_scores: bool = True, overlapping: bool = False):
    rng = np.random.default_rng(seed)
    ids, sizes, truth, predicted, scores = [], [], [], [], []
    for unit in range(units):
        size = (int(rng.integers(6, 20)), int(rng.integers(6, 20)))
        gt = [random_box(rng, size) for _ in range(int(rng.integers(0, 4)))]
        dt = []
        for mask in gt:  # some near-copies, some misses
            if rng.random() < 0.7:
                dt.append(mask if rng.random() < 0.5 else random_box(rng, size))
        dt += [random_box(rng, size) for _ in range(int(rng.integers(0, 3)))]
        if overlapping and gt:  # GT masks inside one another and detections near several: contested matches
            outer = box(size, 0, 0, size[0], size[1])
            gt.append(outer)
            dt += [outer, gt[0], outer] if rng.random() < 0.5 else [gt[0], outer]
        rng.shuffle(dt)
        ids.append(unit + 1)
        sizes.append(size)
        truth.append(gt)
        predicted.append(dt)
        scores.append([1.0] * len(dt) if constant_scores else rng.choice([0.3, 0.6, 0.9], size=len(dt)).tolist())
    return ids, sizes, truth, predicted, scores


def chunked_ap50(case, chunk: int) -> float:
    """Our path: units matched per chunk (as workers run it), then one accumulation."""
    ids, sizes, truth, predicted, scores = case
    parts, starts = [], list(range(0, len(ids), chunk))
    for start in starts:
        part = slice(start, start + chunk)
        parts.append(ap50.evaluate_units(truth[part], predicted[part], scores[part])[0])
    return ap50.accumulate_ap50(ap50.Detections.concatenate(parts, starts), sum(map(len, truth)))


def unit_results(evaluator: COCOeval, ids):
    """COCOeval's evalImgs at area "all" and maxDets 100, in ``ids`` order (None where COCO has none)."""
    position = {uid: i for i, uid in enumerate(evaluator.params.imgIds)}
    return [evaluator.evalImgs[position[uid]] for uid in ids]  # area "all" comes first


CASES = [(seed, constant, overlapping) for seed in range(12) for constant in (True, False)
         for overlapping in (False, True)]


@pytest.mark.parametrize("seed,constant_scores,overlapping", CASES)
def test_ap50_is_cocoeval_stats_to_the_last_bit(seed, constant_scores, overlapping):
    case = random_case(seed, constant_scores=constant_scores, overlapping=overlapping)
    reference = cocoeval_ap50(*case)
    for chunk in (1, 5, 100):
        value = chunked_ap50(case, chunk)
        assert value == reference or (np.isnan(value) and np.isnan(reference))


@pytest.mark.parametrize("seed,constant_scores,overlapping", CASES)
def test_unit_matches_and_ious_are_cocoevals(seed, constant_scores, overlapping):
    ids, sizes, truth, predicted, scores = case = random_case(seed, units=20, constant_scores=constant_scores,
                                                              overlapping=overlapping)
    evaluator = coco_run(*case)
    detections, ious = ap50.evaluate_units(truth, predicted, scores)
    for u, (uid, theirs, iou) in enumerate(zip(ids, unit_results(evaluator, ids), ious)):
        mine = detections.unit == u
        if theirs is None:  # COCO keeps nothing of a unit without masks
            assert not truth[u] and not predicted[u] and not mine.any()
            continue
        assert detections.scores[mine].tolist() == theirs["dtScores"]
        assert detections.matched[mine].tolist() == (theirs["dtMatches"][0] > 0).tolist()  # row 0: IoU 0.5
        assert not theirs["dtIgnore"].any() and len(truth[u]) == int(np.count_nonzero(theirs["gtIgnore"] == 0))
        assert np.array_equal(np.asarray(iou), np.asarray(evaluator.ious[uid, CATEGORY]))


def test_the_greedy_loop_is_exercised():
    # The overlapping cases must hold contested matches (a GT mask several detections could take, or a
    # detection with a choice), where COCO's order rules decide, or the comparisons above would not test them.
    contested = 0
    for seed in range(12):
        _, _, truth, predicted, scores = random_case(seed, units=20, overlapping=True)
        for iou in ap50.evaluate_units(truth, predicted, scores)[1]:
            hits = np.asarray(iou) >= 0.5
            if hits.size and (hits.sum(axis=0).max() > 1 or hits.sum(axis=1).max() > 1):
                contested += 1
    assert contested >= 20


def test_equal_ious_go_to_the_last_gt_mask():
    # COCO keeps the last of equally good GT masks: with the second detection able to take only the
    # first GT mask, that choice decides whether both detections match.
    iou = np.array([[0.6, 0.6], [0.7, 0.0]])
    assert ap50.match_detections(iou).tolist() == [True, True]
    assert ap50.match_detections(iou[:, ::-1]).tolist() == [True, False]


@pytest.mark.parametrize("seed", range(8))
def test_subsets_of_units_are_cocoevals_over_those_units(seed):
    # What the breakdowns and tasks do: accumulate the detections of some of the units.
    ids, sizes, truth, predicted, scores = case = random_case(seed, units=20, constant_scores=seed % 2 == 0,
                                                              overlapping=seed % 4 < 2)
    detections, _ = ap50.evaluate_units(truth, predicted, scores)
    chosen = np.random.default_rng(seed).random(len(ids)) < 0.5
    value = ap50.accumulate_ap50(detections.of_units(chosen), sum(len(t) for t, c in zip(truth, chosen) if c))
    reference = cocoeval_ap50(*[[x for x, c in zip(column, chosen) if c] for column in case])
    assert value == reference or (np.isnan(value) and np.isnan(reference))


def one_unit(truth, predicted, size=(4, 8)):
    case = ([1], [size], [truth], [predicted], [[1.0] * len(predicted)])
    ours = chunked_ap50(case, 1)
    reference = cocoeval_ap50(*case)
    assert ours == reference or (np.isnan(ours) and np.isnan(reference))
    return ours


def test_tie_order_decides_ap_with_constant_scores():
    size = (4, 8)
    left, right = box(size, 0, 0, 4, 4), box(size, 0, 4, 4, 8)
    miss = box(size, 0, 3, 1, 5)
    # TP then FP: precision 1 up to recall 0.5 -> 51 of 101 recall thresholds.
    assert one_unit([left, right], [left, miss]) == pytest.approx(51 / 101)
    # FP then TP: precision 0.5 up to recall 0.5.
    assert one_unit([left, right], [miss, left]) == pytest.approx(0.5 * 51 / 101)
    assert one_unit([left, right], [left, right]) == pytest.approx(1.0)


def test_iou_of_exactly_half_is_a_match():
    size = (4, 8)
    assert one_unit([box(size, 0, 0, 4, 4)], [box(size, 0, 0, 4, 2)]) == pytest.approx(1.0)  # 8 of 16 pixels
    assert one_unit([box(size, 0, 0, 4, 4)], [box(size, 0, 0, 3, 2)]) == 0.0  # 6 of 16


def test_no_predictions_is_zero_and_no_gt_is_undefined():
    size = (4, 8)
    gt = [box(size, 0, 0, 2, 2)]
    assert chunked_ap50(([1, 2], [size, size], [gt, gt], [[], []], [[], []]), 1) == 0.0
    assert np.isnan(one_unit([], [gt[0]]))
    assert np.isnan(chunked_ap50(([], [], [], [], []), 1))


def test_a_unit_with_predictions_but_no_gt_adds_false_positives():
    size = (4, 8)
    mask = box(size, 0, 0, 2, 2)
    case = ([1, 2], [size, size], [[], [mask]], [[mask], [mask]], [[1.0], [1.0]])
    # FP (unit 1) ranks before TP (unit 2): precision 0.5 at full recall.
    assert chunked_ap50(case, 1) == cocoeval_ap50(*case) == pytest.approx(0.5)


def test_only_the_first_100_masks_of_a_unit_count():
    size = (4, 8)
    target = box(size, 0, 0, 4, 4)
    predicted = [empty_rle(size)] * 100 + [target]
    assert one_unit([target], predicted) == 0.0


def test_iou_matrices_come_back_in_score_order():
    size = (4, 8)
    a, b = box(size, 0, 0, 4, 4), box(size, 0, 4, 4, 8)
    _, ious = ap50.evaluate_units([[a, b]], [[b, a]], [[0.2, 0.9]])
    assert np.asarray(ious[0]).tolist() == [[1.0, 0.0], [0.0, 1.0]]  # a (score 0.9) first
