"""``mixedparts synth``: write synthetic copies of the registered releases (PACO-LVIS, PartImageNet, ADE20K-Part-234)."""

from __future__ import annotations

import argparse

HELP = "write the three part-dataset releases in their real on-disk formats, drawn procedurally"


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.sources.registry import registered_sources
    from mixedparts.synth.common import SCALES

    parser.add_argument("--out", required=True, help="output folder (must be absent or empty)")
    parser.add_argument("--scale", choices=SCALES, default="tiny",
                        help="tiny: a few images per split (tests); small: hundreds; medium: small's val and test with "
                        "1,500 training images per source (to train the tiny model); full: the real releases' "
                        "sizes (~44K usable images, ~600K part masks; use with --no-images)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes")
    parser.add_argument("--no-images", dest="images", action="store_false",
                        help="skip the JPEG pixels (annotations and part PNGs only), e.g. for build benchmarks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--sources", default=",".join(s.name for s in registered_sources() if s.writer),
                        help="comma-separated releases to write (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from mixedparts.sources.registry import get_source
    from mixedparts.synth import source_paths, synthesize

    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    record = synthesize(args.out, scale=args.scale, seed=args.seed, images=args.images, sources=sources,
                        progress=not args.quiet)
    paths = source_paths(args.out)
    for name, images in record.items():
        objects = sum(len(i["objects"]) for i in images)
        parts = sum(len(o["parts"]) for i in images for o in i["objects"])
        print(f"{name:15s} {len(images):7d} images {objects:8d} objects {parts:9d} parts  -> {paths[name]}")
    specs = [get_source(name) for name in record]
    flags = " ".join([f"{spec.flag} {paths[spec.name]}" for spec in specs] +
                     [f"{o.flag} {paths[o.dest]}" for spec in specs for o in spec.folder_options if o.synth_folder])
    print(f"read them with: mixedparts inspect {flags}")
    return 0
