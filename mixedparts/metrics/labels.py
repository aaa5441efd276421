"""Label normalization for SS, S-IoU and the recall text gate (docs/metrics.md, A9, A10).

GT labels are bare names ("leg"); generated phrases carry an article ("the leg"). Without dropping
the article a perfect answer scores S-IoU 0.5, far below the 93.4 Calico reports, hence the default.
"""

from __future__ import annotations

import re

LABEL_MODES = ("articles", "none", "osprey")
"""``articles`` (default): strip, lowercase, drop one leading a/an/the; S-IoU words as CaSED.
``none``: the raw label (pure CaSED: SS on the raw text, S-IoU with CaSED's punctuation removal).
``osprey``: Osprey's cleanup (predictions: text after the first ':', '.:,' to spaces; GT: '_:' to spaces)."""

_LEADING_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def normalize(label: str, mode: str = "articles", *, predicted: bool = True, fold_plurals: bool = False) -> str:
    """The text that SS embeds and the recall gate compares. ``predicted`` matters for ``osprey`` only."""
    if mode == "articles":
        text = _LEADING_ARTICLE.sub("", label.strip().lower(), count=1)
    elif mode == "none":
        text = label
    elif mode == "osprey":
        if predicted:
            text = label.strip()
            if ":" in text:
                text = text.split(":")[1]
            text = text.replace(".", " ").replace(":", " ").replace(",", " ")
        else:
            text = label.replace("_", " ").replace(":", " ")
    else:
        raise ValueError(f"unknown label mode {mode!r}; expected one of {LABEL_MODES}")
    if fold_plurals:
        text = " ".join(singular(word) for word in text.split())
    return text


def words(text: str, mode: str = "articles") -> frozenset[str]:
    """The word set S-IoU compares, taken from a normalized label.

    CaSED deletes every character that is not alphanumeric or a space (so "t-shirt" becomes
    "tshirt"); Osprey's cleanup already happened in :func:`normalize` and keeps the rest.
    """
    if mode != "osprey":
        text = "".join(c for c in text if c.isalnum() or c == " ")
    return frozenset(text.lower().split())


def word_iou(predicted: frozenset[str], ground_truth: frozenset[str]) -> float:
    """Jaccard of two word sets; 0 when both are empty (CaSED would give NaN, Osprey would raise)."""
    union = len(predicted | ground_truth)
    return len(predicted & ground_truth) / union if union else 0.0


def singular(word: str) -> str:
    """Fold a regular English plural ("legs" -> "leg", "batteries" -> "battery"); A10, off by default.

    Deliberately simple and predictable: no dictionary, so irregular plurals stay as they are.
    """
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
