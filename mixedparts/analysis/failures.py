"""Where a predictions file fails: every GT and predicted segment of an evaluation, classified.

The classification re-runs, unit by unit, the pairings the metrics use (mIoU's greedy max-IoU
pairs, Recall's gated matches, with the evaluation's own options and label embeddings), keeps
which segment went where, and names what went wrong. Masks are never decoded: IoUs come from
pycocotools' RLE IoU, as in scoring.

A GT segment is exactly one of :data:`GT_OUTCOMES`; an unpaired predicted segment is one of
:data:`PREDICTED_OUTCOMES`. "Label right" means the label passes the Recall text gate (the gate's
model and threshold; with the gate off, SS's model at the same threshold).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from mixedparts.metrics.miou import unit_miou
from mixedparts.metrics.recall import text_similarity, unit_recall
from mixedparts.metrics.semantic import pair_scores
from mixedparts.metrics.units import PART_TASKS
from mixedparts.schema import TASKS

GT_OUTCOMES = {
    "correct": "counted by Recall: IoU and label similarity both reach their thresholds",
    "missed": "missed GT segment: no predicted mask of its image was paired with it (none overlaps it, or the "
              "overlapping ones were paired with other GT segments)",
    "label_wrong": "mask right, label wrong: its paired mask reaches the IoU threshold, its label fails the text gate",
    "mask_wrong": "label right, mask wrong: its paired mask's label passes the text gate, but IoU < the threshold",
    "both_wrong": "paired with a mask below the IoU threshold whose label also fails the text gate",
    "not_counted": "mask and label right, yet not counted by Recall: GLaMM's greedy loop stopped at an earlier "
                   "failing pair or matched the mask to another GT segment",
    "empty_answer": "the sample's prediction has no segment at all",
}
PREDICTED_OUTCOMES = {
    "paired": "paired with a GT segment by mIoU's pairing",
    "extra": "extra predicted segment: paired with no GT segment",
    "wrong_image": "wrong image tag: unpaired, and its label names a GT segment of another image of the sample "
                   "but none of its own image",
}
ERROR_TYPES = ("missed", "label_wrong", "mask_wrong", "both_wrong", "not_counted", "empty_answer", "extra",
               "wrong_image")
HISTOGRAM_BINS = np.linspace(0.0, 1.0, 11)


@dataclass
class Failures:
    """Per GT segment and per predicted segment of an evaluation, as parallel arrays."""

    gt_unit: np.ndarray
    gt_label: np.ndarray  # label id (details.labels)
    gt_kind: np.ndarray  # object / common_part / unique_part
    gt_outcome: np.ndarray  # key of GT_OUTCOMES
    gt_iou: np.ndarray  # IoU with the mIoU-paired mask; 0 when unpaired
    gt_paired_label: np.ndarray  # the paired mask's label id; -1 when unpaired
    gt_similarity: np.ndarray  # text-gate similarity with the paired mask's label; NaN when unpaired
    predicted_unit: np.ndarray
    predicted_label: np.ndarray
    predicted_outcome: np.ndarray  # key of PREDICTED_OUTCOMES
    empty_samples: np.ndarray  # sample indices whose prediction has no segment
    recall_matched: np.ndarray  # per unit: Recall matches found here (equals the evaluation's, tested)


def analyse(details) -> Failures:
    """Classify every segment of ``details`` (an :class:`~mixedparts.metrics.evaluate.EvalDetails`)."""
    units, options = details.units, details.scored.options
    gate = details.gate_embeddings if options.recall_text_gate == "on" else None
    same_label_embeddings = details.gate_embeddings
    iou_threshold, text_threshold = options.recall_iou_threshold, options.recall_text_threshold
    kinds = _gt_kinds(details.rows, options)
    predicted_per_sample = np.bincount(units.sample, weights=[len(m) for m in units.predicted_masks],
                                       minlength=len(details.rows))
    empty = predicted_per_sample == 0
    gt_labels_of_image = _gt_labels_by_image(units)

    gt = defaultdict(list)
    predicted = defaultdict(list)
    recall_matched = np.zeros(len(units), dtype=np.int64)
    gt_masks = units.gt_masks[0:len(units)]  # made once: the ground truth's are built on each access
    for u in range(len(units)):
        masks_p, masks_g = units.predicted_masks[u], gt_masks[u]
        labels_p, labels_g = units.predicted_labels[u], units.gt_labels[u]
        if masks_p and masks_g:
            iou = np.asarray(mask_utils.iou(masks_p, masks_g, [0] * len(masks_g)), dtype=float)
            iou = iou.reshape(len(masks_p), len(masks_g))
            similarity = text_similarity(same_label_embeddings, labels_g, labels_p)  # GT x predictions
        else:
            iou = np.zeros((len(masks_p), len(masks_g)))
            similarity = np.zeros((len(masks_g), len(masks_p)))
        _, pairs = unit_miou(iou, options.miou)
        matches = unit_recall(iou.T, similarity if gate is not None and masks_p and masks_g else None,
                              iou_threshold, text_threshold, options.recall_matching)
        recall_matched[u] = len(matches)
        counted = {g for g, _ in matches}
        paired_with = {g: (p, value) for p, g, value in pairs}
        sample_empty = bool(empty[units.sample[u]])
        for g in range(len(masks_g)):
            if sample_empty:
                outcome, p, value, text = "empty_answer", -1, 0.0, float("nan")
            elif g in paired_with:
                p, value = paired_with[g]
                text = float(similarity[g, p])
                mask_ok, label_ok = value >= iou_threshold, text >= text_threshold
                outcome = ("correct" if g in counted else "not_counted") if mask_ok and label_ok else \
                    "label_wrong" if mask_ok else "mask_wrong" if label_ok else "both_wrong"
            else:
                outcome, p, value, text = ("correct" if g in counted else "missed"), -1, 0.0, float("nan")
            gt["unit"].append(u)
            gt["label"].append(labels_g[g])
            gt["kind"].append(kinds[u][g])
            gt["outcome"].append(outcome)
            gt["iou"].append(value)
            gt["paired_label"].append(labels_p[p] if p >= 0 else -1)
            gt["similarity"].append(text)
        paired_predictions = {p for p, _, _ in pairs}
        elsewhere = gt_labels_of_image.get((int(units.sample[u]), int(units.image_index[u])), ())
        for p in range(len(masks_p)):
            outcome = "paired"
            if p not in paired_predictions:
                outcome = "wrong_image" if _names_another_image(labels_p[p], labels_g, elsewhere,
                                                                same_label_embeddings, text_threshold) else "extra"
            predicted["unit"].append(u)
            predicted["label"].append(labels_p[p])
            predicted["outcome"].append(outcome)
    return Failures(
        gt_unit=np.array(gt["unit"], dtype=np.int64), gt_label=np.array(gt["label"], dtype=np.int64),
        gt_kind=np.array(gt["kind"], dtype=object), gt_outcome=np.array(gt["outcome"], dtype=object),
        gt_iou=np.array(gt["iou"], dtype=float), gt_paired_label=np.array(gt["paired_label"], dtype=np.int64),
        gt_similarity=np.array(gt["similarity"], dtype=float),
        predicted_unit=np.array(predicted["unit"], dtype=np.int64),
        predicted_label=np.array(predicted["label"], dtype=np.int64),
        predicted_outcome=np.array(predicted["outcome"], dtype=object),
        empty_samples=np.flatnonzero(empty), recall_matched=recall_matched)


def _names_another_image(label: int, own_labels: np.ndarray, other_labels: np.ndarray, embeddings: np.ndarray,
                         threshold: float) -> bool:
    def named(candidates):
        if not len(candidates):
            return False
        return bool(np.any(candidates == label) or np.any(embeddings[candidates] @ embeddings[label] >= threshold))

    return named(np.asarray(other_labels, dtype=np.int64)) and not named(own_labels)


def _gt_labels_by_image(units) -> dict[tuple[int, int], np.ndarray]:
    """(sample, image) -> GT label ids of the sample's *other* images."""
    by_sample: dict[int, list[int]] = defaultdict(list)
    for u in range(len(units)):
        by_sample[int(units.sample[u])].append(u)
    out = {}
    for sample, members in by_sample.items():
        for u in members:
            others = [units.gt_labels[v] for v in members if v != u]
            out[(sample, int(units.image_index[u]))] = np.concatenate(others) if others else np.zeros(0, np.int64)
    return out


