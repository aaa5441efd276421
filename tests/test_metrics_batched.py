"""The batched pairings (mixedparts.metrics.batched) against the per-unit functions they replace in scoring."""

import numpy as np
import pytest

from mixedparts.metrics import ap50, batched, units as units_module
from mixedparts.metrics.matching import greedy_pairs, recall_matches
from mixedparts.metrics.options import EvalOptions
from mixedparts.metrics.units import Units, score_chunk, score_chunk_by_unit
from metrics_helpers import random_box


def random_matrix(rng, shape, dtype=float):
    # Few distinct values, so that ties and values exactly at the thresholds are common.
    return rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0], size=shape).astype(dtype)


def random_cases(seed, count=40, largest=12):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        # Up to 12 x 12: past matching.SMALL, where the per-unit functions switch to their numpy loops.
        shape = (int(rng.integers(1, largest + 1)), int(rng.integers(1, largest + 1)))
        similarity = random_matrix(rng, shape[::-1], np.float32)  # GT x predictions, as text_similarity
        similarity[rng.random(similarity.shape) < 0.2] = np.float32(0.7)  # exactly at a float32 threshold
        cases.append((random_matrix(rng, shape), similarity))
    return cases


def split_by_unit(entries, taken):
    found = [[] for _ in range(entries.units)]
    for e in taken.tolist():
        found[entries.unit[e]].append((int(entries.row[e]), int(entries.column[e])))
    return found


@pytest.mark.parametrize("seed", range(12))
def test_greedy_pairs_as_matching_greedy_pairs(seed):
    cases = random_cases(seed)
    entries = batched.Entries.of([iou for iou, _ in cases])
    taken, rank = batched.greedy(entries, 0.0, strict=True)
    assert split_by_unit(entries, taken) == [[(r, c) for r, c, _ in greedy_pairs(iou)] for iou, _ in cases]
    assert all(np.diff(rank[entries.unit[taken] == u]).tolist() == [1] * (int((entries.unit[taken] == u).sum()) - 1)
               for u in range(entries.units))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("stop", [True, False])
@pytest.mark.parametrize("text_threshold", [0.5, 0.7, None])
def test_greedy_matches_as_recall_matches(seed, stop, text_threshold):
    cases = random_cases(seed)
    entries = batched.Entries.of([iou for iou, _ in cases])
    gate = None
    if text_threshold is not None:
        def gate(index):
            return np.array([not cases[entries.unit[e]][1][entries.column[e], entries.row[e]]
                             < np.float32(text_threshold) for e in index.tolist()], dtype=bool)
    taken, _ = batched.greedy(entries, 0.5, strict=False, transposed=True, gate=gate, stop_at_first_failure=stop)
    expected = [recall_matches(iou.T, None if text_threshold is None else similarity, 0.5, text_threshold or 0.5,
                               stop) for iou, similarity in cases]
    assert split_by_unit(entries, taken) == [[(p, g) for g, p in unit] for unit in expected]


@pytest.mark.parametrize("seed", range(12))
def test_coco_matched_as_match_detections(seed):
    cases = random_cases(seed)
    matrices = [iou for iou, _ in cases] + [np.zeros((3, 0)), np.ones((2, 1))]
    entries = batched.Entries.of(matrices)
    expected = np.concatenate([ap50.match_detections(m) if m.size else np.zeros(len(m), bool) for m in matrices])
    assert batched.coco_matched(entries, ap50.IOU_THRESHOLD).tolist() == expected.tolist()


def test_no_units_and_no_candidates():
    entries = batched.Entries.of([])
    assert batched.greedy(entries, 0.0, strict=True)[0].tolist() == []
    assert batched.coco_matched(entries, 0.5).tolist() == []
    entries = batched.Entries.of([np.zeros((2, 3))])
    assert batched.greedy(entries, 0.0, strict=True)[0].tolist() == []
    assert batched.coco_matched(entries, 0.5).tolist() == [False, False]


# ------------------------------------------------------------------ score_chunk against score_chunk_by_unit

SIZE = (6, 5)  # tiny masks: many equal IoUs


