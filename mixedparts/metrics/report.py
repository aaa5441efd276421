"""The printed result: the task table (x100, one decimal), counts, the variant and the text models."""

from __future__ import annotations

import math

import pandas as pd

from mixedparts.metrics.evaluate import MEAN, METRICS, EvalResult


def cell(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def format_table(result: EvalResult) -> str:
    """Rows: the tasks and their mean; columns: samples, units and the five metrics."""
    frame = result.scores
    header = ["task", "samples", "units", *METRICS]
    body = []
    for task, row in frame.iterrows():
        cells = [str(task), str(int(row["samples"])), str(int(row["units"]))]
        for metric in METRICS:
            text = cell(row[metric])
            if result.ci is not None:
                low, high = result.ci.loc[task, metric]
                text += f" [{cell(low)}, {cell(high)}]"
            cells.append(text)
        body.append(cells)
    return _aligned(header, body)


def format_breakdown(frame: pd.DataFrame, name: str) -> str:
    """One row per group (its task mean); the per-task rows stay in the JSON output."""
    means = frame[frame["task"] == MEAN]
    body = [[str(row[name]), str(int(row["units"])), *(cell(row[m]) for m in METRICS)]
            for _, row in means.iterrows()]
    return _aligned([name, "units", *METRICS], body)


def _aligned(header: list[str], body: list[list[str]]) -> str:
    """First column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [header, *body])


def format_result(result: EvalResult, breakdowns: tuple[str, ...] | list[str] = ()) -> str:
    meta = result.meta
    model = f" (model {meta['model']})" if meta.get("model") else ""
    lines = [f"MixedParts evaluation of {meta.get('predictions')}{model} on {meta.get('ground_truth')}, "
             f"split {meta.get('split')}",
             "", format_table(result), ""]
    if result.ci is not None:
        lines += [f"[low, high]: 95% bootstrap interval, {result.bootstrap['replicates']} resamplings of samples "
                  f"within each task (seed {result.bootstrap['seed']})"]
    c = result.counts
    lines += [f"counts: {c['samples']} samples, {c['units']} units, {c['gt_masks']} GT masks; predictions for "
              f"{c['predicted_samples']} samples with {c['predicted_masks']} masks; "
              f"{c['units_without_predictions']} units without predictions; "
              f"{c['phrase_mask_mismatches']} phrase/mask mismatches"]
    if c["units_over_100_masks"]:
        lines.append(f"note: {c['units_over_100_masks']} units have more than 100 masks; AP50 ignores the extras "
                     f"(COCO maxDets)")
    if result.secondary is not None:
        mean = result.secondary.loc[MEAN]
        lines.append(f"secondary (A13, every GT label, unpaired = 0): SS {cell(mean['SS'])}, "
                     f"S-IoU {cell(mean['S-IoU'])}; pooled over all tasks (A2): "
                     + ", ".join(f"{m} {cell(result.pooled[m])}" for m in METRICS))
    lines.append("variant: " + "; ".join(f"{k.replace('_', ' ', 1).replace('_', '-')} {v}"
                                         for k, v in result.variant.items())
                 + (" (the defaults)" if result.options.is_default() else ""))
    models = result.text_models
    ss = models["SS"]
    line = f"text models: SS {ss['model']} (sha256 {str(ss.get('weights_sha256'))[:12]})"
    gate = models.get("recall_gate")
    line += "; recall gate off" if gate is None else (
        f"; recall gate {gate['model']} at {result.options.recall_text_threshold:g}"
        + ("" if result.options.recall_text_model else " (GLaMM uses bert-base-uncased; not comparable)"))
    lines.append(line)
    for name in breakdowns:
        if name in result.breakdowns:
            lines += ["", f"by {name} (mean over its tasks):", format_breakdown(result.breakdowns[name], name)]
    return "\n".join(lines)
