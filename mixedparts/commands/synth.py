"""``mixedparts synth``: write synthetic PACO-LVIS, PartImageNet and ADE20K-Part-234 releases."""

from __future__ import annotations

import argparse

HELP = "write the three part-dataset releases in their real on-disk formats, drawn procedurally"


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.synth.common import SCALES

    parser.add_argument("--out", required=True, help="output folder (must be absent or empty)")
    parser.add_argument("--scale", choices=SCALES, default="tiny",
                        help="tiny: a few images per split (tests); small: hundreds; full: the real releases' "
                        "sizes (~44K usable images, ~600K part masks; use with --no-images)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes")
    parser.add_argument("--no-images", dest="images", action="store_false",
                        help="skip the JPEG pixels (annotations and part PNGs only), e.g. for build benchmarks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--sources", default="paco_lvis,partimagenet,ade20k_part234",
                        help="comma-separated releases to write")


def run(args: argparse.Namespace) -> int:
    from mixedparts.synth import source_paths, synthesize

    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    record = synthesize(args.out, scale=args.scale, seed=args.seed, images=args.images, sources=sources,
                        progress=not args.quiet)
    paths = source_paths(args.out)
    for name, images in record.items():
        objects = sum(len(i["objects"]) for i in images)
        parts = sum(len(o["parts"]) for i in images for o in i["objects"])
        print(f"{name:15s} {len(images):7d} images {objects:8d} objects {parts:9d} parts  -> {paths[name]}")
    flags = " ".join(f"--{n.replace('_', '-') if n != 'paco_lvis' else 'paco'} {paths[n]}" for n in record)
    if "paco_lvis" in record:
        flags += f" --coco-images {paths['coco_images']}"
    print(f"read them with: mixedparts inspect {flags}")
    return 0
