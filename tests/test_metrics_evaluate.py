"""evaluate(): hand-computed scores through the whole pipeline, variants, breakdowns, bootstrap, parallel runs."""

import json

import numpy as np
import pytest

from mixedparts.errors import MixedPartsError
from mixedparts.metrics import units as units_module
from mixedparts.metrics.evaluate import METRICS, evaluate
from mixedparts.metrics.options import EvalOptions
from mixedparts.metrics.text_models import MeanPooledBert
from metrics_helpers import box, make_rows, minilm, oracle_predictions  # noqa: F401

SIZE = (4, 8)


def row(sample_id, task, segments, source="synthetic", category="chair"):
    return {"sample_id": sample_id, "source": source, "split": "test", "task": task,
            "images": [{"image_id": f"{sample_id}-{k}", "file_name": "x.png", "width": SIZE[1], "height": SIZE[0]}
                       for k in range(2)],
            "objects": [{"image_index": k, "category": category} for k in range(2)],
            "question": "", "answer": "",
            "segments": [{"label": label, "kind": kind, "image_index": k, "mask": mask}
                         for label, kind, k, mask in segments]}


def segment(label, k, mask, score=None):
    out = {"label": label, "image_index": k, "mask": mask}
    if score is not None:
        out["score"] = score
    return out


LEFT, RIGHT = box(SIZE, 0, 0, 4, 4), box(SIZE, 0, 4, 4, 8)
LEFT_HALF, EDGE = box(SIZE, 0, 0, 4, 2), box(SIZE, 0, 6, 4, 8)
OBJECT_ROW = row("a", "common_object", [("chair", "object", 0, LEFT), ("chair", "object", 1, RIGHT)])
# Image 0: the chair found at IoU 0.5 plus an extra disjoint mask; image 1: nothing predicted.
OBJECT_PREDICTION = {"sample_id": "a", "text": "", "segments": [segment("the chair", 0, LEFT_HALF),
                                                                 segment("leg", 0, EDGE)]}


def test_hand_computed_scores(minilm):
    result = evaluate([OBJECT_ROW], [OBJECT_PREDICTION], embedder=minilm)
    scores = result.scores.loc["common_object"]
    assert scores["mIoU"] == pytest.approx(25.0)           # (0.5 + 0) / 2 units
    assert scores["Recall"] == pytest.approx(50.0)         # 1 of 2 GT masks
    assert scores["AP50"] == pytest.approx(100 * 51 / 101)  # TP then FP, recall 0.5
    assert scores["SS"] == pytest.approx(100.0)            # one mIoU pair, "the chair" ~ "chair"
    assert scores["S-IoU"] == pytest.approx(100.0)
    assert list(result.scores.index) == ["common_object", "mean"]
    assert result.scores.loc["mean", "mIoU"] == pytest.approx(25.0)
    assert result.secondary.loc["common_object", "SS"] == pytest.approx(50.0)  # A13: 1 of 2 GT labels
    assert result.counts["units_without_predictions"] == 1
    assert result.counts["predicted_masks"] == 2


def test_label_pair_variants(minilm):
    all_gt = evaluate([OBJECT_ROW], [OBJECT_PREDICTION], EvalOptions(label_pairs="all-gt"), embedder=minilm)
    assert all_gt.scores.loc["common_object", "SS"] == pytest.approx(50.0)
    assert all_gt.secondary is None
    recall_pairs = evaluate([OBJECT_ROW], [OBJECT_PREDICTION], EvalOptions(label_pairs="recall"), embedder=minilm)
    assert recall_pairs.scores.loc["common_object", "S-IoU"] == pytest.approx(100.0)
    text = evaluate([OBJECT_ROW], [OBJECT_PREDICTION], EvalOptions(label_pairs="text"), embedder=minilm)
    assert text.counts["label_pairs"] == 1  # one GT label in the predicted unit, paired by text alone


def test_article_handling_is_a_variant(minilm):
    raw = evaluate([OBJECT_ROW], [OBJECT_PREDICTION], EvalOptions(labels="none"), embedder=minilm)
    assert raw.scores.loc["common_object", "S-IoU"] == pytest.approx(50.0)  # {the, chair} vs {chair}
    # metrics.md 6: "The Chair" ~ "chair" (the tokenizer is uncased)
    assert raw.scores.loc["common_object", "SS"] == pytest.approx(100 * 0.9468, abs=0.1)


