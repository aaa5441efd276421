"""Paired bootstrap of two predictions files on the same ground truth (``mixedparts-compare``).

Each replicate draws the samples of a task with replacement once and scores *both* files on that
same draw, with the same :class:`~mixedparts.metrics.resampling.TaskResampler` formulas as the
evaluation's intervals; the headline replicate is the macro mean of the task replicates, as in
evaluate. Per metric: the difference A - B (the evaluation's point estimates), its 95% percentile
interval, and a two-sided p-value that inverts that interval: twice the share of replicates on the
far side of 0 (a replicate of exactly 0 counts on both sides; +1 correction; at most 1). So
p < 0.05 exactly when the 95% interval excludes 0 (give or take the correction), identical files
get p = 1, and the smallest p is 2 / (replicates + 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from mixedparts.metrics.evaluate import MEAN, macro_mean
from mixedparts.metrics.resampling import METRICS, TaskResampler

ALPHA = 0.05


class IncomparableError(ValueError):
    """The two files were not scored on the same samples."""


def paired_bootstrap(a: Mapping[str, TaskResampler], b: Mapping[str, TaskResampler], replicates: int = 1000,
                     seed: int = 0, metrics=METRICS) -> dict[str, dict[str, np.ndarray]]:
    """Replicates of A - B (fractions) per task and for the mean: ``{task: {metric: array}}``."""
    if list(a) != list(b):
        raise IncomparableError(f"the files cover different tasks: {list(a)} and {list(b)}")
    for task in a:
        if a[task].samples != b[task].samples:
            raise IncomparableError(f"task {task}: {a[task].samples} and {b[task].samples} samples")
    draws = shared_draws({task: r.samples for task, r in a.items()}, replicates, seed)
    values_a, values_b = (replicate_values(side, draws, metrics) for side in (a, b))
    return {task: {m: values_a[task][m] - values_b[task][m] for m in metrics} for task in values_a}


def shared_draws(samples: Mapping[str, int], replicates: int, seed: int) -> dict[str, np.ndarray]:
    """Per task, ``replicates`` x samples indices: the draws every file of a comparison is scored on."""
    rng = np.random.default_rng(seed)
    return {task: np.stack([rng.integers(0, n, n) for _ in range(replicates)]).astype(np.int32)
            for task, n in samples.items()}


def replicate_values(resamplers: Mapping[str, TaskResampler], draws: Mapping[str, np.ndarray],
                     metrics=METRICS) -> dict[str, dict[str, np.ndarray]]:
    """One file's replicates (fractions) on ``draws``, per task and for the mean (the macro mean, as evaluate)."""
    values = {task: resamplers[task].score_draws(draws[task], len(draws[task]), metrics) for task in draws}
    values[MEAN] = {m: np.array([macro_mean(v) for v in zip(*(values[t][m] for t in draws))]) for m in metrics}
    return values


def summarize(observed: Mapping[str, Mapping[str, float]], replicates: Mapping[str, Mapping[str, np.ndarray]],
              alpha: float = ALPHA) -> dict[str, dict[str, dict]]:
    """Per task and metric: difference (percent points), 95% interval, p-value and whether p < ``alpha``.

    ``observed[task][metric]``: A - B in percent points (from the two evaluations).
    """
    out = {}
    for task, metrics in replicates.items():
        out[task] = {}
        for metric, values in metrics.items():
            difference = observed[task][metric]
            finite = values[~np.isnan(values)] * 100
            if difference is None or math.isnan(difference) or not len(finite):
                out[task][metric] = {"difference": None, "ci95": [None, None], "p_value": None,
                                     "significant": False, "replicates": int(len(finite))}
                continue
            low, high = (float(x) for x in np.percentile(finite, [2.5, 97.5]))
            far_side = min(np.count_nonzero(finite <= 0), np.count_nonzero(finite >= 0))
            p_value = float(min(1.0, 2 * (1 + far_side) / (len(finite) + 1)))
            out[task][metric] = {"difference": float(difference), "ci95": [low, high], "p_value": p_value,
                                 "significant": bool(p_value < alpha and difference != 0),
                                 "replicates": int(len(finite))}
    return out


def verdict(name_a: str, name_b: str, task: str, metric: str, entry: dict) -> str:
    """One line: which file is better on the metric, by how much, and whether that is significant."""
    where = f"{metric} ({'headline' if task == MEAN else task})"
    if entry["difference"] is None:
        return f"{where}: not comparable (no value on one side)"
    low, high = entry["ci95"]
    numbers = f"{entry['difference']:+.1f} points, 95% CI [{low:+.1f}, {high:+.1f}], p = {entry['p_value']:.3g}"
    if not entry["significant"]:
        return f"{where}: no significant difference between {name_a} and {name_b} ({numbers})"
    better, worse = (name_a, name_b) if entry["difference"] > 0 else (name_b, name_a)
    return f"{where}: {better} is significantly better than {worse} ({numbers})"
