"""Units of mask comparison and their scoring (docs/metrics.md, A1).

A unit is one image of one sample: COCO needs equal-sized masks, and the images of a pair differ in
size. Units are numbered from 1 in ground-truth order (sample order, then image order); that order
and the mask order within a unit decide COCO's ties, so both are fixed here.

Scoring runs over chunks of units, in forked worker processes when there are many: masks are never
decoded, IoUs come from pycocotools' RLE IoU, and label similarities from embeddings computed once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from mixedparts.forking import available_cores, can_fork, chunk_bounds, fork_map
from mixedparts.metrics import ap50, batched
from mixedparts.metrics.matching import text_pairs
from mixedparts.metrics.miou import unit_miou
from mixedparts.metrics.options import EvalOptions
from mixedparts.metrics.recall import text_similarity, unit_recall
from mixedparts.metrics.semantic import LabelTable

PART_TASKS = ("common_parts", "unique_parts")
SERIAL_BELOW = 4000  # units; forking costs more than it saves below this


@dataclass
class Units:
    sample: np.ndarray  # index of the unit's row in the ground truth
    image_index: np.ndarray
    unit_ids: list[int]
    category: list[str]  # the category of the object in the unit's image
    gt_masks: list[list[dict]]
    gt_labels: list[np.ndarray]
    predicted_masks: list[list[dict]]
    predicted_labels: list[np.ndarray]
    scores: list[list[float]]
    gt_recall_labels: list[np.ndarray] | None = None
    """Label ids the Recall text gate compares, when they differ from ``gt_labels`` (raw labels)."""
    predicted_recall_labels: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.unit_ids)


def build_units(rows: list[dict], predictions: Mapping[str, dict], table: LabelTable,
                options: EvalOptions, recall_table: LabelTable | None = None) -> Units:
    """One unit per (sample, image), GT and predicted segments routed by ``image_index``.

    ``recall_table`` interns the labels the Recall gate compares when they are not ``table``'s.
    """
    sample, image_index, category = [], [], []
    gt_masks, predicted_masks, scores = [], [], []
    # Label ids of every unit, unit after unit; each unit's array is a view of these (see _per_unit).
    gt_ids, predicted_ids, gt_recall_ids, predicted_recall_ids = [], [], [], []
    gt_ends, predicted_ends = [], []
    drop_objects = options.gt_masks == "parts-only"
    use_scores = options.ap_scores == "predicted"
    with_recall = recall_table is not None
    # Labels are interned in the order they are met (row by row, GT before predictions; each table has
    # its own ids): that order fixes the ids, hence the order in which the text model embeds them. A dict
    # lookup first saves the call on labels met before, most of them.
    def route(segments: list[dict], count: int, predicted: bool):
        """Per image: the segments' masks, label ids (and Recall label ids), in one pass."""
        masks: list[list[dict]] = [[] for _ in range(count)]
        ids: list[list[int]] = [[] for _ in range(count)]
        recall_ids: list[list[int]] | None = [[] for _ in range(count)] if with_recall else None
        known, intern = table.known(predicted), table.intern
        if with_recall:
            recall_known, recall_intern = recall_table.known(predicted), recall_table.intern
        for segment in segments:
            k, label = segment["image_index"], segment["label"]
            masks[k].append(segment["mask"])
            found = known.get(label)
            ids[k].append(intern(label, predicted) if found is None else found)
            if with_recall:
                found = recall_known.get(label)
                recall_ids[k].append(recall_intern(label, predicted) if found is None else found)
        return masks, ids, recall_ids

    for number, row in enumerate(rows):
        count = len(row["images"])
        segments = row["segments"]
        if drop_objects and row["task"] in PART_TASKS:
            segments = [segment for segment in segments if segment["kind"] != "object"]
        prediction = predictions.get(row["sample_id"])
        guesses = prediction["segments"] if prediction is not None else []
        truth, truth_labels, truth_recall = route(segments, count, False)
        predicted, predicted_labels, predicted_recall = route(guesses, count, True)
        if use_scores:
            predicted_scores: list[list[float]] = [[] for _ in range(count)]
            for segment in guesses:
                predicted_scores[segment["image_index"]].append(float(segment.get("score", 1.0)))
        else:
            predicted_scores = [[1.0] * len(masks) for masks in predicted]
        objects = {obj["image_index"]: obj["category"] for obj in row["objects"]}
        for k in range(count):
            sample.append(number)
            image_index.append(k)
            category.append(objects.get(k, "?"))
            gt_masks.append(truth[k])
            predicted_masks.append(predicted[k])
            scores.append(predicted_scores[k])
            gt_ids += truth_labels[k]
            predicted_ids += predicted_labels[k]
            if with_recall:
                gt_recall_ids += truth_recall[k]
                predicted_recall_ids += predicted_recall[k]
            gt_ends.append(len(gt_ids))
            predicted_ends.append(len(predicted_ids))
    return Units(np.array(sample, dtype=np.int64), np.array(image_index, dtype=np.int64),
                 list(range(1, len(sample) + 1)), category, gt_masks, _per_unit(gt_ids, gt_ends), predicted_masks,
                 _per_unit(predicted_ids, predicted_ends), scores,
                 _per_unit(gt_recall_ids, gt_ends) if with_recall else None,
                 _per_unit(predicted_recall_ids, predicted_ends) if with_recall else None)


