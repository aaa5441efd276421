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
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pycocotools import mask as mask_utils

from mixedparts.forking import available_cores, can_fork, chunk_bounds, fork_map
from mixedparts.metrics import ap50, batched
from mixedparts.metrics.matching import text_pairs
from mixedparts.metrics.miou import unit_miou
from mixedparts.metrics.options import EvalOptions
from mixedparts.metrics.recall import text_similarity, unit_recall
from mixedparts.metrics.semantic import LabelTable
from mixedparts.schema import TASKS

if TYPE_CHECKING:
    from mixedparts.metrics.ground_truth import GroundTruthColumns

PART_TASKS = ("common_parts", "unique_parts")
SERIAL_BELOW = 4000  # units; forking costs more than it saves below this


class GroundTruthMasks:
    """Per unit, its GT masks as pycocotools RLE dicts, made on demand from the ground truth's columns:
    ``masks[u]`` is unit ``u``'s list, ``masks[a:b]`` a list of such lists (what a scoring chunk takes).
    No Python object exists per mask until then, so the split's masks cost one Arrow array, and each
    scoring worker makes the dicts of its own units."""

    def __init__(self, truth: GroundTruthColumns, order: np.ndarray, ends: np.ndarray):
        self.truth = truth
        self.order = order  # the segments taken, unit after unit
        self.ends = ends  # unit u's are order[ends[u - 1]:ends[u]]

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[u] for u in range(start, stop, step)]
            return self._between(start, stop)
        u = range(len(self))[index]
        return self._between(u, u + 1)[0]

    def __iter__(self):
        return iter(self._between(0, len(self)))

    def _between(self, start: int, stop: int) -> list[list[dict]]:
        if stop <= start:
            return []
        first = int(self.ends[start - 1]) if start else 0
        taken = self.order[first:int(self.ends[stop - 1])]
        truth = self.truth
        if truth.mask_dicts is not None:
            masks = [truth.mask_dicts[i] for i in taken.tolist()]
        else:
            counts = truth.mask_counts.take(pa.array(taken)).to_pylist() if len(taken) else []
            masks = [{"size": [h, w], "counts": c}
                     for h, w, c in zip(truth.mask_heights[taken].tolist(), truth.mask_widths[taken].tolist(), counts)]
        bounds = (self.ends[start:stop] - first).tolist()
        return [masks[a:b] for a, b in zip([0] + bounds[:-1], bounds)]


@dataclass
class Units:
    sample: np.ndarray  # index of the unit's row in the ground truth
    image_index: np.ndarray
    unit_ids: list[int]
    category: list[str]  # the category of the object in the unit's image
    gt_masks: GroundTruthMasks | list[list[dict]]
    gt_labels: list[np.ndarray]
    predicted_masks: list[list[dict]]
    predicted_labels: list[np.ndarray]
    scores: list[list[float]]
    gt_recall_labels: list[np.ndarray] | None = None
    """Label ids the Recall text gate compares, when they differ from ``gt_labels`` (raw labels)."""
    predicted_recall_labels: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.unit_ids)

    def gt_counts(self) -> np.ndarray:
        return np.array([len(labels) for labels in self.gt_labels], dtype=np.int64)

    def predicted_counts(self) -> np.ndarray:
        return np.array([len(masks) for masks in self.predicted_masks], dtype=np.int64)


