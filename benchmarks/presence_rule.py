"""How many samples each part-presence rule gives (``BuildOptions.part_presence``), per split and task.

    python benchmarks/presence_rule.py [--sources DIR] [--scale full]

Reads the releases once, then pools and plans every split under each rule with the default options
(planning decides the samples; writing shards would not change the counts). ``--sources`` reuses a
``mixedparts synth --scale full --no-images`` folder; without it the releases are synthesized first.
Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from mixedparts.build import plan_split
from mixedparts.build.options import PART_PRESENCE, BuildOptions
from mixedparts.build.pool import build_pools
from mixedparts.build.splits import canonical_split
from mixedparts.schema import SPLITS, TASKS
from mixedparts.sources import open_readers
from mixedparts.synth import source_paths, synthesize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", help="existing synthetic sources (else synthesized to a temp dir)")
    parser.add_argument("--scale", default="full", choices=("tiny", "small", "full"))
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="mixedparts-presence-"))
    try:
        sources = Path(args.sources) if args.sources else scratch / "sources"
        if not args.sources:
            synthesize(sources, scale=args.scale, seed=0, images=False)
        # A folder holding only some of the releases is measured on those (the counts say which).
        paths = {name: path if path.is_dir() else None for name, path in source_paths(sources).items()}
        readers = open_readers(paco=paths["paco_lvis"], coco_images=None, partimagenet=paths["partimagenet"],
                               ade20k_part234=paths["ade20k_part234"], check_images=False)
        print("releases: " + ", ".join(reader.source for reader in readers))
        defaults = BuildOptions()
        start = time.perf_counter()
        images = {reader.source: [image for split in reader.splits
                                  for image in tqdm(reader.read(split), desc=f"reading {reader.source}/{split}",
                                                    unit=" images")]
                  for reader in readers}
        print(f"read {sum(map(len, images.values())):,} images in {time.perf_counter() - start:.1f} s")
        objects = sum(len(i.objects) for per_source in images.values() for i in per_source)
        with_dropped = sum(bool(o.dropped_part_names) for per_source in images.values() for i in per_source
                           for o in i.objects)
        counts: dict[str, dict[str, int]] = {}
        for rule in PART_PRESENCE:
            options = replace(defaults, part_presence=rule)
            pools: dict[str, list] = {split: [] for split in SPLITS}
            for source, source_images in images.items():
                by_split = build_pools(source_images, source, lambda image: canonical_split(
                    image.source, image.split, image.image_id, options.ade_val_fraction), rule)
                for split in SPLITS:
                    if split in by_split:
                        pools[split].append(by_split[split])
            per_task: Counter = Counter()
            for split in SPLITS:
                if pools[split]:
                    plan = plan_split(pools[split], split, options, progress=False)
                    per_task.update(f"{split}/{TASKS[t]}" for t in plan.task)
            counts[rule] = {key: per_task[key] for key in sorted(per_task)} | {"total": sum(per_task.values())}
        keys = sorted({k for c in counts.values() for k in c} - {"total"}) + ["total"]
        width = max(map(len, keys))
        print(f"\n{'samples':<{width}}  " + "  ".join(f"{rule:>16}" for rule in PART_PRESENCE) + "  change")
        for key in keys:
            new, old = counts["all-annotations"].get(key, 0), counts["surviving-masks"].get(key, 0)
            print(f"{key:<{width}}  {new:>16,}  {old:>16,}  {new - old:+,}")
        print(f"\n{with_dropped:,} of {objects:,} objects have a part annotated whose every mask is below the area "
              f"filter")
        print(json.dumps({"benchmark": "presence_rule", "scale": args.scale,
                          "releases": [reader.source for reader in readers], "objects": objects,
                          "objects_with_dropped_parts": with_dropped, "samples": counts}))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
