"""Recall as GLaMM's GCG evaluation computes it (docs/metrics.md, A6, A7).

Per unit: pair GT and predicted masks greedily by the largest IoU; a pair counts if its IoU and
its label similarity both reach 0.5, and the loop stops at the first pair that fails. Recall is
the total of counted pairs over the total of GT masks (micro over the dataset).
"""

from __future__ import annotations

import numpy as np

from mixedparts.metrics.matching import recall_matches


def unit_recall(iou_gt_by_pred: np.ndarray, text_similarity: np.ndarray | None, iou_threshold: float = 0.5,
                text_threshold: float = 0.5, matching: str = "stop") -> list[tuple[int, int]]:
    """The (gt, prediction) matches of one unit."""
    return recall_matches(iou_gt_by_pred, text_similarity, iou_threshold, text_threshold,
                          stop_at_first_failure=matching == "stop")


def recall(matched: int | float, gt_total: int | float) -> float:
    """Matched GT over all GT; 0 when there is no GT, as GLaMM."""
    return float(matched) / float(gt_total) if gt_total else 0.0


def text_similarity(embeddings: np.ndarray, gt_labels: np.ndarray, predicted_labels: np.ndarray) -> np.ndarray:
    """Cosine of L2-normalized label embeddings, GT x predictions; identical labels give exactly 1."""
    similarity = embeddings[gt_labels] @ embeddings[predicted_labels].T
    similarity[gt_labels[:, None] == predicted_labels[None, :]] = 1.0
    return similarity
