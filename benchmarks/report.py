"""Report benchmark: what ``--report`` adds to an evaluation of a >= 100K-unit split.

    python benchmarks/report.py [--samples 50000] [--workers 2] [--bootstrap 1000] [--gallery 8]

Data: benchmarks/eval.py's synthetic split and predictions. Times, in one run: the evaluation as
``mixedparts-eval`` runs it without intervals (read ground truth and predictions, score), then each
extra the report needs: the bootstrap intervals, the failure analysis (every segment classified),
the summaries, the gallery (K worst samples per task, drawn on blank canvases: the synthetic split
has no images) and the HTML; and the paired test of mixedparts-compare given both evaluations.
Goal: the report's extra cost <= the evaluation's own time. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval import synthesize, write_dataset  # noqa: E402  (benchmarks/eval.py)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50000, help="samples (2 units each; default 50000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=None,
                        help="replicates (default: what --report uses for the split's size)")
    parser.add_argument("--gallery", type=int, default=8)
    parser.add_argument("--out", help="keep the data and the report here (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    scratch = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mixedparts-reportbench-"))
    try:
        from mixedparts.predictions import write_predictions

        rows, predictions = synthesize(args.samples)
        write_dataset(rows, scratch / "dataset")
        write_predictions(scratch / "predictions.json", predictions, model="bench", split="test")
        units = sum(len(r["images"]) for r in rows)
        del rows, predictions

        from mixedparts.analysis import failures as fail
        from mixedparts.analysis.gallery import draw_gallery
        from mixedparts.analysis.html import standalone_page
        from mixedparts.analysis.paired import paired_bootstrap
        from mixedparts.analysis.report import build_report
        from mixedparts.metrics import evaluate as evaluate_module
        from mixedparts.metrics.evaluate import evaluate
        from mixedparts.metrics.ground_truth import load_ground_truth
        from mixedparts.metrics.text_models import MiniLM
        from mixedparts.predictions import read_predictions

        MiniLM().embed(["warm up"])
        phases = {}
        t0 = time.perf_counter()
        truth = load_ground_truth(scratch / "dataset", "test")
        predictions = read_predictions(scratch / "predictions.json", images=truth.image_sizes())
        phases["read"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = evaluate(truth, predictions, workers=args.workers, keep_details=True)
        phases["score"] = time.perf_counter() - t0
        eval_time = phases["read"] + phases["score"]

        details = result.details
        if args.bootstrap is None:
            from mixedparts.analysis.report import default_bootstrap

            args.bootstrap = default_bootstrap(len(truth))
        t0 = time.perf_counter()
        result.ci, result.bootstrap = evaluate_module._bootstrap(details.scored, details.units, details.unit_task,
                                                                 details.tasks, args.bootstrap, 0)
        phases["bootstrap"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        failures = fail.analyse(details)
        phases["analyse"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        document, _ = build_report(result, args.gallery, failures)
        phases["summaries"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = scratch / "report"
        document["gallery"] = draw_gallery(out, document["worst"], details.rows, predictions, None, progress=False)
        phases["gallery"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        (out / "index.html").write_text(standalone_page(document), encoding="utf-8")
        (out / "report.json").write_text(json.dumps(document), encoding="utf-8")
        phases["html_json"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        resamplers = {task: details.resampler(task) for task in details.tasks}
        paired_bootstrap(resamplers, resamplers, args.bootstrap, 0)
        phases["paired_test"] = time.perf_counter() - t0
        del failures

        extra = sum(phases[k] for k in ("bootstrap", "analyse", "summaries", "gallery", "html_json"))
        for name, seconds in phases.items():
            print(f"{name:>12}: {seconds:7.1f} s")
        print(f"evaluation {eval_time:.1f} s for {units} units; the report adds {extra:.1f} s "
              f"({extra / eval_time:.2f} x the evaluation; goal <= 1.00); html {(out / 'index.html').stat().st_size / 1e3:.0f} kB")
        print(json.dumps({"benchmark": "report", "units": units, "workers": args.workers,
                          "bootstrap": args.bootstrap, "gallery_per_task": args.gallery,
                          "eval_s": round(eval_time, 2), "report_extra_s": round(extra, 2),
                          "ratio": round(extra / eval_time, 3), **{f"{k}_s": round(v, 2) for k, v in phases.items()}}))
        return 0
    finally:
        if not args.out:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