def test_tasks_are_scored_apart_and_macro_averaged(minilm):
    parts = row("b", "common_parts", [("chair", "object", 0, LEFT), ("chair", "object", 1, RIGHT),
                                      ("leg", "common_part", 0, EDGE), ("leg", "common_part", 1, EDGE)])
    prediction = {"sample_id": "b", "text": "", "segments": [segment("the leg", 0, EDGE), segment("leg", 1, EDGE)]}
    result = evaluate([OBJECT_ROW, parts], [OBJECT_PREDICTION, prediction], embedder=minilm)
    assert result.scores.loc["common_parts", "mIoU"] == pytest.approx(100.0)
    assert result.scores.loc["common_parts", "Recall"] == pytest.approx(50.0)  # objects missed
    for metric in METRICS:
        assert result.scores.loc["mean", metric] == pytest.approx(
            (result.scores.loc["common_object", metric] + result.scores.loc["common_parts", metric]) / 2)
    parts_only = evaluate([OBJECT_ROW, parts], [OBJECT_PREDICTION, prediction], EvalOptions(gt_masks="parts-only"),
                          embedder=minilm)
    assert parts_only.scores.loc["common_parts", "Recall"] == pytest.approx(100.0)
    assert parts_only.counts["gt_masks"] == result.counts["gt_masks"] - 2
    assert parts_only.scores.loc["common_object", "Recall"] == pytest.approx(50.0)  # object task unchanged


def test_recall_text_gate(minilm):
    wrong = {"sample_id": "a", "text": "", "segments": [segment("handle", 0, LEFT)]}
    gated = evaluate([OBJECT_ROW], [wrong], embedder=minilm)
    assert gated.scores.loc["common_object", "Recall"] == 0.0
    assert gated.scores.loc["common_object", "mIoU"] == pytest.approx(50.0)  # pairing ignores labels
    ungated = evaluate([OBJECT_ROW], [wrong], EvalOptions(recall_text_gate="off"), embedder=minilm)
    assert ungated.scores.loc["common_object", "Recall"] == pytest.approx(50.0)
    assert ungated.text_models["recall_gate"] is None


def test_predicted_scores_reorder_ap(minilm):
    low_first = {"sample_id": "a", "text": "", "segments": [segment("leg", 0, EDGE, 0.9),
                                                            segment("chair", 0, LEFT, 0.2)]}
    constant = evaluate([OBJECT_ROW], [low_first], embedder=minilm)
    ranked = evaluate([OBJECT_ROW], [low_first], EvalOptions(ap_scores="predicted"), embedder=minilm)
    assert constant.scores.loc["common_object", "AP50"] == pytest.approx(100 * 0.5 * 51 / 101)  # FP first
    assert ranked.scores.loc["common_object", "AP50"] == pytest.approx(100 * 0.5 * 51 / 101)
    high_first = {"sample_id": "a", "text": "", "segments": [segment("leg", 0, EDGE, 0.2),
                                                             segment("chair", 0, LEFT, 0.9)]}
    assert evaluate([OBJECT_ROW], [high_first], EvalOptions(ap_scores="predicted"),
                    embedder=minilm).scores.loc["common_object", "AP50"] == pytest.approx(100 * 51 / 101)


def test_missing_samples_warn_or_fail(minilm):
    rows = make_rows(1)
    result = evaluate(rows, oracle_predictions(rows)[1:], embedder=minilm)
    assert result.counts["samples_without_predictions"] == 1
    assert any("1 of 3 samples have no prediction" in w for w in result.warnings)
    assert result.scores.loc["common_object", "mIoU"] == 0.0
    with pytest.raises(MixedPartsError, match="no prediction"):
        evaluate(rows, oracle_predictions(rows)[1:], strict=True, embedder=minilm)


def test_mismatched_phrase_and_mask_counts_are_counted(minilm):
    prediction = dict(OBJECT_PREDICTION, text="<p> the chair </p> [SEG] (IMAGE1)")
    assert evaluate([OBJECT_ROW], [prediction], embedder=minilm).counts["phrase_mask_mismatches"] == 1


def noisy_predictions(rows, seed=0):
    rng = np.random.default_rng(seed)
    predictions = []
    for r in rows:
        segments = []
        for s in r["segments"]:
            if rng.random() < 0.7:
                size = tuple(r["images"][s["image_index"]][key] for key in ("height", "width"))
                mask = s["mask"] if rng.random() < 0.5 else box(size, 0, 0, int(rng.integers(1, size[0])),
                                                                int(rng.integers(1, size[1])))
                label = s["label"] if rng.random() < 0.6 else str(rng.choice(["the leg", "seat", "chair", "lamp"]))
                segments.append(segment(label, s["image_index"], mask, float(rng.random())))
        predictions.append({"sample_id": r["sample_id"], "text": "", "segments": segments})
    return predictions


def test_parallel_scoring_equals_serial(minilm, monkeypatch):
    rows = make_rows(30, seed=3)
    predictions = noisy_predictions(rows)
    serial = evaluate(rows, predictions, workers=1, embedder=minilm)
    monkeypatch.setattr(units_module, "SERIAL_BELOW", 0)
    parallel = evaluate(rows, predictions, workers=2, embedder=minilm)
    assert parallel.scores.equals(serial.scores)
    assert parallel.counts == serial.counts


