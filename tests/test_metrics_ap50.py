"""AP50 (metrics.md 4.1): equal to a direct pycocotools COCOeval run as GLaMM does it, on random cases."""

import numpy as np
import pytest

from mixedparts.metrics import ap50
from metrics_helpers import box, empty_rle, random_box


def random_case(seed: int, units: int = 12, constant_scores: bool = True):
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
        rng.shuffle(dt)
        ids.append(unit + 1)
        sizes.append(size)
        truth.append(gt)
        predicted.append(dt)
        scores.append([1.0] * len(dt) if constant_scores else rng.choice([0.3, 0.6, 0.9], size=len(dt)).tolist())
    return ids, sizes, truth, predicted, scores


def chunked_ap50(case, chunk: int) -> float:
    """Our path: COCOeval per chunk of units (as workers run it), then one accumulate."""
    ids, sizes, truth, predicted, scores = case
    eval_imgs = []
    for start in range(0, len(ids), chunk):
        part = slice(start, start + chunk)
        eval_imgs += ap50.evaluate_units(ids[part], sizes[part], truth[part], predicted[part], scores[part])[0]
    return ap50.accumulate_ap50(eval_imgs, ids)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("constant_scores", [True, False])
def test_equal_to_direct_cocoeval(seed, constant_scores):
    case = random_case(seed, constant_scores=constant_scores)
    reference = ap50.cocoeval_ap50(*case)
    for chunk in (1, 5, 100):
        value = chunked_ap50(case, chunk)
        assert value == pytest.approx(reference, abs=1e-12) or (np.isnan(value) and np.isnan(reference))


@pytest.mark.parametrize("seed", range(8))
def test_vectorized_accumulate_equals_cocoeval(seed):
    case = random_case(seed, units=20, constant_scores=seed % 2 == 0)
    ids = case[0]
    eval_imgs, _ = ap50.evaluate_units(*case)
    flags = [ap50.detection_flags(e) for e in eval_imgs]
    value = ap50.ap_from_flags(np.concatenate([f[0] for f in flags]), np.concatenate([f[1] for f in flags]),
                               np.concatenate([f[2] for f in flags]), sum(f[3] for f in flags))
    assert value == pytest.approx(ap50.accumulate_ap50(eval_imgs, ids), abs=1e-12)


def one_unit(truth, predicted, size=(4, 8)):
    return ap50.cocoeval_ap50([1], [size], [truth], [predicted], [[1.0] * len(predicted)])


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
    eval_imgs, _ = ap50.evaluate_units([1, 2], [size, size], [gt, gt], [[], []], [[], []])
    assert ap50.accumulate_ap50(eval_imgs, [1, 2]) == 0.0
    eval_imgs, _ = ap50.evaluate_units([1], [size], [[]], [[gt[0]]], [[1.0]])
    assert np.isnan(ap50.accumulate_ap50(eval_imgs, [1]))
    assert np.isnan(ap50.accumulate_ap50([], []))


def test_a_unit_with_predictions_but_no_gt_adds_false_positives():
    size = (4, 8)
    mask = box(size, 0, 0, 2, 2)
    eval_imgs, _ = ap50.evaluate_units([1, 2], [size, size], [[], [mask]], [[mask], [mask]], [[1.0], [1.0]])
    # FP (unit 1) ranks before TP (unit 2): precision 0.5 at full recall.
    assert ap50.accumulate_ap50(eval_imgs, [1, 2]) == pytest.approx(0.5)


def test_only_the_first_100_masks_of_a_unit_count():
    size = (4, 8)
    target = box(size, 0, 0, 4, 4)
    predicted = [empty_rle(size)] * 100 + [target]
    assert one_unit([target], predicted) == 0.0


def test_iou_matrices_come_back_in_score_order():
    size = (4, 8)
    a, b = box(size, 0, 0, 4, 4), box(size, 0, 4, 4, 8)
    _, ious = ap50.evaluate_units([7], [size], [[a, b]], [[b, a]], [[0.2, 0.9]])
    assert np.asarray(ious[7]).tolist() == [[1.0, 0.0], [0.0, 1.0]]  # a (score 0.9) first


@pytest.mark.parametrize("seed", range(4))
def test_results_index_equals_pycocotools_loadres(seed):
    # coco_pair builds the results object itself (one vectorized area/bbox call); it must hold what
    # COCO.loadRes, the path of GLaMM's script, would build from the same detections.
    ids, sizes, truth, predicted, scores = random_case(seed, constant_scores=False)
    gt, ours = ap50.coco_pair(ids, sizes, truth, predicted, scores)
    detections = [{"image_id": uid, "category_id": ap50.CATEGORY, "segmentation": m, "score": float(s)}
                  for uid, masks, unit_scores in zip(ids, predicted, scores) for m, s in zip(masks, unit_scores)]
    theirs = gt.loadRes(detections)
    assert ours.dataset["images"] == theirs.dataset["images"]
    assert len(ours.anns) == len(theirs.anns) == len(detections)
    for ann_id, ann in theirs.anns.items():
        mine = ours.anns[ann_id]
        assert set(mine) == set(ann)
        for key in ann:
            assert np.array_equal(mine[key], ann[key]) and type(mine[key]) is type(ann[key]), key
    assert ours.imgToAnns.keys() == theirs.imgToAnns.keys()


def test_areas_of_more_masks_than_pycocotools_takes_at_once():
    masks = [box((12, 12), 0, 0, 1 + i % 10, 1 + i % 7) for i in range(600)]
    assert ap50.mask_areas(masks).tolist() == [(1 + i % 10) * (1 + i % 7) for i in range(600)]
