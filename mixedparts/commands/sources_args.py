"""Command-line options naming the release roots, shared by every command that reads sources.

The options are the registered releases' (:mod:`mixedparts.sources.registry`): each release's root
flag and further folders, the options every reader takes, then each release's own reader options.
"""

from __future__ import annotations

import argparse
import sys

from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION
from mixedparts.sources.registry import registered_sources


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source releases (give any subset)")
    for spec in registered_sources():
        group.add_argument(spec.flag, metavar="ROOT", help=spec.help)
        for option in spec.folder_options:
            group.add_argument(option.flag, metavar="ROOT", help=option.help)
    group.add_argument("--min-area-fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION,
                       help="drop object and part masks smaller than this fraction of the image (authors' loader)")
    group.add_argument("--no-check-images", dest="check_images", action="store_false",
                       help="do not check that image files exist and have the annotated size")
    for spec in registered_sources():
        for option in spec.choice_options:
            group.add_argument(option.flag, choices=option.choices, default=option.default, help=option.help)


def warn_missing_folders(args: argparse.Namespace) -> None:
    """A release given without a folder it needs for its images (PACO-LVIS without ``--coco-images``).

    Not an error (the annotations alone build fine), but every such image would be unresolvable later.
    """
    for spec in registered_sources():
        for option in spec.folder_options:
            if option.missing and getattr(args, spec.keyword, None) and not getattr(args, option.dest, None):
                print(f"warning: {spec.flag} without {option.flag}: {option.missing}", file=sys.stderr)


def source_roots(args: argparse.Namespace) -> dict:
    """``open_readers`` keywords: each given release's root, its folders and its ``<keyword>_options``."""
    roots: dict = {}
    for spec in registered_sources():
        roots[spec.keyword] = getattr(args, spec.keyword, None)
        for option in spec.folder_options:
            roots[option.dest] = getattr(args, option.dest, None)
        if spec.choice_options:
            roots[f"{spec.keyword}_options"] = {o.keyword: getattr(args, o.dest) for o in spec.choice_options}
    return roots


def reader_options(args: argparse.Namespace) -> dict:
    return {"min_area_fraction": args.min_area_fraction, "check_images": args.check_images}
