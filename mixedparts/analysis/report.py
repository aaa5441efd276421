"""The error-analysis report of one predictions file: ``report.json`` and a self-contained ``index.html``.

Every score in it is the evaluation's own (``result.to_dict()`` is embedded whole under ``eval``),
so the report and ``mixedparts-eval --json`` agree by construction; the analysis adds what the
scores hide (error types, confusions, histograms, per-label numbers, the worst samples).

:func:`public_summary` is the part that can be shown for hidden ground truth: aggregates only,
no GT label, category, sample id, mask or image.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixedparts.analysis import failures as fail

REPORT_FORMAT = "mixedparts-report/1"
GALLERY_PER_TASK = 8
REPORT_BOOTSTRAP = 1000
LARGE_SPLIT_SAMPLES = 20000
LARGE_SPLIT_BOOTSTRAP = 200


def default_bootstrap(samples: int) -> int:
    """Resamplings behind the report's intervals when none are asked for. AP50's replicates cost time in
    proportion to samples x resamplings; past LARGE_SPLIT_SAMPLES, 1000 of them would cost the report
    about twice the evaluation itself (benchmarks/report.py), so large splits get 200."""
    return REPORT_BOOTSTRAP if samples <= LARGE_SPLIT_SAMPLES else LARGE_SPLIT_BOOTSTRAP


def build_report(result, gallery_per_task: int = GALLERY_PER_TASK,
                 failures: fail.Failures | None = None) -> tuple[dict, fail.Failures]:
    """The report document of an evaluation run with ``keep_details=True`` (``failures``: its analysis, if done)."""
    details = result.details
    if details is None:
        raise ValueError("the evaluation kept no details: call evaluate(..., keep_details=True)")
    failures = failures if failures is not None else fail.analyse(details)
    document = {
        **_document(result, failures, details),
        "confusions": fail.confusions(details, failures),
        "by_label": fail.label_breakdown(details, failures),
        "worst": fail.worst_samples(details, failures, gallery_per_task),
        "gallery": {},
    }
    return document, failures


def _document(result, failures: fail.Failures, details) -> dict:
    """The parts every report has: the evaluation, what the error types mean, their counts, the histograms."""
    return {"format": REPORT_FORMAT, "eval": result.to_dict(),
            "error_types": {"gt": fail.GT_OUTCOMES, "predicted": fail.PREDICTED_OUTCOMES},
            "thresholds": {"iou": details.scored.options.recall_iou_threshold,
                           "text": details.scored.options.recall_text_threshold},
            "errors": fail.error_counts(details, failures), "histograms": fail.histograms(details, failures)}


PUBLIC_EVAL_KEYS = ("scores", "ci95", "bootstrap")


def public_summary(document: dict) -> dict:
    """What a page about hidden ground truth may show: scores, intervals, per-source numbers, error counts
    and histograms. Categories, labels, confusions, sample ids, file names and pictures are left out."""
    evaluation = {k: document["eval"].get(k) for k in PUBLIC_EVAL_KEYS}
    evaluation["breakdowns"] = {k: v for k, v in (document["eval"].get("breakdowns") or {}).items() if k == "source"}
    return {"format": REPORT_FORMAT, "public": True, "eval": evaluation, "error_types": document["error_types"],
            "thresholds": document["thresholds"], "errors": document["errors"], "histograms": document["histograms"]}


def write_report(out: str | os.PathLike, result, predictions, data: str | None = None,
                 gallery_per_task: int = GALLERY_PER_TASK, image_roots: dict | None = None,
                 progress: bool = True) -> Path:
    """Write ``OUT/report.json``, ``OUT/index.html`` and ``OUT/gallery/*.png``; returns the HTML page.

    ``data``: the dataset the ground truth came from (for the gallery's questions, answers and
    images); without it, or without images, the gallery draws on blank canvases of the right size.
    """
    from mixedparts.analysis.gallery import draw_gallery
    from mixedparts.analysis.html import standalone_page
    from mixedparts.atomic import write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    document, _ = build_report(result, gallery_per_task)
    if gallery_per_task > 0:
        document["gallery"] = draw_gallery(out, document["worst"], result.details.rows, predictions, data,
                                           image_roots, progress=progress)
    write_json(out / "report.json", document, indent=1)
    page = out / "index.html"
    page.write_text(standalone_page(document), encoding="utf-8")
    return page


def public_report(result) -> dict:
    """The report of hidden ground truth (the leaderboard's): scores with their intervals, per-source numbers,
    error counts and histograms; computed from ``result.details`` like the full report."""
    details = result.details
    if details is None:
        raise ValueError("the evaluation kept no details: call evaluate(..., keep_details=True)")
    failures = fail.analyse(details)
    return public_summary(_document(result, failures, details))


def resampling_arrays(result) -> dict:
    """Per task, the per-sample sums a paired test needs (TaskResampler.to_arrays); no label, mask or id."""
    return {task: result.details.resampler(task).to_arrays() for task in result.details.tasks}