def unit_embeddings(rng, labels):
    """Unit vectors for label ids in 8 dimensions; label 1's cosine with label 0 is 0.5 up to float32
    rounding, label 3's with label 2 is 0.7 the same way: the gate's estimate is unsure of them."""
    vectors = rng.normal(size=(labels, 8))
    for base, other, cosine, axis in ((0, 1, 0.5, 7), (2, 3, 0.7, 6)):
        vectors[base, axis] = 0.0
        vectors[base] /= np.linalg.norm(vectors[base])
        vectors[other] = cosine * vectors[base] + np.sqrt(1 - cosine ** 2) * np.eye(8)[axis]
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def random_units(rng, count, labels=6, raw_labels=True, scores="constant"):
    fields = {k: [] for k in ("gt_masks", "gt_labels", "predicted_masks", "predicted_labels", "scores",
                              "gt_recall_labels", "predicted_recall_labels")}
    for u in range(count):
        gt_count = int(rng.integers(0, 7))
        predicted_count = 105 if u == count // 2 else int(rng.integers(0, 8))  # one unit past maxDets
        fields["gt_masks"].append([random_box(rng, SIZE) for _ in range(gt_count)])
        fields["predicted_masks"].append([random_box(rng, SIZE) for _ in range(predicted_count)])
        for side, n in (("gt", gt_count), ("predicted", predicted_count)):
            fields[f"{side}_labels"].append(rng.integers(0, labels, size=n).astype(np.int64))
            fields[f"{side}_recall_labels"].append(rng.integers(0, labels, size=n).astype(np.int64))
        fields["scores"].append([1.0] * predicted_count if scores == "constant"
                                else rng.choice([0.1, 0.5, 0.9], size=predicted_count).tolist())
    if not raw_labels:
        fields["gt_recall_labels"] = fields["predicted_recall_labels"] = None
    return Units(np.arange(count, dtype=np.int64), np.zeros(count, dtype=np.int64), list(range(1, count + 1)),
                 ["?"] * count, **fields)


def as_plain(chunk):
    out = {}
    for name in ("start", "miou", "recall_matched"):
        value = getattr(chunk, name)
        out[name] = value.tolist() if isinstance(value, np.ndarray) else value
    for name in ("miou_pairs", "recall_pairs", "text_pairs"):
        pairs = getattr(chunk, name)
        out[name] = [np.asarray(getattr(pairs, f), dtype=np.int64).tolist()
                     for f in ("unit", "predicted", "ground_truth")]
    for name in ("unit", "scores", "matched"):
        out["detections." + name] = getattr(chunk.detections, name).tolist()
    return out


VARIANTS = [
    {},
    {"miou": "per-gt", "recall_matching": "skip", "label_pairs": "recall"},
    {"miou": "hungarian", "label_pairs": "text", "recall_text_threshold": 0.7},
    {"recall_text_gate": "off", "recall_iou_threshold": 0.25, "ap_scores": "predicted"},
    {"recall_matching": "skip", "recall_text_threshold": 0.7, "label_pairs": "recall", "ap_scores": "predicted"},
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_score_chunk_as_by_unit(seed, variant, monkeypatch):
    rng = np.random.default_rng(seed)
    options = EvalOptions(**VARIANTS[variant])
    raw = seed % 2 == 0
    units = random_units(rng, 60, raw_labels=raw, scores=options.ap_scores)
    embeddings = unit_embeddings(rng, 6)
    job = (units, options, embeddings, embeddings)
    exact_calls = []
    similarity = units_module.text_similarity
    monkeypatch.setattr(units_module, "text_similarity", lambda *a: exact_calls.append(1) or similarity(*a))
    batched_result = as_plain(score_chunk(job, (10, 55)))
    batched_exact = len(exact_calls)
    assert batched_result == as_plain(score_chunk_by_unit(job, (10, 55)))
    assert batched_exact <= len(exact_calls) - batched_exact  # the per-unit loop: one matrix per unit


@pytest.mark.parametrize("threshold, labels", [(0.5, (0, 1)), (0.7, (2, 3))])
def test_gate_checks_at_the_threshold_use_the_units_own_matrix(threshold, labels, monkeypatch):
    # Every GT label is one of a pair whose cosine is the threshold up to float32 rounding, every
    # predicted label the other: the float64 estimate cannot decide, the unit's float32 matrix does.
    rng = np.random.default_rng(7)
    units = random_units(rng, 40, raw_labels=False)
    units.gt_labels = [np.full(len(m), labels[0], dtype=np.int64) for m in units.gt_masks]
    units.predicted_labels = [np.full(len(m), labels[1], dtype=np.int64) for m in units.predicted_masks]
    embeddings = unit_embeddings(rng, 6)
    job = (units, EvalOptions(recall_text_threshold=threshold, recall_labels="normalized"), embeddings, embeddings)
    exact_calls = []
    similarity = units_module.text_similarity
    monkeypatch.setattr(units_module, "text_similarity", lambda *a: exact_calls.append(1) or similarity(*a))
    result = as_plain(score_chunk(job, (0, 40)))
    assert exact_calls
    assert result == as_plain(score_chunk_by_unit(job, (0, 40)))


def test_score_chunk_with_nan_iou_scores_unit_by_unit(monkeypatch):
    rng = np.random.default_rng(0)
    units = random_units(rng, 20)
    job = (units, EvalOptions(), unit_embeddings(rng, 6), unit_embeddings(rng, 6))
    calls = []
    by_unit = units_module.score_chunk_by_unit
    monkeypatch.setattr(units_module, "score_chunk_by_unit", lambda *a: calls.append(1) or by_unit(*a))
    iou = units_module.mask_utils.iou

    def with_nan(*args):
        result = np.array(iou(*args), dtype=float)
        result.flat[0] = np.nan
        return result

    monkeypatch.setattr(ap50.mask_utils, "iou", with_nan)
    result = as_plain(score_chunk(job, (0, 20)))
    assert calls == [1]
    assert result == as_plain(by_unit(job, (0, 20)))
