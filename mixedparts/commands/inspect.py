"""``mixedparts inspect``: read source releases and summarize what the readers yield."""

from __future__ import annotations

import argparse
import json

from mixedparts.commands.sources_args import add_source_arguments, reader_options, source_roots

HELP = "read the given source releases and print per-split counts of images, objects, parts and names"


def configure(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def summarize(readers) -> list[dict]:
    from collections import Counter

    from tqdm import tqdm

    rows = []
    for reader in readers:
        for split in reader.splits:
            images = objects = parts = 0
            categories: Counter = Counter()
            part_names: Counter = Counter()
            for image in tqdm(reader.read(split), desc=f"reading {reader.source}/{split}", unit=" images",
                              leave=False, disable=None):
                images += 1
                objects += len(image.objects)
                for obj in image.objects:
                    categories[obj.category] += 1
                    parts += len(obj.parts)
                    part_names.update(p.name for p in obj.parts)
            rows.append({"source": reader.source, "split": split, "images": images, "objects": objects,
                         "parts": parts, "categories": len(categories), "part_names": len(part_names),
                         "top_categories": categories.most_common(5), "top_parts": part_names.most_common(5)})
        rows[-1]["skipped"] = dict(reader.stats.counts)
    return rows


def run(args: argparse.Namespace) -> int:
    from mixedparts.errors import MixedPartsError
    from mixedparts.sources import open_readers
    from mixedparts.sources.registry import flags_sentence

    readers = open_readers(**source_roots(args), **reader_options(args))
    if not readers:
        raise MixedPartsError(f"no source given: pass {flags_sentence()}")
    rows = summarize(readers)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'source':15s} {'split':10s} {'images':>8s} {'objects':>8s} {'parts':>9s} {'categories':>10s} "
          f"{'part names':>10s}")
    for row in rows:
        print(f"{row['source']:15s} {row['split']:10s} {row['images']:8d} {row['objects']:8d} {row['parts']:9d} "
              f"{row['categories']:10d} {row['part_names']:10d}")
    for row in rows:
        if "skipped" in row:
            skipped = ", ".join(f"{k}: {v}" for k, v in sorted(row["skipped"].items())) or "nothing"
            print(f"{row['source']}: skipped or repaired — {skipped}")
    return 0