def _per_unit(ids: list[int], ends: list[int]) -> list[np.ndarray]:
    """Each unit's label ids as a view of one array (one conversion instead of one per unit)."""
    flat = np.array(ids, dtype=np.int64)
    return [flat[start:end] for start, end in zip([0] + ends[:-1], ends)]


@dataclass
class Pairs:
    """Label pairs, as parallel arrays: unit, predicted label id, GT label id."""

    unit: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    ground_truth: list[int] = field(default_factory=list)

    def add(self, unit: int, predicted: int, ground_truth: int) -> None:
        self.unit.append(unit)
        self.predicted.append(predicted)
        self.ground_truth.append(ground_truth)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.unit, dtype=np.int64), np.array(self.predicted, dtype=np.int64),
                np.array(self.ground_truth, dtype=np.int64))

    def extend(self, other: Pairs) -> None:
        self.unit.extend(other.unit)
        self.predicted.extend(other.predicted)
        self.ground_truth.extend(other.ground_truth)


@dataclass
class ChunkScores:
    start: int
    miou: np.ndarray
    recall_matched: np.ndarray
    miou_pairs: Pairs
    recall_pairs: Pairs
    text_pairs: Pairs
    detections: ap50.Detections  # AP's ranked detections; ``unit`` counts from the chunk's start


def score_chunk(job: tuple, bounds: tuple[int, int]) -> ChunkScores:
    """``job``: (units, options, SS embeddings, recall embeddings).

    The pairings of all units of the chunk are made at once (:mod:`mixedparts.metrics.batched`); what
    :func:`score_chunk_by_unit` does one unit at a time, with the same results.
    """
    start, stop = bounds
    units, options, ss_embeddings, recall_embeddings = job
    detections, ranked_ious = ap50.evaluate_units(units.gt_masks[start:stop], units.predicted_masks[start:stop],
                                                  units.scores[start:stop])
    # AP's IoU matrices list detections by descending score, truncated to 100; with equal scores and
    # at most 100 masks that is the file order mIoU and Recall need.
    reuse = options.ap_scores == "constant"
    both, matrices = [], []  # the units with masks on both sides (no pair, no match otherwise), their IoUs
    for offset, u in enumerate(range(start, stop)):
        predicted, truth = units.predicted_masks[u], units.gt_masks[u]
        if not predicted or not truth:
            continue
        both.append(u)
        if reuse and len(predicted) <= ap50.MAX_DETECTIONS:
            matrices.append(ranked_ious[offset])
        else:
            matrices.append(mask_utils.iou(predicted, truth, [0] * len(truth)))
    entries = batched.Entries.of(matrices)
    if np.isnan(entries.value).any():
        return score_chunk_by_unit(job, bounds)
    both = np.array(both, dtype=np.int64)
    gt_ids, predicted_ids = _flat_ids(units.gt_labels, both), _flat_ids(units.predicted_labels, both)
    pair_unit = both[entries.unit]  # per entry

    def pairs_of(taken: np.ndarray) -> Pairs:
        return Pairs(pair_unit[taken].tolist(), predicted_ids[entries.row_slot[taken]].tolist(),
                     gt_ids[entries.column_slot[taken]].tolist())

    miou_scores = np.zeros(stop - start)
    if options.miou == "hungarian":
        miou_pairs = Pairs()
        for local, u in enumerate(both.tolist()):
            iou = np.asarray(matrices[local], dtype=float)
            miou_scores[u - start], pairs = unit_miou(iou, options.miou)
            for p, g, _ in pairs:
                miou_pairs.add(u, units.predicted_labels[u][p], units.gt_labels[u][g])
    else:
        taken, _ = batched.greedy(entries, 0.0, strict=True)
        miou_pairs = pairs_of(taken)
        # Each unit's total adds its pairs' IoUs in the order taken, as unit_miou's sum() does.
        values = entries.value[taken].tolist()
        ends = np.cumsum(np.bincount(entries.unit[taken], minlength=entries.units)).tolist()
        totals = [sum(values[a:b]) for a, b in zip([0] + ends[:-1], ends)]
        divisors = entries.columns.tolist() if options.miou == "per-gt" else np.diff([0] + ends).tolist()
        miou_scores[both - start] = [total / d if d else 0.0 for total, d in zip(totals, divisors)]
        # (a unit without pairs has total 0 and, for glamm, divisor 0: it scores 0, as unit_miou)

    gate = None
    if options.recall_text_gate == "on":
        if units.gt_recall_labels is not None:
            gate_gt, gate_predicted = (_flat_ids(units.gt_recall_labels, both),
                                       _flat_ids(units.predicted_recall_labels, both))
        else:
            gate_gt, gate_predicted = gt_ids, predicted_ids
        gate = _TextGate(entries, both, units, recall_embeddings, gate_gt, gate_predicted,
                         options.recall_text_threshold)
    taken, _ = batched.greedy(entries, options.recall_iou_threshold, strict=False, transposed=True,
                              gate=gate, stop_at_first_failure=options.recall_matching == "stop")
    matched = np.zeros(stop - start, dtype=np.int64)
    matched[both - start] = np.bincount(entries.unit[taken], minlength=entries.units)
    recall_pairs = pairs_of(taken) if options.label_pairs == "recall" else Pairs()
    label_pairs = Pairs()
    if options.label_pairs == "text":
        for u in both.tolist():
            _add_text_pairs(label_pairs, u, units.predicted_labels[u], units.gt_labels[u], ss_embeddings)
    return ChunkScores(start, miou_scores, matched, miou_pairs, recall_pairs, label_pairs, detections)


