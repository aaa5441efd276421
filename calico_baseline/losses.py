"""Mask losses, reduced as GLaMM/LISA do (docs/model.md): per-mask pixel mean, then sum / number of masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE-with-logits averaged over the pixels of one mask (H×W)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="mean")


def sigmoid_focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet / SAM) averaged over the pixels of one mask."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


def dice(logits: torch.Tensor, target: torch.Tensor, scale: float = 1000.0, eps: float = 1e-6) -> torch.Tensor:
    """GLaMM's dice loss of one mask: sigmoid(pred) and target divided by 1000 before the sums."""
    p = logits.sigmoid().flatten() / scale
    g = target.flatten()
    return 1 - (2 * (p * g).sum() + eps) / (p.sum() + g.sum() / scale + eps)


def mask_losses(pred: list[torch.Tensor], target: list[torch.Tensor], kind: str = "focal",
                alpha: float = 0.25, gamma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mask term, dice term, number of masks) over matching lists of H×W logits and 0/1 targets."""
    if not pred:
        return torch.zeros(()), torch.zeros(()), 0
    mask_term, dice_term = 0.0, 0.0
    for logits, gt in zip(pred, target):
        gt = gt.to(logits.dtype)
        mask_term = mask_term + (sigmoid_focal(logits, gt, alpha, gamma) if kind == "focal" else sigmoid_bce(logits, gt))
        dice_term = dice_term + dice(logits, gt)
    n = len(pred)
    return mask_term / n, dice_term / n, n
