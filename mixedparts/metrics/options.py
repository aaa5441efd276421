"""The metric variants of docs/metrics.md, as one options object with documented defaults.

Every reported number carries :meth:`EvalOptions.variant`; the defaults reproduce the references
(GLaMM for AP50 / mIoU / Recall, CaSED for SS / S-IoU) except where the spec says why not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

from mixedparts.argtypes import fraction
from mixedparts.metrics.labels import LABEL_MODES

GT_MASKS = ("all", "parts-only")
AP_SCORES = ("constant", "predicted")
MIOU_VARIANTS = ("glamm", "per-gt", "hungarian")
RECALL_MATCHING = ("stop", "skip")
TEXT_GATES = ("on", "off")
RECALL_LABELS = ("raw", "normalized")
LABEL_PAIRS = ("miou", "recall", "text", "all-gt")
LABEL_AVERAGES = ("pairs", "samples")


class Variant(NamedTuple):
    """How a field of :class:`EvalOptions` is documented and given on the command line: the docs/metrics.md
    item it settles, its allowed values (None: any), its help (which names the default), and the argparse
    ``type`` and metavar of a value that is not a choice; the flag is the field's name with dashes."""

    item: str
    choices: tuple | None
    help: str
    kind: Callable | None = None
    metavar: str | None = None


VARIANTS = {
    "gt_masks": Variant("A3", GT_MASKS,
        "all (default): every GT mask of the posed question, including the object masks of part questions' "
        "object sentence. parts-only: drop those object masks (predicted masks are left as they are)"),
    "ap_scores": Variant("A4", AP_SCORES,
        "constant (default): every predicted mask has score 1.0, as GLaMM, so ties follow unit and mask "
        "order. predicted: use each mask's 'score' (1.0 where absent)"),
    "miou": Variant("A5", MIOU_VARIANTS,
        "glamm (default): per unit, the mean IoU of greedy max-IoU pairs; unpaired masks do not count. "
        "per-gt: the same pairs averaged over all GT masks, unpaired ones 0. hungarian: pairs maximizing the "
        "total IoU"),
    "recall_matching": Variant("A6", RECALL_MATCHING,
        "stop (default): GLaMM's loop, which ends at the first best-IoU pair failing a threshold. skip: "
        "reject only that pair and go on"),
    "recall_iou_threshold": Variant("A6", None, "IoU a Recall match needs (default: 0.5)", fraction, "T"),
    "recall_text_gate": Variant("A7", TEXT_GATES,
        "on (default): a Recall match also needs label similarity >= the text threshold. off: IoU-only Recall"),
    "recall_text_model": Variant("A7", None,
        "model of the Recall text gate: a local folder such as bert-base-uncased (mean-pooled over all "
        "tokens, as GLaMM). Default: all-MiniLM-L6-v2, because bert-base-uncased is not installable offline; "
        "MiniLM is the stricter gate, so Recall is not comparable with GLaMM's", metavar="PATH"),
    "recall_text_threshold": Variant("A7", None, "label cosine similarity a Recall match needs (default: 0.5)",
                                     fraction, "T"),
    "recall_labels": Variant("A7", RECALL_LABELS,
        "the labels the Recall text gate compares. raw (default): as written in the predictions and the "
        "ground truth, as GLaMM compares them. normalized: after the --labels normalization (and "
        "--fold-plurals) that SS uses"),
    "label_pairs": Variant("A8", LABEL_PAIRS,
        "which (predicted, GT) label pairs SS and S-IoU average over. miou (default): the mIoU pairs. recall: "
        "Recall's matches. text: per unit, the assignment maximizing total SS, masks ignored. all-gt: every "
        "GT label, paired as for miou, unpaired ones scoring 0"),
    "labels": Variant("A9", LABEL_MODES,
        "articles (default): strip, lowercase, drop one leading a/an/the; S-IoU keeps letters, digits and "
        "spaces (CaSED). none: raw labels (pure CaSED). osprey: Osprey's cleanup"),
    "fold_plurals": Variant("A10", None,
        "fold regular English plurals (legs -> leg) before comparing labels (default: off, as CaSED and "
        "Osprey)"),
    "label_average": Variant("A11", LABEL_AVERAGES,
        "pairs (default): SS and S-IoU pooled over the pairs of a task. samples: the mean of per-sample means"),
}


@dataclass(frozen=True)
class EvalOptions:
    """The metric variants (:data:`VARIANTS` documents each field); the defaults are the spec's."""

    gt_masks: str = "all"
    ap_scores: str = "constant"
    miou: str = "glamm"
    recall_matching: str = "stop"
    recall_iou_threshold: float = 0.5
    recall_text_gate: str = "on"
    recall_text_model: str | None = None
    recall_text_threshold: float = 0.5
    recall_labels: str = "raw"
    label_pairs: str = "miou"
    labels: str = "articles"
    fold_plurals: bool = False
    label_average: str = "pairs"

    def __post_init__(self):
        for spec in fields(self):
            value, variant = getattr(self, spec.name), VARIANTS[spec.name]
            if variant.choices is not None and value not in variant.choices:
                raise ValueError(f"{spec.name} must be one of {variant.choices}, got {value!r}")
            if variant.kind is fraction and not 0 < value <= 1:
                raise ValueError(f"{spec.name} must be in (0, 1], got {value!r}")

    @classmethod
    def from_args(cls, args) -> EvalOptions:
        """The options of a namespace parsed with the flags of :func:`add_arguments`."""
        return cls(**{spec.name: getattr(args, spec.name) for spec in fields(cls)})

    @property
    def recall_text_model_name(self) -> str | None:
        if self.recall_text_gate == "off":
            return None
        return self.recall_text_model or "all-MiniLM-L6-v2"

    @property
    def recall_label_text(self) -> str:
        if self.recall_labels == "raw":
            return "raw labels"
        return f"{self.labels}-normalized labels" + (", plurals folded" if self.fold_plurals else "")

    def variant(self) -> dict:
        """The variant flags, keyed by the docs/metrics.md item they settle."""
        gate = (f"{self.recall_text_model_name} >= {self.recall_text_threshold:g} on {self.recall_label_text}"
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


def add_arguments(parser) -> None:
    """One command-line flag per :class:`EvalOptions` field (``--gt-masks`` for ``gt_masks``), with its
    choices, default and help (an argparse parser or argument group)."""
    for spec in fields(EvalOptions):
        variant = VARIANTS[spec.name]
        flag, text = "--" + spec.name.replace("_", "-"), f"{variant.item}. {variant.help}"
        if isinstance(spec.default, bool):  # a switch, off by default
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, choices=variant.choices, type=variant.kind, default=spec.default,
                                metavar=variant.metavar, help=text)