def test_breakdowns(minilm):
    rows = make_rows(4, seed=1)
    result = evaluate(rows, noisy_predictions(rows), embedder=minilm)
    by_source = result.breakdowns["source"]
    assert set(by_source["source"]) == {"synthetic", "paco_lvis"}
    assert set(result.breakdowns["category"]["category"]) == {"chair", "table"}
    means = by_source[by_source["task"] == "mean"]
    assert means["units"].sum() == result.counts["units"]
    one_group = evaluate(rows, noisy_predictions(rows), embedder=minilm, breakdowns=("source",))
    assert list(one_group.breakdowns) == ["source"]


def test_bootstrap_is_seeded_and_brackets_the_estimate(minilm):
    rows = make_rows(20, seed=2)
    predictions = noisy_predictions(rows, seed=2)
    first = evaluate(rows, predictions, bootstrap=200, seed=7, embedder=minilm)
    again = evaluate(rows, predictions, bootstrap=200, seed=7, embedder=minilm)
    assert first.ci.equals(again.ci)
    for task in first.scores.index:
        for metric in METRICS:
            low, high = first.ci.loc[task, metric]
            assert low <= high
            assert low - 5 <= first.scores.loc[task, metric] <= high + 5
    assert first.bootstrap["replicates"] == 200


def test_bootstrap_ap_with_every_sample_once_is_the_point_estimate(minilm):
    from mixedparts.metrics import evaluate as evaluate_module

    rows = make_rows(5, seed=4)
    predictions = noisy_predictions(rows, seed=4)
    result = evaluate(rows, predictions, embedder=minilm)
    captured = {}
    original = evaluate_module._Scored.collect

    def keep(*args, **kwargs):
        captured["scored"] = original(*args, **kwargs)
        return captured["scored"]

    evaluate_module._Scored.collect = keep
    try:
        evaluate(rows, predictions, embedder=minilm)
    finally:
        evaluate_module._Scored.collect = original
    scored = captured["scored"]
    task_units = np.flatnonzero(np.isin(scored.sample, [i for i, r in enumerate(rows) if r["task"] == "common_parts"]))
    _, unit_sample = np.unique(scored.sample[task_units], return_inverse=True)
    samples = unit_sample.max() + 1
    from mixedparts.metrics.resampling import SampleDetections

    detections = SampleDetections.from_scored(scored, task_units, unit_sample, samples)
    value = detections.ap50(np.arange(samples))
    assert 100 * value == pytest.approx(result.scores.loc["common_parts", "AP50"], abs=1e-9)


def test_result_is_json_ready(minilm):
    rows = make_rows(2)
    result = evaluate(rows, oracle_predictions(rows), bootstrap=20, embedder=minilm)
    content = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert content["variant"]["A8_label_pairs"] == "miou"
    assert content["scores"]["mean"]["units"] == 12
    assert content["ci95"]["mean"]["SS"][0] == pytest.approx(100.0)


def test_oracle_scores_100(minilm):
    rows = make_rows(3)
    result = evaluate(rows, oracle_predictions(rows), embedder=minilm)
    assert (result.scores[list(METRICS)].round(1) == 100.0).all().all()


def test_options_are_checked():
    with pytest.raises(ValueError):
        EvalOptions(miou="best")
    with pytest.raises(ValueError):
        EvalOptions(recall_text_threshold=0.0)


def tiny_bert(folder):
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "chair", "leg", "seat", "handle"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=32)
    BertModel(config).save_pretrained(folder)
    return folder


def test_bert_gate_is_glamm_mean_over_all_tokens(tmp_path, minilm):
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = tiny_bert(tmp_path)
    texts = ["chair", "the chair leg", "seat", ""]
    batched = MeanPooledBert(folder).embed(texts)
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)
    for text, row in zip(texts, batched):
        with torch.no_grad():  # GLaMM: one string at a time, mean of last_hidden_state over every token
            single = model(**tokenizer(text, return_tensors="pt", max_length=512, truncation=True))
        expected = single.last_hidden_state[0].mean(0).numpy()
        assert row == pytest.approx(expected / np.linalg.norm(expected), abs=1e-5)
    result = evaluate([OBJECT_ROW], [OBJECT_PREDICTION], EvalOptions(recall_text_model=str(folder)),
                      embedder=minilm)
    assert result.variant["A7_recall_text_gate"].startswith(str(folder))
    assert result.text_models["recall_gate"]["weights_sha256"]


