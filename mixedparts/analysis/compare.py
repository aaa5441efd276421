"""Two predictions files scored on one ground truth, compared metric by metric with a paired bootstrap."""

from __future__ import annotations

import math

from mixedparts.analysis.paired import ALPHA, paired_bootstrap, summarize, verdict
from mixedparts.metrics.evaluate import MEAN, METRICS, evaluate

COMPARE_FORMAT = "mixedparts-compare/1"


def compare(truth, a, b, replicates: int = 1000, seed: int = 0, alpha: float = ALPHA, top: int = 5,
            workers: int | None = None, embedder=None) -> dict:
    """``a``, ``b``: Predictions (or lists of prediction dicts) on the GroundTruth ``truth``; JSON-ready result."""
    from mixedparts.metrics.text_models import load_embedder

    embedder = embedder or load_embedder(None)
    results = [evaluate(truth, side, keep_details=True, workers=workers, embedder=embedder) for side in (a, b)]
    resamplers = [{task: r.details.resampler(task) for task in r.details.tasks} for r in results]
    replicas = paired_bootstrap(resamplers[0], resamplers[1], replicates, seed)
    observed = {task: {m: _difference(results[0].scores.loc[task, m], results[1].scores.loc[task, m])
                       for m in METRICS} for task in replicas}
    differences = summarize(observed, replicas, alpha)
    documents = [r.to_dict() for r in results]
    names = [_name(d, "A") for d in documents]
    verdicts = [verdict(names[0], names[1], task, metric, differences[task][metric])
                for task in [MEAN, *(t for t in differences if t != MEAN)] for metric in METRICS]
    return {
        "format": COMPARE_FORMAT,
        "ground_truth": documents[0]["ground_truth"], "split": documents[0]["split"],
        "a": _side(documents[0]), "b": _side(documents[1]),
        "bootstrap": {"replicates": replicates, "seed": seed, "alpha": alpha, "paired": True,
                      "resampled": "samples within each task, the same draws for A and B"},
        "differences": differences,
        "verdicts": verdicts,
        "groups": {name: _group_differences(documents[0]["breakdowns"][name], documents[1]["breakdowns"][name],
                                            name, top) for name in documents[0]["breakdowns"]},
    }


def _difference(x, y) -> float | None:
    if x is None or y is None or math.isnan(x) or math.isnan(y):
        return None
    return float(x) - float(y)


def _name(document: dict, fallback: str) -> str:
    return document.get("model") or str(document.get("predictions") or fallback)


def _side(document: dict) -> dict:
    return {"predictions": document["predictions"], "model": document.get("model"), "scores": document["scores"],
            "counts": document["counts"], "variant": document["variant"], "warnings": document["warnings"]}


def _group_differences(a_records: list[dict], b_records: list[dict], name: str, top: int) -> list[dict]:
    """Groups of one breakdown (their mean rows), by the largest absolute difference in any metric."""
    b_means = {r[name]: r for r in b_records if r["task"] == MEAN}
    groups = []
    for record in a_records:
        other = b_means.get(record[name])
        if record["task"] != MEAN or other is None:
            continue
        difference = {m: _difference(_nan(record.get(m)), _nan(other.get(m))) for m in METRICS}
        largest = max((abs(d) for d in difference.values() if d is not None), default=0.0)
        groups.append({"group": record[name], "units": record["units"], "difference": difference,
                       "largest": largest})
    groups.sort(key=lambda g: (-g["largest"], str(g["group"])))
    return groups[:top]


def _nan(value):
    return float("nan") if value is None else value
