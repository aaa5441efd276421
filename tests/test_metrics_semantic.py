"""SS and S-IoU (metrics.md 4.4, 4.5, 6, A9, A10): reference cosines, worked word-set values, articles."""

import numpy as np
import pytest

from mixedparts.metrics.labels import normalize, singular, word_iou, words
from mixedparts.metrics.semantic import LabelTable, pair_scores, sample_mean
from metrics_helpers import minilm  # noqa: F401  (session fixture)

# metrics.md section 6: cosines of all-MiniLM-L6-v2 mean-pooled embeddings of the raw strings.
SS_REFERENCE = [
    ("leg", "leg", 1.0000), ("the leg", "leg", 0.8654), ("leg", "legs", 0.8881), ("chair leg", "leg", 0.8164),
    ("dog leg", "leg", 0.7572), ("a dog", "dog", 0.8398), ("chair", "a chair", 0.9359),
    ("The Chair", "chair", 0.9468), ("Leg", "leg", 1.0000), ("wheel", "tire", 0.7238),
    ("seat", "backrest", 0.5175), ("head", "beak", 0.3752), ("handle", "leg", 0.2932), ("leg", "", 0.3704),
    ("", "", 1.0000),
]


def test_ss_reference_values(minilm):
    texts = sorted({t for pair in SS_REFERENCE for t in pair[:2]})
    embeddings = dict(zip(texts, minilm.embed(texts)))
    for predicted, truth, expected in SS_REFERENCE:
        cosine = float(embeddings[predicted] @ embeddings[truth])
        assert cosine == pytest.approx(expected, abs=1e-3), (predicted, truth)


@pytest.mark.parametrize("predicted, truth, expected", [
    ("the leg", "leg", 0.5), ("chair leg", "leg", 0.5), ("Dog's ear", "dog ear", 1 / 3), ("legs", "leg", 0.0),
    ("t-shirt", "t shirt", 0.0), ("Leg", "leg", 1.0),
])
def test_word_iou_worked_values_without_normalization(predicted, truth, expected):
    """metrics.md 4.5's table (CaSED: punctuation deleted, lowercased, whitespace sets)."""
    assert word_iou(words(normalize(predicted, "none")), words(normalize(truth, "none", predicted=False))) \
        == pytest.approx(expected)


@pytest.mark.parametrize("label, expected", [
    ("the leg", "leg"), ("  The Chair ", "chair"), ("a dog", "dog"), ("an arm", "arm"), ("the the leg", "the leg"),
    ("theater", "theater"), ("another leg", "another leg"), ("a", "a"), ("A  Seat", "seat"), ("", ""),
])
def test_articles_are_dropped_once_and_only_as_words(label, expected):
    assert normalize(label) == expected


def test_articles_make_a_perfect_answer_score_one():
    assert word_iou(words(normalize("the leg")), words(normalize("leg", predicted=False))) == 1.0
    assert word_iou(words(normalize("a chair")), words(normalize("chair", predicted=False))) == 1.0


def test_osprey_cleanup():
    assert normalize("Category: dog leg.", "osprey") == " dog leg "
    assert normalize("dog:leg", "osprey", predicted=False) == "dog leg"
    assert normalize("dog_leg", "osprey", predicted=False) == "dog leg"
    assert words("dog's leg", "osprey") == {"dog's", "leg"}  # Osprey keeps apostrophes
    assert words("dog's leg") == {"dogs", "leg"}


def test_plural_folding_is_optional_and_simple():
    assert normalize("the legs", fold_plurals=True) == "leg"
    assert normalize("the legs") == "legs"
    assert [singular(w) for w in ("batteries", "glasses", "boxes", "benches", "bus", "axis", "leg", "legs")] == \
        ["battery", "glass", "box", "bench", "bus", "axis", "leg", "leg"]


def test_both_sides_empty_scores_zero_not_nan():
    assert word_iou(frozenset(), frozenset()) == 0.0


def test_pair_scores_identical_empty_and_each_pair_once():
    table = LabelTable()
    ids = [table.intern(text, predicted) for text, predicted in
           [("the leg", True), ("leg", False), ("", True), ("chair leg", True)]]
    assert ids[0] == ids[1]  # the same normalized label
    embeddings = np.eye(len(table), dtype=np.float32)
    ss, siou = pair_scores(table, embeddings, np.array([ids[0], ids[2], ids[3], ids[0]]),
                           np.array([ids[1], ids[1], ids[1], ids[1]]))
    assert ss.tolist() == [1.0, 0.0, 0.0, 1.0]   # identical: exactly 1; empty label: 0
    assert siou.tolist() == [1.0, 0.0, 0.5, 1.0]


def test_per_sample_average():
    values = np.array([1.0, 0.0, 0.5])
    assert sample_mean(values, np.array([0, 0, 3])) == pytest.approx(0.5)  # (0.5 + 0.5) / 2
    assert np.isnan(sample_mean(np.zeros(0), np.zeros(0, dtype=int)))
