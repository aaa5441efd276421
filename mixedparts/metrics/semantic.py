"""SS and S-IoU: label quality over (predicted label, GT label) pairs (docs/metrics.md, A8, A9, A11).

SS is the cosine of all-MiniLM-L6-v2 embeddings (CaSED / Osprey); S-IoU is the Jaccard of word
sets (CaSED). Both are averaged over pairs; which pairs is A8. A pair with an empty label on either
side scores 0 for both (A12), so NaN never reaches a result.
"""

from __future__ import annotations

import numpy as np

from mixedparts.metrics.labels import normalize, word_iou, words


class LabelTable:
    """Every distinct normalized label of a run, interned to an integer id.

    Raw labels are normalized once per (raw string, side); SS embeddings and word sets are computed
    once per distinct normalized string.
    """

    def __init__(self, mode: str = "articles", fold_plurals: bool = False):
        self.mode = mode
        self.fold_plurals = fold_plurals
        self.texts: list[str] = []
        self._ids: dict[str, int] = {}
        self._raw: tuple[dict[str, int], dict[str, int]] = ({}, {})  # raw label -> id, GT side and predicted side
        self._words: list[frozenset[str]] | None = None

    def intern(self, raw: str, predicted: bool) -> int:
        known = self._raw[predicted]
        found = known.get(raw)
        if found is None:
            text = normalize(raw, self.mode, predicted=predicted, fold_plurals=self.fold_plurals)
            found = self._ids.get(text)
            if found is None:
                found = self._ids[text] = len(self.texts)
                self.texts.append(text)
            known[raw] = found
        return found

    def known(self, predicted: bool) -> dict[str, int]:
        """The raw labels of one side interned so far, and their ids (read only): a dict lookup before
        :meth:`intern` saves its call on the labels seen before, most of a run's."""
        return self._raw[predicted]

    def __len__(self) -> int:
        return len(self.texts)

    def word_sets(self) -> list[frozenset[str]]:
        if self._words is None:
            self._words = [words(text, self.mode) for text in self.texts]
        return self._words

    def empty(self) -> np.ndarray:
        """Per label id: whether the normalized label is empty (blank counts as empty)."""
        return np.array([not text.strip() for text in self.texts], dtype=bool)


def pair_scores(table: LabelTable, embeddings: np.ndarray, predicted: np.ndarray,
                ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(SS, S-IoU) per pair of label ids, each distinct pair computed once."""
    if len(predicted) == 0:
        return np.zeros(0), np.zeros(0)
    keys = predicted.astype(np.int64) * len(table) + ground_truth
    unique, inverse = np.unique(keys, return_inverse=True)
    p, g = np.divmod(unique, len(table))
    ss = np.einsum("ij,ij->i", embeddings[p].astype(np.float64), embeddings[g].astype(np.float64))
    ss[p == g] = 1.0
    sets = table.word_sets()
    siou = np.array([word_iou(sets[a], sets[b]) for a, b in zip(p.tolist(), g.tolist())], dtype=np.float64)
    empty = table.empty()
    blank = empty[p] | empty[g]
    ss[blank] = 0.0
    siou[blank] = 0.0
    return ss[inverse], siou[inverse]


def pooled_mean(values: np.ndarray) -> float:
    """Mean over pairs; NaN when there are no pairs."""
    return float(np.mean(values)) if len(values) else float("nan")


def sample_mean(values: np.ndarray, pair_sample: np.ndarray) -> float:
    """Mean over samples of each sample's mean over its pairs (A11 ``samples``); samples without pairs are skipped."""
    if len(values) == 0:
        return float("nan")
    sums = np.bincount(pair_sample, weights=values)
    counts = np.bincount(pair_sample)
    has = counts > 0
    return float(np.mean(sums[has] / counts[has]))
