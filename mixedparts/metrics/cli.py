"""``mixedparts-eval``: score a predictions file on a MixedParts split and print the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixedparts.argtypes import non_negative_int
from mixedparts.atomic import write_json
from mixedparts.errors import MixedPartsError, parse_and_run
from mixedparts.gc_pause import cyclic_gc_paused

DESCRIPTION = """\
Score predictions on a MixedParts split: AP50, mIoU, Recall, SS and S-IoU per task (common_object,
common_parts, unique_parts) and their unweighted mean, the headline of Calico's tables. Scores are
percent. Every metric variant below has a documented default (docs/metrics.md, which also defines
each metric); the variant used is printed with the result and stored in the --json output. A task
the predictions leave empty scores 0 on every metric; no table ever shows NaN.

Bad input (malformed JSON, wrong format tag, missing fields, duplicate or unknown sample ids,
invalid RLE, a mask whose size differs from its image, image_index out of range, NaN or infinite
scores, labels that are not strings or not valid text) stops with one error line naming the file,
the sample and the field, exit code 2, and no output written. Unknown keys (a typo such as
"lable") are ignored with one warning naming them."""

EPILOG = """\
examples:
  mixedparts-eval predictions.json --data ~/.cache/mixedparts/mixedparts
  mixedparts-eval predictions.jsonl --gt test-gt.jsonl --json scores.json --bootstrap 1000
  mixedparts-eval glamm_outputs/ --format gcg --data DIR --recall-text-model ./bert-base-uncased"""


def build_parser() -> argparse.ArgumentParser:
    from mixedparts.predictions import FILE_FORMATS

    parser = argparse.ArgumentParser(prog="mixedparts-eval", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", help="the predictions file (JSON, or JSON Lines: a header line then one "
                        "prediction per line), or with --format gcg a GLaMM GCG prediction folder")
    parser.add_argument("--format", choices=FILE_FORMATS, default="auto",
                        help="how to read PREDICTIONS. auto (default): a folder is a GCG folder, a .jsonl name "
                        "or several JSON values mean JSON Lines, else one JSON document. gcg: one "
                        "<image_id>.json per image (image_id <sample_id>_IMAGE<k>, k from 1) or per sample "
                        "(image_id <sample_id>), holding caption, phrases and pred_masks as GLaMM writes them")

    truth = parser.add_argument_group("ground truth (one of --data and --gt)")
    truth.add_argument("--data", metavar="DIR", help="a built dataset: a folder with data/{split}-*.parquet shards, "
                       "or a Hugging Face dataset name (default: the default build location, if it exists)")
    truth.add_argument("--split", default="test", help="the split to score (default: test)")
    truth.add_argument("--gt", metavar="FILE", help="an exported ground-truth file (JSON Lines, header "
                       "{\"format\": \"mixedparts-gt/1\", \"split\": ...}), used instead of --data")

    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="OUT", help="also write the full result (scores unrounded, counts, "
                        "variant, text models, breakdowns, warnings) as JSON to OUT")
    output.add_argument("--breakdown", action="append", choices=("source", "category", "all"), default=[],
                        help="also print the table per source or per object category (repeatable; the JSON "
                        "output always has both)")
    output.add_argument("--bootstrap", type=non_negative_int, default=None, metavar="N",
                        help="add 95%% confidence intervals from N resamplings of the samples within each task "
                        "(default: 0, none; with --report 1000, or 200 past 20,000 samples)")
    output.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    output.add_argument("--report", metavar="OUT", help="also write an error-analysis report into the folder OUT: "
                        "index.html (offline: open it in any browser), report.json and the gallery's PNGs "
                        "(docs/report.md explains every section)")
    output.add_argument("--gallery", type=non_negative_int, default=8, metavar="K",
                        help="with --report: draw the K worst samples of each task (default: 8; 0: none)")
    output.add_argument("--strict", action="store_true", help="make samples missing from the predictions an "
                        "error (by default they count as empty predictions, with a warning)")
    output.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                        help="processes validating masks and scoring units (default: 0 = every available core)")

    from mixedparts.metrics.options import add_arguments

    add_arguments(parser.add_argument_group("metric variants (docs/metrics.md, A3-A11)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    return parse_and_run(build_parser(), argv, run)


def run(args: argparse.Namespace) -> int:
    from mixedparts.metrics.evaluate import BREAKDOWNS, evaluate
    from mixedparts.metrics.inputs import read_inputs
    from mixedparts.metrics.options import EvalOptions
    from mixedparts.metrics.report import format_result

    if args.json and Path(args.json).resolve() == Path(args.predictions).resolve():
        raise MixedPartsError(f"{args.json}: --json would overwrite the predictions file")
    if args.report and Path(args.report).exists() and not Path(args.report).is_dir():
        raise MixedPartsError(f"{args.report}: --report needs a folder, and this is a file")
    data = args.data
    if data is None and args.gt is None:
        data = _default_dataset()
    # One pause for reading and scoring together, not one per step: between paused steps the collector
    # would walk every row and prediction read so far, all still in its youngest generation (1.2-1.5 s of
    # a 100K-unit evaluation, measured). Printing and the report (drawings) run with it on again.
    with cyclic_gc_paused():
        truth, predictions = read_inputs(data, args.split, args.gt, args.predictions, args.format,
                                         workers=args.workers or None)
        options = EvalOptions.from_args(args)
        bootstrap = args.bootstrap
        if bootstrap is None:
            from mixedparts.analysis.report import default_bootstrap

            bootstrap = default_bootstrap(len(truth)) if args.report else 0
        result = evaluate(truth, predictions, options, bootstrap=bootstrap, seed=args.seed, strict=args.strict,
                          workers=args.workers or None, keep_details=bool(args.report))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    shown = BREAKDOWNS if "all" in args.breakdown else tuple(dict.fromkeys(args.breakdown))
    print(format_result(result, shown))
    if args.json:
        write_json(args.json, result.to_dict(), indent=1)
    if args.report:
        from mixedparts.analysis.report import write_report

        page = write_report(args.report, result, predictions, data if args.gt is None else None, args.gallery)
        print(f"report: {page} (and {page.parent / 'report.json'})")
    return 0


def _default_dataset() -> str | None:
    try:
        from mixedparts.paths import default_dataset_dir
    except ImportError:
        return None
    folder = default_dataset_dir()
    return str(folder) if folder.is_dir() else None
