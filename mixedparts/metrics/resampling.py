"""One task's scores as per-sample sums, so that any multiset of its samples can be re-scored quickly.

The bootstrap intervals of ``mixedparts-eval`` and the paired test of ``mixedparts-compare`` both
draw samples with replacement and re-score the draw; they share :class:`TaskResampler`, so an
interval and a paired difference come from the very same formulas as the point estimate.

A resampler is plain arrays (:meth:`TaskResampler.to_arrays`), which the leaderboard stores per
submission to test entries against each other without the ground truth at hand.
"""

from __future__ import annotations

import math

import numpy as np

from mixedparts.metrics import ap50
from mixedparts.schema import METRICS

RATIO_METRICS = ("mIoU", "Recall", "SS", "S-IoU")


class TaskResampler:
    """Per sample of one task: numerator and denominator of each ratio metric, and its COCO detections.

    ``empty[m]`` is the value of ratio metric ``m`` over a draw whose denominator is 0.
    """

    def __init__(self, numerators: dict, denominators: dict, empty: dict, detections: SampleDetections):
        self.numerators = {m: np.asarray(v, dtype=float) for m, v in numerators.items()}
        self.denominators = {m: np.asarray(v, dtype=float) for m, v in denominators.items()}
        self.empty = dict(empty)
        self.detections = detections
        self.samples = len(detections.count)

    @classmethod
    def from_scored(cls, scored, unit_index: np.ndarray) -> TaskResampler:
        """From evaluate's per-unit results over the units ``unit_index`` (one task's, in ground-truth order)."""
        samples, unit_sample = np.unique(scored.sample[unit_index], return_inverse=True)
        n = len(samples)

        def per_sample(values, owners=unit_sample):
            return np.bincount(owners, weights=values, minlength=n)

        local = np.full(len(scored.unit_ids), -1)
        local[unit_index] = unit_sample
        pairs = local[scored.pair_unit] >= 0
        owners = local[scored.pair_unit[pairs]]
        numerators = {"mIoU": per_sample(scored.miou[unit_index]), "Recall": per_sample(scored.matched[unit_index])}
        denominators = {"mIoU": per_sample(np.ones(len(unit_index))), "Recall": per_sample(scored.gt_count[unit_index])}
        empty = {"mIoU": float("nan"), "Recall": 0.0}
        for name, values in (("SS", scored.ss[pairs]), ("S-IoU", scored.siou[pairs])):
            sums = per_sample(values, owners)
            if scored.options.label_pairs == "all-gt":
                denominator = per_sample(scored.gt_count[unit_index])
            else:
                denominator = per_sample(np.ones(len(values)), owners)
            if scored.options.label_average == "samples":
                has = denominator > 0
                numerators[name] = np.where(has, sums / np.where(has, denominator, 1), 0.0)
                denominators[name] = has.astype(float)
            else:
                numerators[name], denominators[name] = sums, denominator
            empty[name] = 0.0  # no label pairs: 0, as for the point estimate (an empty task must not drop out)
        detections = SampleDetections.from_scored(scored, unit_index, unit_sample, n)
        return cls(numerators, denominators, empty, detections)

    def metrics(self, draw: np.ndarray) -> dict[str, float]:
        """The five metrics (fractions) over the samples ``draw`` (local indices, repeats allowed, in draw order)."""
        weights = np.bincount(draw, minlength=self.samples).astype(float)
        out = {}
        for name in RATIO_METRICS:
            bottom = weights @ self.denominators[name]
            out[name] = weights @ self.numerators[name] / bottom if bottom > 0 else self.empty[name]
        out["AP50"] = self.detections.ap50(draw)
        return out

    def draw(self, rng) -> np.ndarray:
        return rng.integers(0, self.samples, self.samples)

    def replicates(self, rng, count: int, metrics=METRICS) -> dict[str, np.ndarray]:
        """``count`` replicates of ``metrics`` (fractions), each over one :meth:`draw` from ``rng``.

        Draws come from ``rng`` one replicate after another, so a replicate is the same as
        ``metrics(draw(rng))`` in a loop; the ratio metrics are computed for a block of replicates
        at once (one matrix product), AP50 replicate by replicate.
        """
        return self.score_draws((self.draw(rng) for _ in range(count)), count, metrics)

    def score_draws(self, draws, count: int, metrics=METRICS) -> dict[str, np.ndarray]:
        """Like :meth:`replicates` for given draws (an iterable of ``count`` index arrays)."""
        out = {m: np.empty(count) for m in metrics}
        ratios = [m for m in metrics if m in RATIO_METRICS]
        block = max(1, (1 << 21) // max(self.samples, 1))  # weights of a block stay within ~16 MB
        iterator = iter(draws)
        for start in range(0, count, block):
            rows = [next(iterator) for _ in range(min(block, count - start))]
            if "AP50" in out:
                for offset, draw in enumerate(rows):
                    out["AP50"][start + offset] = self.detections.ap50(draw)
            if not ratios:
                continue
            flat = np.concatenate([draw + k * self.samples for k, draw in enumerate(rows)])
            weights = np.bincount(flat, minlength=len(rows) * self.samples).reshape(len(rows), self.samples)
            weights = weights.astype(float)
            for name in ratios:
                bottom = weights @ self.denominators[name]
                top = weights @ self.numerators[name]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[name][start:start + len(rows)] = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1),
                                                                  self.empty[name])
        return out

    def to_arrays(self) -> dict:
        """Plain lists and numbers (JSON-ready; NaN as None)."""
        d = self.detections
        return {"numerators": {m: v.tolist() for m, v in self.numerators.items()},
                "denominators": {m: v.tolist() for m, v in self.denominators.items()},
                "empty": {m: None if np.isnan(v) else v for m, v in self.empty.items()},
                "detections": {"scores": d.scores.tolist(), "true_positive": d.true_positive.astype(int).tolist(),
                               "false_positive": d.false_positive.astype(int).tolist(), "count": d.count.tolist(),
                               "gt": d.gt.tolist()}}

    @classmethod
    def from_arrays(cls, arrays: dict) -> TaskResampler:
        d = arrays["detections"]
        detections = SampleDetections(np.asarray(d["scores"], dtype=float), np.asarray(d["true_positive"], dtype=bool),
                                      np.asarray(d["false_positive"], dtype=bool), np.asarray(d["count"], np.int64),
                                      np.asarray(d["gt"], np.int64))
        empty = {m: float("nan") if v is None else float(v) for m, v in arrays["empty"].items()}
        return cls(arrays["numerators"], arrays["denominators"], empty, detections)


