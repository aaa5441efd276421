"""mIoU as GLaMM's GCG evaluation computes it (docs/metrics.md, A5).

Per unit: pair predicted and GT masks greedily by the largest IoU (one-to-one, IoU > 0 only) and
average the paired IoUs; a unit with no pair scores 0. mIoU is the mean over all units, including
those without predictions. Unpaired GT and extra predictions do not lower a unit's score.
"""

from __future__ import annotations

import numpy as np

from mixedparts.metrics.matching import greedy_pairs, optimal_pairs


def unit_miou(iou: np.ndarray, variant: str = "glamm") -> tuple[float, list[tuple[int, int, float]]]:
    """(unit score, [(prediction, gt, IoU), ...]) for one unit; ``iou`` is predictions x GT."""
    pairs = optimal_pairs(iou) if variant == "hungarian" else greedy_pairs(iou)
    if not pairs:
        return 0.0, pairs
    total = sum(value for _, _, value in pairs)
    if variant == "per-gt":
        return total / iou.shape[1], pairs
    return total / len(pairs), pairs


def miou(unit_scores: np.ndarray) -> float:
    """Mean over units; NaN when there are none."""
    return float(np.mean(unit_scores)) if len(unit_scores) else float("nan")
