"""``mixedparts-compare``: is model A really better than model B? A paired bootstrap of every metric."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixedparts.argtypes import fraction, non_negative_int
from mixedparts.errors import MixedPartsError, parse_and_run

DESCRIPTION = """\
Compare two predictions files on the same MixedParts split. Both are scored with mixedparts-eval's code
and default metric variant; then each bootstrap replicate draws the samples of every task with
replacement once and scores both files on that same draw (a paired bootstrap), so the noise the two
share cancels. For every per-task and headline metric: the difference A - B in percent points, its
95% interval, a two-sided p-value and a one-line verdict; and the breakdown groups (sources, object
categories) where the two files differ most. docs/report.md explains the test."""

EPILOG = """\
examples:
  mixedparts-compare ours.json baseline.json --data ~/.cache/mixedparts/mixedparts --split test
  mixedparts-compare a.jsonl b.jsonl --gt test-gt.jsonl --bootstrap 2000 --seed 1 --json compare.json"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedparts-compare", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", metavar="A", help="the first predictions file (JSON or JSON Lines)")
    parser.add_argument("b", metavar="B", help="the second predictions file, scored on the same split")
    parser.add_argument("--data", metavar="DIR", help="a built dataset folder or Hugging Face dataset name")
    parser.add_argument("--split", default="test", help="the split to score (default: test)")
    parser.add_argument("--gt", metavar="FILE", help="an exported ground-truth file, used instead of --data")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000, metavar="N",
                        help="paired resamplings (default: 1000; the smallest p-value is 2/(N+1))")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    parser.add_argument("--alpha", type=fraction, default=0.05, help="significance level (default: 0.05)")
    parser.add_argument("--top", type=non_negative_int, default=5, metavar="K",
                        help="breakdown groups to list per breakdown (default: 5)")
    parser.add_argument("--json", metavar="OUT", help="also write every difference, interval and p-value as JSON")
    parser.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                        help="processes scoring units (default: 0 = every available core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return parse_and_run(build_parser(), argv, run)


def run(args: argparse.Namespace) -> int:
    from mixedparts.analysis.compare import compare
    from mixedparts.atomic import write_json
    from mixedparts.metrics.ground_truth import load_ground_truth
    from mixedparts.predictions import read_predictions

    if args.bootstrap < 1:
        raise MixedPartsError("--bootstrap must be at least 1 for a paired test")
    for path in (args.a, args.b):
        if args.json and Path(args.json).resolve() == Path(path).resolve():
            raise MixedPartsError(f"{args.json}: --json would overwrite a predictions file")
    data = args.data
    if data is None and args.gt is None:
        from mixedparts.metrics.cli import _default_dataset

        data = _default_dataset()
    truth = load_ground_truth(data, args.split, args.gt)
    sizes = truth.image_sizes()
    a, b = (read_predictions(path, images=sizes) for path in (args.a, args.b))
    comparison = compare(truth, a, b, replicates=args.bootstrap, seed=args.seed, alpha=args.alpha, top=args.top,
                         workers=args.workers or None)
    for side, warnings in (("A", comparison["a"]["warnings"]), ("B", comparison["b"]["warnings"])):
        for warning in warnings:
            print(f"warning: {side}: {warning}", file=sys.stderr)
    print(format_comparison(comparison))
    if args.json:
        write_json(args.json, comparison, indent=1)
    return 0


def format_comparison(comparison: dict) -> str:
    from mixedparts.metrics.report import _aligned, cell

    a, b = comparison["a"], comparison["b"]
    boot = comparison["bootstrap"]
    lines = [f"A: {a['predictions']}{' (model ' + a['model'] + ')' if a.get('model') else ''}",
             f"B: {b['predictions']}{' (model ' + b['model'] + ')' if b.get('model') else ''}",
             f"on {comparison['ground_truth']}, split {comparison['split']}; paired bootstrap: {boot['replicates']} "
             f"resamplings of the samples within each task (seed {boot['seed']}), the same draws for A and B; "
             f"significant: p < {boot['alpha']:g}", ""]
    body = []
    for task, metrics in comparison["differences"].items():
        for metric, entry in metrics.items():
            low, high = entry["ci95"]
            body.append([task, metric, cell(a["scores"][task][metric]), cell(b["scores"][task][metric]),
                         "n/a" if entry["difference"] is None else f"{entry['difference']:+.1f}",
                         f"[{'n/a' if low is None else f'{low:+.1f}'}, {'n/a' if high is None else f'{high:+.1f}'}]",
                         "n/a" if entry["p_value"] is None else f"{entry['p_value']:.3g}",
                         "yes" if entry["significant"] else "no"])
    lines.append(_aligned(["task", "metric", "A", "B", "A-B", "95% CI", "p", "significant"], body))
    lines += ["", "verdicts:"] + [f"  {line}" for line in comparison["verdicts"]]
    for name, groups in comparison["groups"].items():
        if groups:
            lines += ["", f"{name} groups where A and B differ most (mean over their tasks, A-B):"]
            lines += [f"  {g['group']}: " + ", ".join(f"{m} {'n/a' if d is None else f'{d:+.1f}'}"
                                                     for m, d in g["difference"].items()) for g in groups]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
