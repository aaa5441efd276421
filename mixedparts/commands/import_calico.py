"""``mixedparts import-calico``: the authors' MixedParts bundle as a MixedParts dataset folder."""

from __future__ import annotations

import argparse

from mixedparts.commands.sources_args import (add_source_arguments, reader_options, source_roots,
                                              warn_missing_folders)

HELP = "convert the authors' MixedParts bundle (mixed_parts_{train,val,test}.json pair files) into a dataset folder"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="the bundle folder (PLAN-Lab/MixedParts as downloaded): "
                        "mixed_parts_*.json, PartImageNet/annotations/…_mixed_parts.json, "
                        "ADE20KPart234/ade20k_instance_*_mixed_parts.json")
    add_source_arguments(parser)
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question and answer wording")
    parser.add_argument("--workers", type=int, default=1, help="processes writing shards (same output for any value)")
    parser.add_argument("--shard-rows", type=int, default=50000, help="samples per Parquet shard")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from mixedparts.build.calico_import import import_bundle

    warn_missing_folders(args)
    roots = source_roots(args)
    try:
        split_rows, stats = import_bundle(args.bundle, args.out, seed=args.seed, shard_rows=args.shard_rows,
                                          workers=max(1, args.workers), progress=not args.quiet, **roots,
                                          **reader_options(args))
    except KeyboardInterrupt:
        from mixedparts.commands.build import RESUME_HINT

        raise KeyboardInterrupt(RESUME_HINT) from None
    for what, n in sorted(stats.items()):
        print(f"  {what}: {n}")
    print(f"wrote {sum(split_rows.values()):,} samples ({', '.join(f'{s}: {n:,}' for s, n in split_rows.items())}) "
          f"to {args.out}")
    return 0