def build_units(truth: GroundTruthColumns, predictions: Mapping[str, dict], table: LabelTable,
                options: EvalOptions, recall_table: LabelTable | None = None) -> Units:
    """One unit per (sample, image), GT and predicted segments routed by ``image_index``, in their order.

    ``predictions`` have passed ``check_against_ground_truth``. ``recall_table`` interns the labels the
    Recall gate compares when they are not ``table``'s.
    """
    starts = truth.image_offsets[:-1]
    counts = truth.image_counts
    total = int(truth.image_offsets[-1])
    sample = np.repeat(np.arange(len(truth), dtype=np.int64), counts)
    image_index = np.arange(total, dtype=np.int64) - starts[sample]
    category = ["?"] * total
    starts_list, counts_list = starts.tolist(), counts.tolist()
    for row, k, name in zip(truth.object_rows.tolist(), truth.object_image_index.tolist(), truth.object_categories):
        if 0 <= k < counts_list[row]:  # a later object of the same image wins, as a dict of them would
            category[starts_list[row] + k] = name

    kept = np.arange(len(truth.segment_rows), dtype=np.int64)
    if options.gt_masks == "parts-only":
        part_task = np.isin(truth.tasks, [TASKS.index(task) for task in PART_TASKS])
        kept = kept[~(truth.segment_is_object & part_task[truth.segment_rows])]
    gt_rows = truth.segment_rows[kept]
    gt_labels = truth.segment_labels
    from_arrow = isinstance(gt_labels, (pa.Array, pa.ChunkedArray))
    if len(kept) < len(truth.segment_rows):
        gt_labels = gt_labels.take(pa.array(kept)) if from_arrow else [gt_labels[i] for i in kept.tolist()]

    # The predictions' segments, flat, in ground-truth row order.
    predicted_rows, predicted_image, predicted_labels, predicted_masks, predicted_scores = [], [], [], [], []
    use_scores = options.ap_scores == "predicted"
    for number, sample_id in enumerate(truth.sample_ids):
        prediction = predictions.get(sample_id)
        if prediction is None or not prediction["segments"]:
            continue
        for segment in prediction["segments"]:
            predicted_rows.append(number)
            predicted_image.append(segment["image_index"])
            predicted_labels.append(segment["label"])
            predicted_masks.append(segment["mask"])
            if use_scores:
                predicted_scores.append(float(segment.get("score", 1.0)))
    predicted_rows = np.array(predicted_rows, dtype=np.int64)

    gt_codes = _encoded(gt_labels, gt_rows) if from_arrow else _factorize(gt_labels, gt_rows)
    predicted_codes = _factorize(predicted_labels, predicted_rows)
    gt_ids, predicted_ids = _intern(table, gt_codes, predicted_codes)
    with_recall = recall_table is not None
    if with_recall:
        gt_recall_ids, predicted_recall_ids = _intern(recall_table, gt_codes, predicted_codes)

    gt_unit = starts[gt_rows] + truth.segment_image_index[kept]
    gt_order = np.argsort(gt_unit, kind="stable")
    gt_ends = np.cumsum(np.bincount(gt_unit, minlength=total)).astype(np.int64)
    predicted_unit = starts[predicted_rows] + np.array(predicted_image, dtype=np.int64)
    predicted_order = np.argsort(predicted_unit, kind="stable")
    predicted_ends = np.cumsum(np.bincount(predicted_unit, minlength=total)).astype(np.int64)

    masks = GroundTruthMasks(truth, kept[gt_order], gt_ends)
    bounds = predicted_ends.tolist()
    spans = list(zip([0] + bounds[:-1], bounds))
    ordered_masks = [predicted_masks[i] for i in predicted_order.tolist()]
    per_unit_masks = [ordered_masks[a:b] for a, b in spans]
    if use_scores:
        ordered_scores = [predicted_scores[i] for i in predicted_order.tolist()]
        scores = [ordered_scores[a:b] for a, b in spans]
    else:
        scores = [[1.0] * (b - a) for a, b in spans]
    return Units(sample, image_index, list(range(1, total + 1)), category, masks,
                 _per_unit(gt_ids[gt_order], gt_ends), per_unit_masks,
                 _per_unit(predicted_ids[predicted_order], predicted_ends), scores,
                 _per_unit(gt_recall_ids[gt_order], gt_ends) if with_recall else None,
                 _per_unit(predicted_recall_ids[predicted_order], predicted_ends) if with_recall else None)


