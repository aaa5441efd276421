"""Build benchmark: full-scale synthetic releases (no pixels) -> MixedParts with the default options.

    python benchmarks/build.py [--sources DIR] [--workers 2] [--out DIR]

Prints the wall time of the synthesis and of the build, the build's peak RSS (largest process, parent
or writer), samples/s and the counts. Goal on 2 cores: <= 5 minutes and <= 4 GB for ~2.4M samples.
``--sources`` reuses an existing ``mixedparts synth --scale full --no-images`` folder.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mixedparts.build import build
from mixedparts.build.options import BuildOptions
from mixedparts.sources import open_readers
from mixedparts.synth import source_paths, synthesize


def peak_rss_gb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, children_kb) / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", help="existing full-scale synthetic sources (else synthesized to a temp dir)")
    parser.add_argument("--out", help="dataset folder (default: a temporary folder, deleted afterwards)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", default="full", choices=("tiny", "small", "full"))
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="mixedparts-bench-"))
    try:
        sources = Path(args.sources) if args.sources else scratch / "sources"
        if not args.sources:
            start = time.perf_counter()
            synthesize(sources, scale=args.scale, seed=0, images=False)
            print(f"synthesized {args.scale} sources without pixels in {time.perf_counter() - start:.1f} s")
        paths = source_paths(sources)
        readers = open_readers(paco=paths["paco_lvis"], coco_images=None, partimagenet=paths["partimagenet"],
                               ade20k_part234=paths["ade20k_part234"], check_images=False)
        out = Path(args.out) if args.out else scratch / "dataset"
        start = time.perf_counter()
        result = build(readers, out, BuildOptions(), workers=args.workers, progress=True)
        elapsed = time.perf_counter() - start
        total = sum(result.split_rows.values())
        size = sum(p.stat().st_size for p in (out / "data").glob("*.parquet"))
        print(f"build: {total:,} samples in {elapsed:.1f} s ({total / elapsed:,.0f} samples/s), "
              f"peak RSS {peak_rss_gb():.2f} GB, {size / 1024**3:.2f} GB of shards, workers={args.workers}")
        print("  stages: " + ", ".join(f"{stage} {sec:.1f} s" for stage, sec in result.seconds.items()))
        for split, per_source in result.counts.items():
            for source, per_task in per_source.items():
                print(f"  {split:5s} {source:15s} " + "  ".join(f"{t}: {n:,}" for t, n in per_task.items()))
        for reader in readers:
            print(f"  {reader.source}: {reader.stats.summary()}")
    finally:
        if not args.out:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
