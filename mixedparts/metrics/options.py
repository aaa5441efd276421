"""The metric variants of docs/metrics.md (A1–A13), as one options object whose defaults are the spec's.

Every reported number carries :meth:`EvalOptions.variant`; the defaults reproduce the references
(GLaMM for AP50 / mIoU / Recall, CaSED for SS / S-IoU) except where the spec says why not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mixedparts.metrics.labels import LABEL_MODES

GT_MASKS = ("all", "parts-only")
AP_SCORES = ("constant", "predicted")
MIOU_VARIANTS = ("glamm", "per-gt", "hungarian")
RECALL_MATCHING = ("stop", "skip")
TEXT_GATES = ("on", "off")
LABEL_PAIRS = ("miou", "recall", "text", "all-gt")
LABEL_AVERAGES = ("pairs", "samples")


@dataclass(frozen=True)
class EvalOptions:
    gt_masks: str = "all"
    """A3: ``all`` GT masks of the posed question, object masks included; ``parts-only`` drops the
    object-identification masks of part questions (predictions are left as they are)."""
    ap_scores: str = "constant"
    """A4: ``constant`` gives every predicted mask score 1.0 (GLaMM); ``predicted`` uses each mask's
    ``score`` (1.0 where absent)."""
    miou: str = "glamm"
    """A5: ``glamm`` = mean IoU of greedy max-IoU pairs per unit; ``per-gt`` = the same pairs, averaged
    over all GT masks with 0 for unpaired ones; ``hungarian`` = pairs maximizing the total IoU."""
    recall_matching: str = "stop"
    """A6: ``stop`` at the first best-IoU pair that fails a threshold (GLaMM); ``skip`` rejects only
    that pair and goes on."""
    recall_iou_threshold: float = 0.5
    recall_text_gate: str = "on"
    """A7: ``off`` makes Recall IoU-only."""
    recall_text_model: str | None = None
    """A7: None = all-MiniLM-L6-v2 (GLaMM's bert-base-uncased is not installable here; MiniLM is a
    stricter gate, so numbers are not comparable with GLaMM's); a local folder such as
    bert-base-uncased is mean-pooled over all tokens as GLaMM does."""
    recall_text_threshold: float = 0.5
    label_pairs: str = "miou"
    """A8: which (predicted, GT) label pairs SS and S-IoU average over: ``miou`` = the mIoU pairs;
    ``recall`` = Recall's matches; ``text`` = per unit, the assignment maximizing total SS;
    ``all-gt`` = every GT label, paired as for ``miou``, unpaired ones scoring 0."""
    labels: str = "articles"
    """A9: label normalization, see :mod:`mixedparts.metrics.labels`."""
    fold_plurals: bool = False
    """A10: fold regular English plurals before comparing labels."""
    label_average: str = "pairs"
    """A11: SS and S-IoU pooled over pairs within a task (``pairs``), or the mean of per-sample means."""

    def __post_init__(self):
        choices = {"gt_masks": GT_MASKS, "ap_scores": AP_SCORES, "miou": MIOU_VARIANTS,
                   "recall_matching": RECALL_MATCHING, "recall_text_gate": TEXT_GATES, "label_pairs": LABEL_PAIRS,
                   "labels": LABEL_MODES, "label_average": LABEL_AVERAGES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("recall_iou_threshold", "recall_text_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")

    @property
    def recall_text_model_name(self) -> str | None:
        if self.recall_text_gate == "off":
            return None
        return self.recall_text_model or "all-MiniLM-L6-v2"

    def variant(self) -> dict:
        """The variant flags, keyed by the docs/metrics.md variant (A1–A13) they settle."""
        gate = (f"{self.recall_text_model_name} >= {self.recall_text_threshold:g}"
                if self.recall_text_gate == "on" else "off")
        return {
            "A3_gt_masks": self.gt_masks,
            "A4_ap_scores": self.ap_scores,
            "A5_miou": self.miou,
            "A6_recall": f"{self.recall_matching}, IoU >= {self.recall_iou_threshold:g}",
            "A7_recall_text_gate": gate,
            "A8_label_pairs": self.label_pairs,
            "A9_labels": self.labels,
            "A10_fold_plurals": "on" if self.fold_plurals else "off",
            "A11_label_average": self.label_average,
        }

    def is_default(self) -> bool:
        return self == EvalOptions()

    def as_dict(self) -> dict:
        return asdict(self)