def _gt_kinds(rows: list[dict], options) -> list[list[str]]:
    """Per unit, the kind of each GT mask, routed as units.build_units routes the masks themselves."""
    drop_objects = options.gt_masks == "parts-only"
    kinds = []
    for row in rows:
        per_image: list[list[str]] = [[] for _ in row["images"]]
        skip_objects = drop_objects and row["task"] in PART_TASKS
        for segment in row["segments"]:
            if skip_objects and segment["kind"] == "object":
                continue
            per_image[segment["image_index"]].append(segment["kind"])
        kinds.extend(per_image)
    return kinds


# ------------------------------------------------------------------------------------- summaries


def error_counts(details, failures: Failures) -> dict[str, dict]:
    """Per task: GT segments per outcome, predicted segments per outcome, and empty answers (samples)."""
    task_of_gt = details.unit_task[failures.gt_unit]
    task_of_predicted = details.unit_task[failures.predicted_unit]
    task_of_sample = np.array([TASKS.index(r["task"]) for r in details.rows])
    out = {}
    for task in details.tasks:
        t = TASKS.index(task)
        gt_counts = Counter(failures.gt_outcome[task_of_gt == t].tolist())
        predicted_counts = Counter(failures.predicted_outcome[task_of_predicted == t].tolist())
        out[task] = {
            "gt_segments": int((task_of_gt == t).sum()),
            "predicted_segments": int((task_of_predicted == t).sum()),
            "samples": int((task_of_sample == t).sum()),
            "empty_answers": int((task_of_sample[failures.empty_samples] == t).sum()),
            "gt": {k: int(gt_counts.get(k, 0)) for k in GT_OUTCOMES},
            "predicted": {k: int(predicted_counts.get(k, 0)) for k in PREDICTED_OUTCOMES},
        }
    return out