def _add_text_pairs(label_pairs: Pairs, u: int, predicted_labels: np.ndarray, gt_labels: np.ndarray,
                    ss_embeddings: np.ndarray) -> None:
    """``--label-pairs text``: the unit's labels paired by text similarity alone (identical labels: exactly 1)."""
    ss = ss_embeddings[predicted_labels] @ ss_embeddings[gt_labels].T
    ss[predicted_labels[:, None] == gt_labels[None, :]] = 1.0
    for p, g in text_pairs(ss):
        label_pairs.add(u, predicted_labels[p], gt_labels[g])


def _flat_ids(per_unit: list[np.ndarray], which: np.ndarray) -> np.ndarray:
    """The label ids of the units ``which``, one unit after the other."""
    return np.concatenate([per_unit[u] for u in which.tolist()] + [np.zeros(0, dtype=np.int64)])


class _TextGate:
    """Which entries pass the Recall text gate: label similarity not below the threshold, as
    :func:`text_similarity`'s float32 matrix of the unit says.

    The similarity is estimated in float64 once per distinct (GT label, predicted label) pair asked
    (a chunk's entries repeat a few thousand pairs; exact products, so exact but for the sum's last
    bits). A float32 dot product of ``d`` terms, summed in any order, is within ``d`` float32 rounding
    units (2**-24) of it, times the sum of the terms' magnitudes; only entries that close to the
    threshold need the unit's own matrix, computed as :func:`score_chunk_by_unit` computes it.
    """

    def __init__(self, entries, both, units, embeddings, gt_ids, predicted_ids, threshold: float):
        self.entries, self.both, self.embeddings = entries, both, embeddings
        self.gt_ids, self.predicted_ids = gt_ids, predicted_ids
        # the per-unit labels the ids come from, for the unit matrices of the unsure entries
        recall_labels = units.gt_recall_labels is not None
        self.gt_labels = units.gt_recall_labels if recall_labels else units.gt_labels
        self.predicted_labels = units.predicted_recall_labels if recall_labels else units.predicted_labels
        self.threshold = embeddings.dtype.type(threshold)  # numpy compares in the matrix's dtype
        self.tolerance = embeddings.shape[1] * 2.0 ** -20  # 16 times that bound
        self.wide = embeddings.astype(np.float64)
        self.wide_magnitude = np.abs(self.wide)

    def __call__(self, index: np.ndarray) -> np.ndarray:
        gt = self.gt_ids[self.entries.column_slot[index]]
        predicted = self.predicted_ids[self.entries.row_slot[index]]
        pair, which = np.unique(gt * len(self.wide) + predicted, return_inverse=True)
        pair_gt, pair_predicted = np.divmod(pair, len(self.wide))
        estimate = np.einsum("ij,ij->i", self.wide[pair_gt], self.wide[pair_predicted])
        magnitude = np.einsum("ij,ij->i", self.wide_magnitude[pair_gt], self.wide_magnitude[pair_predicted])
        fails = (estimate < self.threshold)[which]
        unsure = ~(np.abs(estimate - self.threshold) > self.tolerance * magnitude)[which]  # NaN included
        for k in np.flatnonzero(unsure & (gt != predicted)).tolist():
            e = int(index[k])
            u = int(self.both[self.entries.unit[e]])
            similarity = text_similarity(self.embeddings, self.gt_labels[u], self.predicted_labels[u])
            fails[k] = similarity[self.entries.column[e], self.entries.row[e]] < self.threshold
        fails[gt == predicted] = False  # identical labels: similarity exactly 1
        return ~fails


