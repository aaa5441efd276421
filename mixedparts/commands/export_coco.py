"""``mixedparts export-coco``: a split as COCO instances JSON (pycocotools, detectron2)."""

from __future__ import annotations

import argparse

HELP = "export a split as COCO instances JSON: one COCO image per (sample, image), one annotation per segment"


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.export.coco import CATEGORY_MODES
    from mixedparts.loader import add_dataset_arguments
    from mixedparts.schema import TASKS

    add_dataset_arguments(parser)
    parser.add_argument("--task", choices=TASKS, help="only samples of this task (default: all)")
    parser.add_argument("--categories", choices=CATEGORY_MODES, default="label",
                        help="label: one category per distinct label; agnostic: a single category 1, as GLaMM")
    parser.add_argument("--out", required=True, help="the JSON file to write")


def run(args: argparse.Namespace) -> int:
    from mixedparts.errors import MixedPartsError
    from mixedparts.atomic import write_json
    from mixedparts.export.coco import coco_instances
    from mixedparts.loader import read_rows, resolver_from_args
    from mixedparts.schema import SAMPLE_FIELDS

    resolver = resolver_from_args(args)
    rows = read_rows(args.data, args.split, SAMPLE_FIELDS, task=args.task)
    if not rows:
        raise MixedPartsError(f"{args.data}: no {args.task + ' ' if args.task else ''}samples in split {args.split!r}")
    coco = coco_instances(rows, resolver, categories=args.categories,
                          description=f"MixedParts {args.split}{' ' + args.task if args.task else ''}")
    path = write_json(args.out, coco)
    relative = sum(1 for image in coco["images"] if not image["file_name"].startswith("/"))
    print(f"wrote {len(coco['images']):,} images (units), {len(coco['annotations']):,} annotations and "
          f"{len(coco['categories']):,} categories of {len(rows):,} samples to {path}")
    if relative:
        print(f"note: {relative:,} images have no known image root: their file_name is relative to their source's "
              f"image root (pass --image-root SOURCE=PATH)")
    return 0