@dataclass
class _Codes:
    """One side's labels factorized: per segment the index of its distinct raw label; the distinct labels;
    and where each is first met (its row, its position in the side's flat list)."""

    codes: np.ndarray
    distinct: list[str]
    first_row: np.ndarray
    first_position: np.ndarray


def _factorize(labels: list[str], rows: np.ndarray) -> _Codes:
    codes: dict[str, int] = {}
    setdefault = codes.setdefault
    index = np.fromiter((setdefault(label, len(codes)) for label in labels), dtype=np.int64, count=len(labels))
    return _codes(index, list(codes), rows)


def _encoded(labels, rows: np.ndarray) -> _Codes:
    """:func:`_factorize` of a pyarrow string array, by Arrow."""
    encoded = labels.dictionary_encode()
    return _codes(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist(),
                  rows)


def _codes(index: np.ndarray, distinct: list[str], rows: np.ndarray) -> _Codes:
    first = np.unique(index, return_index=True)[1].astype(np.int64) if len(index) else np.zeros(0, np.int64)
    return _Codes(index, distinct, rows[first], first)


def _intern(table: LabelTable, gt: _Codes, predicted: _Codes) -> tuple[np.ndarray, np.ndarray]:
    """Label ids of the GT and predicted segments. Labels are interned in the order they are met, row by
    row, GT before predictions (each side has its own raw labels): that order fixes the ids, hence the
    order in which the text model embeds them. Only a raw label's first occurrence on its side can add
    a text, so those are interned, in that order."""
    rows = np.concatenate([gt.first_row, predicted.first_row])
    side = np.concatenate([np.zeros(len(gt.distinct), np.int64), np.ones(len(predicted.distinct), np.int64)])
    position = np.concatenate([gt.first_position, predicted.first_position])
    gt_map = np.zeros(len(gt.distinct), dtype=np.int64)
    predicted_map = np.zeros(len(predicted.distinct), dtype=np.int64)
    n = len(gt.distinct)
    for k in np.lexsort((position, side, rows)).tolist():
        if k < n:
            gt_map[k] = table.intern(gt.distinct[k], False)
        else:
            predicted_map[k - n] = table.intern(predicted.distinct[k - n], True)
    return gt_map[gt.codes], predicted_map[predicted.codes]


def _per_unit(ids: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """Each unit's label ids as a view of one array (one conversion instead of one per unit)."""
    flat = np.asarray(ids, dtype=np.int64)
    bounds = ends.tolist()
    return [flat[start:end] for start, end in zip([0] + bounds[:-1], bounds)]


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
    chunk_gt_masks = units.gt_masks[start:stop]  # made once: GroundTruthMasks builds them on each access
    detections, ranked_ious = ap50.evaluate_units(chunk_gt_masks, units.predicted_masks[start:stop],
                                                  units.scores[start:stop])
    # AP's IoU matrices list detections by descending score, truncated to 100; with equal scores and
    # at most 100 masks that is the file order mIoU and Recall need.
    reuse = options.ap_scores == "constant"
    both, matrices = [], []  # the units with masks on both sides (no pair, no match otherwise), their IoUs
    for offset, u in enumerate(range(start, stop)):
        predicted, truth = units.predicted_masks[u], chunk_gt_masks[u - start]
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
    chunk_gt_masks = units.gt_masks[start:stop]  # made once: GroundTruthMasks builds them on each access
    detections, ranked_ious = ap50.evaluate_units(chunk_gt_masks, units.predicted_masks[start:stop],
                                                  units.scores[start:stop])
    # AP's IoU matrices list detections by descending score, truncated to 100; with equal scores and
    # at most 100 masks that is the file order mIoU and Recall need.
    reuse = options.ap_scores == "constant"
    miou_scores = np.zeros(stop - start)
    matched = np.zeros(stop - start, dtype=np.int64)
    miou_pairs, recall_pairs, label_pairs = Pairs(), Pairs(), Pairs()
    for offset, u in enumerate(range(start, stop)):
        predicted, truth = units.predicted_masks[u], chunk_gt_masks[u - start]
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
