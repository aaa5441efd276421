"""Score predictions against a ground-truth split: per task, the macro mean, breakdowns and bootstrap CIs.

    from mixedparts.metrics.evaluate import evaluate
    from mixedparts.metrics.report import format_result
    result = evaluate(ground_truth, predictions)        # EvalOptions() = the spec's defaults
    print(format_result(result))

Every metric is computed per task; the headline is the unweighted mean of the task scores, which
reproduces all 30 cells of Calico's MixedParts tables from their per-task rows (docs/metrics.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mixedparts.errors import MixedPartsError
from mixedparts.gc_pause import cyclic_gc_paused
from mixedparts.metrics import ap50
from mixedparts.metrics.ground_truth import GroundTruth
from mixedparts.metrics.options import EvalOptions
from mixedparts.metrics.recall import recall as recall_ratio
from mixedparts.metrics.resampling import TaskResampler
from mixedparts.metrics.semantic import LabelTable, pair_scores
from mixedparts.metrics.units import Pairs, build_units, score_units
from mixedparts.predictions import Predictions, PredictionsError, check_against_ground_truth, predictions_from_list
from mixedparts.schema import MEAN, METRICS, TASKS
BREAKDOWNS = ("source", "category")


@dataclass
class EvalResult:
    scores: pd.DataFrame
    """Rows: the tasks present and ``mean``; columns: :data:`METRICS` plus ``samples`` and ``units``. Percent."""
    options: EvalOptions
    counts: dict
    text_models: dict
    meta: dict = field(default_factory=dict)
    ci: pd.DataFrame | None = None
    """Same shape as ``scores``' metric columns; cells are (low, high) of the 95% bootstrap interval."""
    bootstrap: dict = field(default_factory=dict)
    secondary: pd.DataFrame | None = None
    """A13: SS and S-IoU over every GT label, unpaired ones scoring 0 (rows as ``scores``)."""
    pooled: dict = field(default_factory=dict)
    """A2: every metric pooled over all units of all tasks (secondary)."""
    breakdowns: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Per ``source`` / ``category``: one row per (group, task) and per (group, mean)."""
    warnings: list[str] = field(default_factory=list)
    details: EvalDetails | None = field(default=None, repr=False)
    """With ``evaluate(..., keep_details=True)``: the per-unit results behind every number above."""

    @property
    def variant(self) -> dict:
        return self.options.variant()

    def headline(self) -> dict[str, float]:
        return {metric: float(self.scores.loc[MEAN, metric]) for metric in METRICS}

    def to_dict(self) -> dict:
        """JSON-ready: percent values unrounded, NaN as null."""
        def table(frame: pd.DataFrame | None) -> dict | None:
            if frame is None:
                return None
            return {str(index): {str(k): _json_value(v) for k, v in row.items()}
                    for index, row in frame.to_dict("index").items()}

        def long_table(frame: pd.DataFrame) -> list[dict]:
            return [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]

        return {
            "format": "mixedparts-eval/1",
            "scale": "percent",
            **self.meta,
            "variant": self.variant,
            "options": self.options.as_dict(),
            "text_models": self.text_models,
            "scores": table(self.scores),
            "ci95": None if self.ci is None else {row: {m: list(map(_json_value, self.ci.loc[row, m]))
                                                        for m in METRICS} for row in self.ci.index},
            "bootstrap": self.bootstrap or None,
            "secondary_all_gt_labels": table(self.secondary),
            "pooled_all_tasks": {k: _json_value(v) for k, v in self.pooled.items()},
            "counts": self.counts,
            "breakdowns": {name: long_table(frame) for name, frame in self.breakdowns.items()},
            "warnings": self.warnings,
        }


def macro_mean(values: Iterable[float]) -> float:
    """The headline: the unweighted mean of the scores of the tasks in the ground truth.

    Task scores are never NaN (see :meth:`_Scored.metrics`): skipping a task would let a submission
    that abstains on it raise the headline.
    """
    values = list(values)
    return sum(values) / len(values) if values else 0.0


@cyclic_gc_paused()  # millions of small acyclic dicts and lists (see mixedparts.gc_pause)
def evaluate(ground_truth: GroundTruth | Sequence[dict], predictions: Predictions | Sequence[dict] | None,
             options: EvalOptions | None = None, *, bootstrap: int = 0, seed: int = 0,
             breakdowns: Sequence[str] = BREAKDOWNS, strict: bool = False, workers: int | None = None,
             embedder=None, recall_embedder=None, keep_details: bool = False) -> EvalResult:
    """Score ``predictions`` on ``ground_truth``.

    ``ground_truth``: a :class:`GroundTruth` or a list of sample rows (schema.SAMPLE_FEATURES).
    ``predictions``: a :class:`Predictions` (from ``read_predictions``), a list of prediction dicts,
    or None (everything empty). Samples without a prediction count as empty; ``strict`` makes that
    an error. ``bootstrap`` > 0 adds 95% intervals from that many resamplings of samples within
    each task (seeded). ``embedder`` / ``recall_embedder`` override the text models (tests).
    ``keep_details`` keeps the per-unit results in ``result.details`` (error analysis, paired tests).
    """
    from mixedparts.metrics.text_models import embed_distinct, load_embedder

    options = options or EvalOptions()
    if not isinstance(ground_truth, GroundTruth):
        rows = list(ground_truth)
        splits = sorted({row["split"] for row in rows})
        ground_truth = GroundTruth(rows, splits[0] if len(splits) == 1 else ",".join(splits), "<rows>")
    if not isinstance(predictions, Predictions):
        predictions = predictions_from_list(predictions or [], workers=workers)
    columns = ground_truth.columns
    if not len(columns):
        raise MixedPartsError(f"{ground_truth.origin}: the {ground_truth.split} split holds no samples")
    missing = check_against_ground_truth(predictions, ground_truth.image_sizes(), ground_truth.split)
    warnings = list(predictions.warnings)
    if missing:
        shown = ", ".join(repr(s) for s in missing[:3]) + (", ..." if len(missing) > 3 else "")
        if strict:
            raise PredictionsError(predictions.path, f"{len(missing)} of {len(columns)} samples have no prediction "
                                   f"({shown}); without --strict they would count as empty", field="predictions")
        warnings.append(f"{len(missing)} of {len(columns)} samples have no prediction ({shown}); they count as empty")

    table = LabelTable(options.labels, options.fold_plurals)
    gate_on = options.recall_text_gate == "on"
    # GLaMM's gate compares the phrases and GT labels as written; "none" keeps them so.
    recall_table = LabelTable("none") if gate_on and options.recall_labels == "raw" else None
    units = build_units(columns, predictions.by_sample, table, options, recall_table)
    embedder = embedder or load_embedder(None)
    if gate_on and recall_embedder is None and options.recall_text_model is not None:
        recall_embedder = load_embedder(options.recall_text_model)
    gate_texts = None  # None: the gate reuses SS's embeddings (same model, same normalized labels)
    if gate_on and (recall_table is not None or recall_embedder is not None):
        gate_texts = recall_table.texts if recall_table is not None else table.texts
    if gate_texts is not None and recall_embedder is None:
        # Raw and normalized labels mostly coincide: embed only the raw strings SS has not embedded.
        ss_embeddings, recall_embeddings = embed_distinct(embedder, table.texts, gate_texts)
    else:
        ss_embeddings = embedder.embed(table.texts)
        if gate_texts is not None:
            recall_embeddings = recall_embedder.embed(gate_texts)
        else:
            recall_embeddings = ss_embeddings if gate_on else None
    chunks = score_units(units, options, ss_embeddings, recall_embeddings, workers)

    scored = _Scored.collect(units, chunks, options, table, ss_embeddings)
    task_of_sample = columns.tasks
    unit_task = task_of_sample[units.sample]
    tasks = [t for t in TASKS if (unit_task == TASKS.index(t)).any()]

    score_rows, secondary_rows = {}, {}
    for task in tasks:
        selected = unit_task == TASKS.index(task)
        score_rows[task] = scored.metrics(selected)
        secondary_rows[task] = scored.all_gt_label_metrics(selected)
    score_rows[MEAN] = {m: macro_mean(score_rows[t][m] for t in tasks) for m in METRICS}
    secondary_rows[MEAN] = {m: macro_mean(secondary_rows[t][m] for t in tasks) for m in ("SS", "S-IoU")}
    frame = pd.DataFrame.from_dict(score_rows, orient="index")[list(METRICS)] * 100
    sample_counts = {t: int((task_of_sample == TASKS.index(t)).sum()) for t in tasks}
    frame.insert(0, "samples", [sample_counts.get(t, len(columns)) for t in frame.index])
    frame.insert(1, "units", [int((unit_task == TASKS.index(t)).sum()) if t in TASKS else len(units)
                              for t in frame.index])
    secondary = None
    if options.label_pairs != "all-gt":
        secondary = pd.DataFrame.from_dict(secondary_rows, orient="index")[["SS", "S-IoU"]] * 100

    result = EvalResult(
        scores=frame, options=options, secondary=secondary,
        pooled={m: v * 100 for m, v in scored.metrics(np.ones(len(units), dtype=bool)).items()},
        counts=_counts(columns, units, predictions, missing, scored),
        text_models={"SS": embedder.describe(),
                     "recall_gate": None if options.recall_text_gate == "off"
                     else (recall_embedder or embedder).describe()},
        meta={"predictions": predictions.path, "model": predictions.model, "split": ground_truth.split,
              "ground_truth": ground_truth.origin, "versions": _versions()},
        warnings=warnings + scored.warnings,
    )
    for name in breakdowns:
        result.breakdowns[name] = _breakdown(scored, units, columns, unit_task, tasks, name)
    if bootstrap:
        result.ci, result.bootstrap = _bootstrap(scored, units, unit_task, tasks, bootstrap, seed)
    if keep_details:
        result.details = EvalDetails(ground_truth.rows, units, scored, table, ss_embeddings,
                                     ss_embeddings if recall_embeddings is None else recall_embeddings, unit_task,
                                     tasks)
    return result


@dataclass
class EvalDetails:
    """What one evaluation computed per unit and per pair, in ground-truth order."""

    rows: list[dict]
    units: object  # units.Units
    scored: _Scored
    labels: LabelTable
    ss_embeddings: np.ndarray
    gate_embeddings: np.ndarray  # the Recall text gate's (SS's when the gate is off)
    unit_task: np.ndarray  # index into schema.TASKS per unit
    tasks: list[str]  # the tasks present, in schema order

    def task_units(self, task: str) -> np.ndarray:
        return np.flatnonzero(self.unit_task == TASKS.index(task))

    def resampler(self, task: str) -> TaskResampler:
        return TaskResampler.from_scored(self.scored, self.task_units(task))


class _Scored:
    """Per-unit and per-pair results of one run, and the aggregation of any subset of units."""

    def __init__(self):
        self.warnings: list[str] = []

    @classmethod
    def collect(cls, units, chunks, options: EvalOptions, table: LabelTable, ss_embeddings) -> _Scored:
        self = cls()
        self.options = options
        self.unit_ids = units.unit_ids
        self.sample = units.sample
        self.detections = ap50.Detections.concatenate([c.detections for c in chunks], [c.start for c in chunks])
        self.miou = np.concatenate([chunk.miou for chunk in chunks])
        self.matched = np.concatenate([chunk.recall_matched for chunk in chunks])
        self.gt_count = units.gt_counts()
        self.predicted_count = units.predicted_counts()
        chosen, miou_pairs = Pairs(), Pairs()
        for chunk in chunks:
            miou_pairs.extend(chunk.miou_pairs)
            chosen.extend({"recall": chunk.recall_pairs, "text": chunk.text_pairs}.get(options.label_pairs,
                                                                                      chunk.miou_pairs))
        self.pair_unit, predicted, truth = chosen.arrays()
        self.ss, self.siou = pair_scores(table, ss_embeddings, predicted, truth)
        self.miou_pair_unit, predicted, truth = miou_pairs.arrays()
        self.miou_pair_ss, self.miou_pair_siou = pair_scores(table, ss_embeddings, predicted, truth)
        empty = table.empty()
        blank = int((empty[predicted] | empty[truth]).sum()) if len(predicted) else 0
        self.blank_pairs = blank
        if blank:
            self.warnings.append(f"{blank} mIoU-paired masks have an empty label; their SS and S-IoU count as 0")
        return self

    def metrics(self, selected: np.ndarray) -> dict[str, float]:
        """The five metrics (fractions) over the units where ``selected`` is true.

        Where a metric has nothing to average (no GT masks for AP50, no label pairs for SS and S-IoU,
        no units at all) it is 0, never NaN: an empty task must not drop out of the mean.
        """
        index = np.flatnonzero(selected)
        if not len(index):
            return {m: 0.0 for m in METRICS}
        # Units are numbered in ground-truth order, so a subset's detections are in COCO's image order.
        ap = ap50.accumulate_ap50(self.detections.of_units(selected), int(self.gt_count[index].sum()))
        values = {
            "AP50": 0.0 if math.isnan(ap) else ap,
            "mIoU": float(np.mean(self.miou[index])),
            "Recall": recall_ratio(self.matched[index].sum(), self.gt_count[index].sum()),
        }
        in_subset = selected[self.pair_unit]
        if self.options.label_pairs == "all-gt":
            values.update(self._over_gt(self.ss[in_subset], self.siou[in_subset], self.pair_unit[in_subset],
                                        index))
        else:
            values.update(self._over_pairs(self.ss[in_subset], self.siou[in_subset], self.pair_unit[in_subset]))
        return values

    def all_gt_label_metrics(self, selected: np.ndarray) -> dict[str, float]:
        index = np.flatnonzero(selected)
        in_subset = selected[self.miou_pair_unit]
        return self._over_gt(self.miou_pair_ss[in_subset], self.miou_pair_siou[in_subset],
                             self.miou_pair_unit[in_subset], index)

    def _over_pairs(self, ss, siou, pair_unit) -> dict[str, float]:
        if not len(ss):
            return {"SS": 0.0, "S-IoU": 0.0}
        if self.options.label_average == "pairs":
            return {"SS": float(np.mean(ss)), "S-IoU": float(np.mean(siou))}
        samples = self.sample[pair_unit]
        counts = np.bincount(samples)
        has = counts > 0
        return {name: float(np.mean(np.bincount(samples, weights=v)[has] / counts[has]))
                for name, v in (("SS", ss), ("S-IoU", siou))}

    def _over_gt(self, ss, siou, pair_unit, unit_index) -> dict[str, float]:
        """Every GT label of the units counts; unpaired ones score 0 (A8 d)."""
        gt_total = self.gt_count[unit_index].sum()
        if not gt_total:
            return {"SS": 0.0, "S-IoU": 0.0}
        if self.options.label_average == "pairs":
            return {"SS": float(ss.sum() / gt_total), "S-IoU": float(siou.sum() / gt_total)}
        size = int(self.sample.max()) + 1
        gt_per_sample = np.bincount(self.sample[unit_index], weights=self.gt_count[unit_index], minlength=size)
        has = gt_per_sample > 0
        samples = self.sample[pair_unit]
        return {name: float(np.mean(np.bincount(samples, weights=v, minlength=size)[has] / gt_per_sample[has]))
                for name, v in (("SS", ss), ("S-IoU", siou))}


def _counts(columns, units, predictions: Predictions, missing: list[str], scored: _Scored) -> dict:
    return {
        "samples": len(columns),
        "units": len(units),
        "gt_masks": int(scored.gt_count.sum()),
        "predicted_samples": len(predictions.by_sample),
        "predicted_masks": int(scored.predicted_count.sum()),
        "units_without_predictions": int((scored.predicted_count == 0).sum()),
        "samples_without_predictions": len(missing),
        "phrase_mask_mismatches": len(predictions.mismatched),
        "units_over_100_masks": int((scored.predicted_count > ap50.MAX_DETECTIONS).sum()),
        "label_pairs": int(len(scored.pair_unit)),
        "empty_label_pairs": scored.blank_pairs,
    }


def _breakdown(scored: _Scored, units, columns, unit_task, tasks, name: str) -> pd.DataFrame:
    if name == "source":
        sources = np.array(columns.sources, dtype=object)
        group_of_unit = sources[units.sample]
    elif name == "category":
        group_of_unit = np.array(units.category, dtype=object)
    else:
        raise ValueError(f"unknown breakdown {name!r}; expected one of {BREAKDOWNS}")
    records = []
    for group in sorted(set(group_of_unit.tolist())):
        in_group = group_of_unit == group
        per_task = {}
        for task in tasks:
            selected = in_group & (unit_task == TASKS.index(task))
            if selected.any():
                per_task[task] = scored.metrics(selected)
                records.append({name: group, "task": task, "units": int(selected.sum()),
                                **{m: per_task[task][m] * 100 for m in METRICS}})
        records.append({name: group, "task": MEAN, "units": int(in_group.sum()),
                        **{m: macro_mean(v[m] for v in per_task.values()) * 100 for m in METRICS}})
    return pd.DataFrame.from_records(records, columns=[name, "task", "units", *METRICS])


def _bootstrap(scored: _Scored, units, unit_task, tasks, replicates: int, seed: int):
    """95% percentile intervals from resampling samples with replacement, independently within each task."""
    rng = np.random.default_rng(seed)
    per_task = {}
    for task in tasks:
        per_task[task] = _bootstrap_task(scored, np.flatnonzero(unit_task == TASKS.index(task)), replicates, rng)
    per_task[MEAN] = {m: np.array([macro_mean(values) for values in zip(*(per_task[t][m] for t in tasks))])
                      for m in METRICS}
    ci = pd.DataFrame(index=[*tasks, MEAN], columns=list(METRICS), dtype=object)
    for row, values in per_task.items():
        for metric in METRICS:
            finite = values[metric][~np.isnan(values[metric])] * 100
            ci.at[row, metric] = (tuple(float(x) for x in np.percentile(finite, [2.5, 97.5]))
                                  if len(finite) else (float("nan"), float("nan")))
    return ci, {"replicates": replicates, "seed": seed, "level": 0.95, "resampled": "samples within each task"}


def _bootstrap_task(scored: _Scored, unit_index: np.ndarray, replicates: int, rng) -> dict[str, np.ndarray]:
    """Replicates of the five metrics (fractions) over one task's units; each draws its samples with
    replacement and lists them in the order drawn.

    Draw order matters for AP50: with equal scores COCO ranks detections in unit order, and keeping
    copies of a sample next to each other would lengthen runs of hits and misses, which the precision
    envelope rewards (a biased replicate). Drawn order is as arbitrary as the ground truth's.
    """
    return TaskResampler.from_scored(scored, unit_index).replicates(rng, replicates)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("mixedparts", "pycocotools", "sentence-transformers", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _json_value(value):
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