class SampleDetections:
    """One task's COCO detection flags, grouped by sample, to recompute AP50 for any list of samples."""

    def __init__(self, scores: np.ndarray, true_positive: np.ndarray, false_positive: np.ndarray,
                 count: np.ndarray, gt: np.ndarray):
        self.scores, self.true_positive, self.false_positive = scores, true_positive, false_positive
        self.count, self.gt = count, gt
        self.first = np.concatenate(([0], np.cumsum(self.count)[:-1])).astype(np.int64)
        self.presorted = len(self.scores) == 0 or bool(np.all(self.scores == self.scores[0]))

    @classmethod
    def from_scored(cls, scored, unit_index: np.ndarray, unit_sample: np.ndarray, samples: int) -> SampleDetections:
        # Units of a sample are consecutive in ground-truth order, so their detections are too.
        local = np.full(len(scored.unit_ids), -1, dtype=np.int64)
        local[unit_index] = unit_sample
        kept = scored.detections.of_units(local >= 0)
        return cls(kept.scores, kept.matched, ~kept.matched,
                   np.bincount(local[kept.unit], minlength=samples).astype(np.int64),
                   np.bincount(unit_sample, weights=scored.gt_count[unit_index], minlength=samples).astype(np.int64))

    def ap50(self, draw: np.ndarray) -> float:
        """AP50 over the samples ``draw`` (indices, repeats allowed), detections listed in that order."""
        lengths = self.count[draw]
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        order = np.repeat(self.first[draw] - offsets, lengths) + np.arange(int(lengths.sum()))
        ap = ap50.ap_from_flags(self.scores[order], self.true_positive[order], self.false_positive[order],
                                int(self.gt[draw].sum()), presorted=self.presorted)
        return 0.0 if math.isnan(ap) else ap  # no GT drawn: 0, as for the point estimate (never NaN)