def confusions(details, failures: Failures, top: int = 15) -> dict[str, list[dict]]:
    """Per task: the most frequent (GT label -> predicted label) among mIoU-paired masks whose labels differ."""
    texts = details.labels.texts
    threshold = details.scored.options.recall_text_threshold
    task_of_gt = details.unit_task[failures.gt_unit]
    paired = failures.gt_paired_label >= 0
    differ = paired & (failures.gt_paired_label != failures.gt_label)
    out = {}
    for task in details.tasks:
        chosen = np.flatnonzero(differ & (task_of_gt == TASKS.index(task)))
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i in chosen.tolist():
            groups[(int(failures.gt_label[i]), int(failures.gt_paired_label[i]))].append(i)
        ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), texts[item[0][0]], texts[item[0][1]]))
        out[task] = [{"gt": texts[g], "predicted": texts[p], "count": len(members),
                      "mean_iou": float(np.mean(failures.gt_iou[members])),
                      "similarity": float(failures.gt_similarity[members[0]]),
                      "passes_gate": bool(failures.gt_similarity[members[0]] >= threshold)}
                     for (g, p), members in ranked[:top]]
    return out


def label_breakdown(details, failures: Failures) -> list[dict]:
    """Per part label (normalized GT label of part segments): support and the metrics over its segments.

    mIoU here is the mean over the label's GT segments of the paired mask's IoU (0 when unpaired);
    Recall the share of them counted by Recall; SS and S-IoU the means over their mIoU pairs. AP50
    is class-agnostic, so it has no per-label value.
    """
    texts = details.labels.texts
    is_part = failures.gt_kind != "object"
    paired = failures.gt_paired_label >= 0
    ss = np.full(len(failures.gt_label), np.nan)
    siou = np.full(len(failures.gt_label), np.nan)
    if paired.any():
        ss[paired], siou[paired] = pair_scores(details.labels, details.ss_embeddings,
                                               failures.gt_paired_label[paired], failures.gt_label[paired])
    task_of_gt = details.unit_task[failures.gt_unit]
    records = []
    for label in sorted(set(failures.gt_label[is_part].tolist()), key=lambda i: texts[i]):
        members = is_part & (failures.gt_label == label)
        with_pair = members & paired
        records.append({
            "label": texts[label], "support": int(members.sum()),
            "tasks": sorted({TASKS[t] for t in task_of_gt[members].tolist()}, key=TASKS.index),
            "AP50": None,
            "mIoU": 100 * float(failures.gt_iou[members].mean()),
            "Recall": 100 * float((failures.gt_outcome[members] == "correct").mean()),
            "SS": 100 * float(ss[with_pair].mean()) if with_pair.any() else None,
            "S-IoU": 100 * float(siou[with_pair].mean()) if with_pair.any() else None,
        })
    return records