def score_chunk_by_unit(job: tuple, bounds: tuple[int, int]) -> ChunkScores:
    """:func:`score_chunk` one unit at a time: the definition the batched pairing follows (tests compare
    the two), and the path for IoU matrices holding NaN, which pycocotools never gives."""
    start, stop = bounds
    units, options, ss_embeddings, recall_embeddings = job
    detections, ranked_ious = ap50.evaluate_units(units.gt_masks[start:stop], units.predicted_masks[start:stop],
                                                  units.scores[start:stop])
    # AP's IoU matrices list detections by descending score, truncated to 100; with equal scores and
    # at most 100 masks that is the file order mIoU and Recall need.
    reuse = options.ap_scores == "constant"
    miou_scores = np.zeros(stop - start)
    matched = np.zeros(stop - start, dtype=np.int64)
    miou_pairs, recall_pairs, label_pairs = Pairs(), Pairs(), Pairs()
    for offset, u in enumerate(range(start, stop)):
        predicted, truth = units.predicted_masks[u], units.gt_masks[u]
        if not predicted or not truth:
            continue  # no pair, no match: the unit scores 0 on mIoU and matches nothing
        shape = (len(predicted), len(truth))
        if reuse and len(predicted) <= ap50.MAX_DETECTIONS:
            iou = np.asarray(ranked_ious[offset], dtype=float).reshape(shape)
        else:
            iou = np.asarray(mask_utils.iou(predicted, truth, [0] * len(truth)), dtype=float).reshape(shape)
        predicted_labels, gt_labels = units.predicted_labels[u], units.gt_labels[u]
        miou_scores[offset], pairs = unit_miou(iou, options.miou)
        for p, g, _ in pairs:
            miou_pairs.add(u, predicted_labels[p], gt_labels[g])
        similarity = None
        if options.recall_text_gate == "on":
            if units.gt_recall_labels is not None:
                similarity = text_similarity(recall_embeddings, units.gt_recall_labels[u],
                                             units.predicted_recall_labels[u])
            else:
                similarity = text_similarity(recall_embeddings, gt_labels, predicted_labels)
        matches = unit_recall(iou.T, similarity, options.recall_iou_threshold, options.recall_text_threshold,
                              options.recall_matching)
        matched[offset] = len(matches)
        if options.label_pairs == "recall":
            for g, p in matches:
                recall_pairs.add(u, predicted_labels[p], gt_labels[g])
        elif options.label_pairs == "text":
            _add_text_pairs(label_pairs, u, predicted_labels, gt_labels, ss_embeddings)
    return ChunkScores(start, miou_scores, matched, miou_pairs, recall_pairs, label_pairs, detections)


def score_units(units: Units, options: EvalOptions, ss_embeddings: np.ndarray, recall_embeddings: np.ndarray | None,
                workers: int | None = None) -> list[ChunkScores]:
    """Score every unit; chunks run in forked processes when there are enough units to pay for it."""
    workers = workers or available_cores()
    n = len(units)
    parallel = n >= SERIAL_BELOW and can_fork(workers)
    bounds = chunk_bounds(n, workers * 8, smallest=500) if parallel else chunk_bounds(n, 1)
    return fork_map(score_chunk, (units, options, ss_embeddings, recall_embeddings), bounds,
                    workers if parallel else 1)
