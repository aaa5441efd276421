"""``mixedparts stats``: counts per split x source x task, masks per sample, frequent labels, a histogram PNG."""

from __future__ import annotations

import argparse

HELP = "print counts per split x source x task, masks per sample and the most frequent labels; write a histogram PNG"


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.loader import add_dataset_arguments

    add_dataset_arguments(parser, split=None, image_roots=False)
    parser.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                        help="only this split (repeatable; default: all)")
    parser.add_argument("--top", type=int, default=20, help="how many frequent labels to list")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")
    parser.add_argument("--histogram", default="mixedparts-stats.png", metavar="PNG",
                        help="the histogram picture to write ('' for none)")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from mixedparts.errors import MixedPartsError
    from mixedparts.stats import compute_stats, draw_histograms, format_stats

    if args.top < 1:
        raise MixedPartsError("--top must be positive")
    if args.histogram and not Path(args.histogram).parent.is_dir():  # before the work, and no silent mkdir
        raise MixedPartsError(f"--histogram {args.histogram}: folder {Path(args.histogram).parent} not found")
    stats = compute_stats(args.data, args.splits, top=args.top)
    if not stats["samples"]:
        raise MixedPartsError(f"{stats['dataset']}: no samples")
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        print(format_stats(stats))
    if args.histogram:
        path = Path(args.histogram)
        draw_histograms(stats).save(path)
        print(f"histogram: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