def histograms(details, failures: Failures) -> dict[str, dict]:
    """Per task, counts over ten bins of [0, 1]: the paired IoU of GT segments (unpaired ones counted
    apart) and the label similarity (SS) of the mIoU pairs."""
    task_of_gt = details.unit_task[failures.gt_unit]
    paired = failures.gt_paired_label >= 0
    ss = np.zeros(int(paired.sum()))
    if paired.any():
        ss, _ = pair_scores(details.labels, details.ss_embeddings, failures.gt_paired_label[paired],
                            failures.gt_label[paired])
    pair_task = task_of_gt[paired]
    iou_counts, ss_counts, unpaired = {}, {}, {}
    for task in details.tasks:
        t = TASKS.index(task)
        chosen = (task_of_gt == t) & paired
        iou_counts[task] = np.histogram(failures.gt_iou[chosen], HISTOGRAM_BINS)[0].tolist()
        unpaired[task] = int(((task_of_gt == t) & ~paired).sum())
        ss_counts[task] = np.histogram(np.clip(ss[pair_task == t], 0, 1), HISTOGRAM_BINS)[0].tolist()
    edges = [round(float(x), 2) for x in HISTOGRAM_BINS]
    return {"iou": {"edges": edges, "counts": iou_counts, "unpaired": unpaired,
                    "title": "IoU of each GT segment with its paired mask"},
            "ss": {"edges": edges, "counts": ss_counts,
                   "title": "label similarity (SS) of the mIoU-paired masks"}}


def worst_samples(details, failures: Failures, per_task: int = 8) -> dict[str, list[dict]]:
    """Per task, the ``per_task`` samples with the lowest mIoU (their units' mean), then lowest Recall."""
    scored, units = details.scored, details.units
    n = len(details.rows)
    unit_count = np.bincount(units.sample, minlength=n)
    miou = np.bincount(units.sample, weights=scored.miou, minlength=n) / np.maximum(unit_count, 1)
    gt = np.bincount(units.sample, weights=scored.gt_count, minlength=n)
    matched = np.bincount(units.sample, weights=scored.matched, minlength=n)
    recall = np.where(gt > 0, matched / np.maximum(gt, 1), 0.0)
    sample_of_gt = units.sample[failures.gt_unit]
    out = {}
    for task in details.tasks:
        members = np.flatnonzero(np.array([r["task"] == task for r in details.rows]))
        order = members[np.lexsort((members, recall[members], miou[members]))][:per_task]
        out[task] = []
        for i in order.tolist():
            outcomes = Counter(failures.gt_outcome[sample_of_gt == i].tolist())
            out[task].append({"sample_id": details.rows[i]["sample_id"], "position": i,
                              "source": details.rows[i]["source"], "mIoU": 100 * float(miou[i]),
                              "Recall": 100 * float(recall[i]), "gt_outcomes": dict(sorted(outcomes.items()))})
    return out
