"""Units of mask comparison and their scoring (docs/metrics.md, A1).

A unit is one image of one sample: COCO needs equal-sized masks, and the images of a pair differ in
size. Units are numbered from 1 in ground-truth order (sample order, then image order); that order
and the mask order within a unit decide COCO's ties, so both are fixed here.

Scoring runs over chunks of units, in forked worker processes when there are many: masks are never
decoded, IoUs come from pycocotools' RLE IoU, and label similarities from embeddings computed once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from mixedparts.metrics import ap50
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
    gt_masks, gt_labels, predicted_masks, predicted_labels, scores = [], [], [], [], []
    gt_recall_labels: list[np.ndarray] = []
    predicted_recall_labels: list[np.ndarray] = []
    drop_objects = options.gt_masks == "parts-only"
    use_scores = options.ap_scores == "predicted"
    intern = table.intern
    recall_intern = recall_table.intern if recall_table is not None else None
    for number, row in enumerate(rows):
        images = row["images"]
        count = len(images)
        truth: list[list[dict]] = [[] for _ in range(count)]
        truth_labels: list[list[int]] = [[] for _ in range(count)]
        truth_recall: list[list[int]] = [[] for _ in range(count)]
        skip_objects = drop_objects and row["task"] in PART_TASKS
        for segment in row["segments"]:
            if skip_objects and segment["kind"] == "object":
                continue
            truth[segment["image_index"]].append(segment["mask"])
            truth_labels[segment["image_index"]].append(intern(segment["label"], False))
            if recall_intern is not None:
                truth_recall[segment["image_index"]].append(recall_intern(segment["label"], False))
        predicted: list[list[dict]] = [[] for _ in range(count)]
        predicted_ids: list[list[int]] = [[] for _ in range(count)]
        predicted_scores: list[list[float]] = [[] for _ in range(count)]
        predicted_recall: list[list[int]] = [[] for _ in range(count)]
        prediction = predictions.get(row["sample_id"])
        if prediction is not None:
            for segment in prediction["segments"]:
                k = segment["image_index"]
                predicted[k].append(segment["mask"])
                predicted_ids[k].append(intern(segment["label"], True))
                if recall_intern is not None:
                    predicted_recall[k].append(recall_intern(segment["label"], True))
                predicted_scores[k].append(float(segment.get("score", 1.0)) if use_scores else 1.0)
        objects = {obj["image_index"]: obj["category"] for obj in row["objects"]}
        for k in range(count):
            sample.append(number)
            image_index.append(k)
            category.append(objects.get(k, "?"))
            gt_masks.append(truth[k])
            gt_labels.append(np.array(truth_labels[k], dtype=np.int64))
            predicted_masks.append(predicted[k])
            predicted_labels.append(np.array(predicted_ids[k], dtype=np.int64))
            scores.append(predicted_scores[k])
            if recall_intern is not None:
                gt_recall_labels.append(np.array(truth_recall[k], dtype=np.int64))
                predicted_recall_labels.append(np.array(predicted_recall[k], dtype=np.int64))
    with_recall = recall_intern is not None
    return Units(np.array(sample, dtype=np.int64), np.array(image_index, dtype=np.int64),
                 list(range(1, len(sample) + 1)), category, gt_masks, gt_labels, predicted_masks,
                 predicted_labels, scores, gt_recall_labels if with_recall else None,
                 predicted_recall_labels if with_recall else None)


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


_JOB: tuple | None = None  # (units, options, SS embeddings, recall embeddings); inherited by forked workers


def score_chunk(bounds: tuple[int, int]) -> ChunkScores:
    start, stop = bounds
    units, options, ss_embeddings, recall_embeddings = _JOB
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
        shape = (len(predicted), len(truth))
        if not predicted or not truth:
            iou = np.zeros(shape)
        elif reuse and len(predicted) <= ap50.MAX_DETECTIONS:
            iou = np.asarray(ranked_ious[offset], dtype=float).reshape(shape)
        else:
            iou = np.asarray(mask_utils.iou(predicted, truth, [0] * len(truth)), dtype=float).reshape(shape)
        predicted_labels, gt_labels = units.predicted_labels[u], units.gt_labels[u]
        miou_scores[offset], pairs = unit_miou(iou, options.miou)
        for p, g, _ in pairs:
            miou_pairs.add(u, predicted_labels[p], gt_labels[g])
        similarity = None
        if options.recall_text_gate == "on" and predicted and truth:
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
        elif options.label_pairs == "text" and predicted and truth:
            ss = ss_embeddings[predicted_labels] @ ss_embeddings[gt_labels].T
            ss[predicted_labels[:, None] == gt_labels[None, :]] = 1.0
            for p, g in text_pairs(ss):
                label_pairs.add(u, predicted_labels[p], gt_labels[g])
    return ChunkScores(start, miou_scores, matched, miou_pairs, recall_pairs, label_pairs, detections)


def score_units(units: Units, options: EvalOptions, ss_embeddings: np.ndarray, recall_embeddings: np.ndarray | None,
                workers: int | None = None) -> list[ChunkScores]:
    """Score every unit; chunks run in forked processes when there are enough units to pay for it."""
    global _JOB
    workers = workers or available_cores()
    n = len(units)
    parallel = workers > 1 and n >= SERIAL_BELOW and "fork" in multiprocessing.get_all_start_methods()
    size = max(500, -(-n // (workers * 8))) if parallel else max(n, 1)
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    _JOB = (units, options, ss_embeddings, recall_embeddings)
    try:
        if not parallel:
            return [score_chunk(b) for b in bounds]
        # fork shares the units with the workers without pickling them; workers never touch torch.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(score_chunk, bounds, chunksize=1)
    finally:
        _JOB = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
