"""Command-line options naming the release roots, shared by every command that reads sources."""

from __future__ import annotations

import argparse
import sys

from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source releases (give any subset)")
    group.add_argument("--paco", metavar="ROOT", help="PACO-LVIS annotations folder (holds paco_lvis_v1_*.json, "
                       "directly or under annotations/)")
    group.add_argument("--coco-images", metavar="ROOT", help="COCO 2017 image root (holds train2017/, val2017/) "
                       "that PACO-LVIS file names refer to")
    group.add_argument("--partimagenet", metavar="ROOT", help="PartImageNet Seg release root (holds images/, "
                       "annotations/)")
    group.add_argument("--ade20k-part234", metavar="ROOT", help="ADE20K-Part-234 root as unpacked from "
                       "OV-PARTS (holds images/, annotations_detectron2_part/, ade20k_instance_*.json)")
    group.add_argument("--min-area-fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION,
                       help="drop object and part masks smaller than this fraction of the image (authors' loader)")
    group.add_argument("--no-check-images", dest="check_images", action="store_false",
                       help="do not check that image files exist and have the annotated size")
    group.add_argument("--partimagenet-short-polygons", choices=("drop", "pad"), default="drop",
                       help="PartImageNet polygons with fewer than 3 points (known dirt): drop them, or pad them "
                       "by repeating the last point as VLPart does; counted either way")
    group.add_argument("--paco-short-polygons", choices=("drop", "pad"), default="drop",
                       help="PACO-LVIS polygons with fewer than 3 points (LVIS-style dirt): drop them, or pad them "
                       "by repeating the last point; counted either way")
    group.add_argument("--partimagenet-masks", choices=("json", "png"), default="json",
                       help="PartImageNet mask source: the COCO polygons (as the authors) or the PNG label maps")


def warn_without_coco_images(args: argparse.Namespace) -> None:
    """Not an error (the annotations alone build fine), but every PACO-LVIS image would be unresolvable later."""
    if args.paco and not args.coco_images:
        print("warning: --paco without --coco-images: PACO-LVIS images are not checked and the dataset records no "
              "image root for them; pass --image-root paco_lvis=COCO_ROOT (or image_roots=) to show or decode "
              "those rows", file=sys.stderr)


def source_roots(args: argparse.Namespace) -> dict:
    return {"paco": args.paco, "coco_images": args.coco_images, "partimagenet": args.partimagenet,
            "ade20k_part234": args.ade20k_part234,
            "partimagenet_options": {"short_polygons": args.partimagenet_short_polygons,
                                     "mask_source": args.partimagenet_masks},
            "paco_options": {"short_polygons": args.paco_short_polygons}}


def reader_options(args: argparse.Namespace) -> dict:
    return {"min_area_fraction": args.min_area_fraction, "check_images": args.check_images}
