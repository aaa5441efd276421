"""mIoU and Recall pairing, hand-computed (metrics.md 4.2, 4.3): known IoUs, ties, empty units, the early stop."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mixedparts.metrics import ap50, matching
from mixedparts.metrics.matching import greedy_pairs, optimal_pairs, recall_matches, text_pairs
from mixedparts.metrics.miou import miou, unit_miou
from mixedparts.metrics.recall import recall, text_similarity, unit_recall
from metrics_helpers import box


def iou_matrix(predicted, truth):
    return np.asarray(mask_utils.iou(predicted, truth, [0] * len(truth)), dtype=float).reshape(len(predicted),
                                                                                               len(truth))


def test_known_ious_from_tiny_masks():
    size = (4, 8)
    square = box(size, 0, 0, 2, 2)          # 4 pixels
    wide = box(size, 0, 0, 2, 4)            # 8 pixels, contains square: IoU 4/8
    far = box(size, 2, 6, 4, 8)             # disjoint from both
    iou = iou_matrix([square, far], [wide, far])
    assert iou.tolist() == [[0.5, 0.0], [0.0, 1.0]]
    score, pairs = unit_miou(iou)
    assert pairs == [(1, 1, 1.0), (0, 0, 0.5)]
    assert score == pytest.approx(0.75)


def test_greedy_takes_the_largest_iou_first_not_the_best_total():
    iou = np.array([[0.6, 0.5],
                    [0.5, 0.0]])
    assert greedy_pairs(iou) == [(0, 0, 0.6)]  # (1, 1) has IoU 0: never paired
    assert unit_miou(iou)[0] == pytest.approx(0.6)
    assert unit_miou(iou, "hungarian")[0] == pytest.approx(0.5)  # (0, 1) + (1, 0) = 1.0 total
    assert sorted(optimal_pairs(iou)) == [(0, 1, 0.5), (1, 0, 0.5)]


def test_ties_go_to_the_first_entry_in_row_major_order():
    iou = np.array([[0.4, 0.7],
                    [0.7, 0.7]])
    assert greedy_pairs(iou) == [(0, 1, 0.7), (1, 0, 0.7)]
    # Recall's matrix is GT x predictions, so its ties resolve on the transpose.
    assert recall_matches(iou.T, None) == [(0, 1), (1, 0)]
    tie = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert greedy_pairs(tie) == [(0, 0, 0.5), (1, 1, 0.5)]


def test_unpaired_gt_and_extra_predictions_do_not_lower_a_unit():
    one_perfect_four_missed = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])
    assert unit_miou(one_perfect_four_missed)[0] == 1.0
    assert unit_miou(one_perfect_four_missed, "per-gt")[0] == pytest.approx(0.2)
    extra_predictions = np.array([[0.8], [0.0], [0.3]])
    assert unit_miou(extra_predictions)[0] == pytest.approx(0.8)


def test_empty_units_score_zero():
    for shape in ((0, 3), (2, 0), (0, 0)):
        assert unit_miou(np.zeros(shape)) == (0.0, [])
        assert recall_matches(np.zeros(shape[::-1]), None) == []
    assert unit_miou(np.zeros((2, 2)))[0] == 0.0  # no overlap: no pair
    assert miou(np.array([1.0, 0.0, 0.5, 0.0])) == pytest.approx(0.375)  # units without predictions count
    assert np.isnan(miou(np.zeros(0)))


def test_nan_iou_counts_as_zero():
    iou = np.array([[np.nan, 0.3]])
    assert greedy_pairs(iou) == [(0, 1, 0.3)]


def test_recall_counts_iou_and_text_at_exactly_the_threshold():
    iou = np.array([[0.5]])
    assert recall_matches(iou, np.array([[0.5]])) == [(0, 0)]
    assert recall_matches(np.array([[0.4999]]), np.array([[1.0]])) == []
    assert recall_matches(iou, np.array([[0.4999]])) == []


def test_recall_stops_at_the_first_failure_unless_skipping():
    # GT x predictions. The best pair (0, 0) overlaps well but is mislabelled; (1, 1) would pass.
    iou = np.array([[0.9, 0.0],
                    [0.0, 0.8]])
    text = np.array([[0.1, 0.0],
                     [0.0, 0.9]])
    assert unit_recall(iou, text) == []
    assert unit_recall(iou, text, matching="skip") == [(1, 1)]
    assert unit_recall(iou, None) == [(0, 0), (1, 1)]  # gate off


def test_skip_still_stops_below_the_iou_threshold():
    iou = np.array([[0.9, 0.4], [0.45, 0.3]])
    text = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert unit_recall(iou, text, matching="skip") == []


def test_recall_is_micro_and_zero_without_gt():
    assert recall(3, 4) == 0.75
    assert recall(0, 0) == 0.0


def test_text_similarity_is_cosine_and_exactly_one_for_the_same_label():
    embeddings = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    similarity = text_similarity(embeddings, np.array([0, 1]), np.array([1, 2, 0]))
    assert similarity == pytest.approx(np.array([[0.6, 0.0, 1.0], [1.0, 0.8, 0.6]]))


def test_text_pairs_maximize_total_similarity():
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(text_pairs(similarity)) == [(0, 1), (1, 0)]


def random_matrix(rng, shape, dtype=float):
    # Few distinct values, so that ties and values exactly at the thresholds are common; some NaN.
    values = rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0, np.nan], size=shape)
    return values.astype(dtype)


@pytest.mark.parametrize("seed", range(40))
def test_small_matrices_on_lists_pair_as_the_numpy_loops(seed, monkeypatch):
    # Units with few masks are paired on Python lists (below matching.SMALL, for AP's matching too); the
    # numpy loops are the reference, forced here by lowering the size limit below every matrix.
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(30):
        shape = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
        iou = random_matrix(rng, shape)
        similarity = np.nan_to_num(random_matrix(rng, shape, np.float32))
        similarity[rng.random(shape) < 0.2] = np.float32(0.7)  # exactly at a float32 threshold
        cases.append((iou, similarity))

    def run():
        out = []
        for iou, similarity in cases:
            out.append(greedy_pairs(iou))
            for stop in (True, False):
                for threshold in (0.5, 0.7):
                    out.append(recall_matches(iou, similarity, 0.5, threshold, stop))
                out.append(recall_matches(iou, None, 0.5, 0.5, stop))
            out.append(ap50.match_detections(np.nan_to_num(iou)).tolist())
        return out

    small = run()
    monkeypatch.setattr(matching, "SMALL", -1)
    reference = run()
    assert small == reference