# all-MiniLM-L6-v2 cosines (computed with the packaged weights): "ear" vs "a neck" 0.442, vs "neck"
# 0.539; "head" vs "the mouth" 0.462, vs "mouth" 0.530 -- raw and article-stripped labels fall on
# opposite sides of the 0.5 gate, with margins far above BLAS drift (~1e-3).
ARTICLE_ROW = row("e", "unique_parts", [("ear", "unique_part", 0, LEFT), ("head", "unique_part", 1, RIGHT)])
ARTICLE_PREDICTION = {"sample_id": "e", "text": "", "segments": [segment("a neck", 0, LEFT),
                                                                  segment("the mouth", 1, RIGHT)]}


def test_recall_gate_compares_raw_labels_as_glamm(minilm):
    raw = evaluate([ARTICLE_ROW], [ARTICLE_PREDICTION], embedder=minilm)
    assert raw.scores.loc["unique_parts", "Recall"] == 0.0  # GLaMM embeds "a neck" as written
    assert raw.variant["A7_recall_text_gate"] == "all-MiniLM-L6-v2 >= 0.5 on raw labels"
    normalized = evaluate([ARTICLE_ROW], [ARTICLE_PREDICTION], EvalOptions(recall_labels="normalized"),
                          embedder=minilm)
    assert normalized.scores.loc["unique_parts", "Recall"] == pytest.approx(100.0)
    assert normalized.variant["A7_recall_text_gate"] == "all-MiniLM-L6-v2 >= 0.5 on articles-normalized labels"
    # SS always compares the normalized labels; only the gate changes.
    assert raw.scores.loc["unique_parts", "SS"] == normalized.scores.loc["unique_parts", "SS"]
    with pytest.raises(ValueError, match="recall_labels"):
        EvalOptions(recall_labels="lowercase")


def test_raw_recall_labels_still_match_identical_strings(minilm):
    exact = {"sample_id": "e", "text": "", "segments": [segment("ear", 0, LEFT), segment("head", 1, RIGHT)]}
    assert evaluate([ARTICLE_ROW], [exact], embedder=minilm).scores.loc["unique_parts", "Recall"] == 100.0


def _three_tasks():
    rows = make_rows(2, seed=3)
    good = oracle_predictions(rows)
    return rows, good


def test_an_empty_task_scores_zero_and_never_raises_the_headline(minilm):
    rows, good = _three_tasks()
    unique = {row["sample_id"] for row in rows if row["task"] == "unique_parts"}
    abstain = [p for p in good if p["sample_id"] not in unique]
    # A poor but real attempt at the task: every mask shifted off its GT, labels wrong.
    poor = [p if p["sample_id"] not in unique else
            {**p, "segments": [{**s, "label": "handle", "mask": box((20, 30) if s["image_index"] == 0 else (25, 15),
                                                                      0, 0, 3, 3)} for s in p["segments"]]}
            for p in good]
    abstained = evaluate(rows, abstain, embedder=minilm)
    attempted = evaluate(rows, poor, embedder=minilm)
    for metric in METRICS:
        assert abstained.scores.loc["unique_parts", metric] == 0.0, metric
        assert not np.isnan(abstained.scores[metric]).any(), metric
        assert abstained.scores.loc["mean", metric] == pytest.approx(
            abstained.scores.loc[["common_object", "common_parts", "unique_parts"], metric].mean())
        assert abstained.scores.loc["mean", metric] <= attempted.scores.loc["mean", metric] + 1e-9, metric
    content = abstained.to_dict()
    assert all(value is not None for task in content["scores"].values() for value in task.values())


def test_tasks_without_pairs_or_gt_score_zero_not_nan(minilm):
    # Predictions everywhere, but disjoint from the GT: no mIoU pair, so SS and S-IoU have nothing to average.
    disjoint = {"sample_id": "a", "text": "", "segments": [segment("chair", 0, RIGHT), segment("chair", 1, LEFT)]}
    result = evaluate([OBJECT_ROW], [disjoint], embedder=minilm)
    assert result.counts["label_pairs"] == 0
    assert result.scores.loc["common_object", ["SS", "S-IoU"]].tolist() == [0.0, 0.0]
    assert result.secondary.loc["common_object", "SS"] == 0.0
    for average in ("pairs", "samples"):
        for pairs in ("miou", "recall", "text", "all-gt"):
            options = EvalOptions(label_pairs=pairs, label_average=average)
            scores = evaluate([OBJECT_ROW], [], options, embedder=minilm).scores
            assert not scores.isna().any().any(), (pairs, average)
    # A task whose samples carry no GT mask at all: AP50 has nothing to find, so 0 (COCO says -1).
    no_gt = row("n", "unique_parts", [])
    result = evaluate([OBJECT_ROW, no_gt], [OBJECT_PREDICTION, {"sample_id": "n", "text": "",
                                                               "segments": [segment("leg", 0, LEFT)]}],
                      bootstrap=20, embedder=minilm)
    assert result.scores.loc["unique_parts", METRICS].tolist() == [0.0] * len(METRICS)
    assert all(not np.isnan(v) for cell in result.ci.to_numpy().ravel() for v in cell)
