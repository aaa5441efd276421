"""``mixedparts build``: pair the source releases into a MixedParts dataset folder."""

from __future__ import annotations

import argparse
import os

from mixedparts.commands.sources_args import (add_source_arguments, reader_options, source_roots,
                                              warn_missing_folders)

RESUME_HINT = "run the same command again to resume (finished shards are verified and kept)"
HELP = "build the MixedParts dataset (Parquet shards + dataset card + manifest) from the source releases"


def default_out() -> str:
    from mixedparts.paths import default_dataset_dir

    return str(default_dataset_dir())


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.build.options import PART_PRESENCE, BuildOptions

    defaults = BuildOptions()
    add_source_arguments(parser)
    parser.add_argument("--out", help="dataset folder to write (default: $MIXEDPARTS_HOME/mixedparts, "
                        "where MIXEDPARTS_HOME defaults to ~/.cache/mixedparts)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of all sampling and wording")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes writing shards (the output is identical for any value)")
    parser.add_argument("--images-per-sample", type=int, default=defaults.images_per_sample,
                        help="k images per sample, 2 to 6 (2 as in the paper)")
    parser.add_argument("--max-samples-per-split", type=int, default=None,
                        help="keep at most this many samples per split (a seeded random subset)")
    for task, value in defaults.partners_per_anchor.items():
        parser.add_argument(f"--partners-{task.replace('_', '-')}", type=int, default=value,
                            help=f"{task}: partner draws per anchor object")
    parser.add_argument("--cap-per-object", type=int, default=defaults.cap_per_object,
                        help="maximum samples one object may appear in, per split")
    parser.add_argument("--cap-per-category-pair", type=int, default=defaults.cap_per_category_pair,
                        help="maximum samples per task and category combination, per source and split")
    parser.add_argument("--same-category-fraction", type=float, default=defaults.same_category_fraction,
                        help="part tasks: share of partners drawn from the anchor's own category")
    parser.add_argument("--ade-val-fraction", type=float, default=defaults.ade_val_fraction,
                        help="share of ADE20K-Part-234 training images used as val (its validation split is test)")
    parser.add_argument("--shard-rows", type=int, default=defaults.shard_rows, help="samples per Parquet shard")
    parser.add_argument("--part-presence", choices=PART_PRESENCE, default=defaults.part_presence,
                        help="unique parts: all-annotations (default) counts a part as present on an object if "
                        "any annotation of it exists, even one below --min-area-fraction, so it is never unique "
                        "to the other object; surviving-masks (builder 1.0) counts only masks that survive the "
                        "area filter")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def options_from(args: argparse.Namespace):
    from mixedparts.build.options import BuildOptions
    from mixedparts.errors import MixedPartsError
    from mixedparts.schema import TASKS

    try:
        return BuildOptions(
            seed=args.seed, images_per_sample=args.images_per_sample,
            partners_per_anchor={t: getattr(args, f"partners_{t}") for t in TASKS},
            cap_per_object=args.cap_per_object, cap_per_category_pair=args.cap_per_category_pair,
            same_category_fraction=args.same_category_fraction, max_samples_per_split=args.max_samples_per_split,
            ade_val_fraction=args.ade_val_fraction, shard_rows=args.shard_rows,
            min_area_fraction=args.min_area_fraction, part_presence=args.part_presence)
    except ValueError as error:
        raise MixedPartsError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    from mixedparts.build import build
    from mixedparts.sources import open_readers

    options = options_from(args)
    warn_missing_folders(args)
    readers = open_readers(**source_roots(args), **reader_options(args))
    out = args.out or default_out()
    try:
        result = build(readers, out, options, workers=max(1, args.workers), progress=not args.quiet)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(RESUME_HINT) from None
    for reader in readers:
        print(f"{reader.source}: skipped or repaired — {reader.stats.summary()}")
    total = sum(result.split_rows.values())
    print(f"wrote {total:,} samples ({', '.join(f'{s}: {n:,}' for s, n in result.split_rows.items())}) to {out} "
          f"[{result.shards_written} shards written, {result.shards_skipped} verified and kept]")
    return 0
