"""Build benchmark: synthetic releases (no pixels) -> MixedParts with the default options, against its floor.

    python benchmarks/build.py [--scale small|full] [--sources DIR] [--workers 2] [--out DIR]

Times the build (reading, pairing, writing) and then, in the same process, the floor of the same
work: every distinct pycocotools union the rows need (the same instance masks, merged in one tight
loop on one core) plus a pyarrow write of the finished shards' columns (read back, written again with the
builder's settings). Prints build time / floor (goal <= 2.0), samples/s, peak RSS and the counts; the
last line is one JSON object with the figures (``time_over_floor`` is the ratio). ``--sources``
reuses an existing ``mixedparts synth --scale ... --no-images`` folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from pycocotools import mask as mask_utils

from mixedparts.build import build
from mixedparts.build.materialize import union_inputs
from mixedparts.build.options import BuildOptions
from mixedparts.build.shards import write_table
from mixedparts.sources import open_readers
from mixedparts.synth import source_paths, synthesize

from measure import cpu_seconds  # benchmarks/measure.py

CHUNK_ROWS = 50_000  # the floor's instance lists are gathered per chunk, so they never all sit in memory


def peak_rss_gb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, children_kb) / 1024**2


def union_floor(pools: dict, plans: dict) -> tuple[float, float, int]:
    """Wall and CPU seconds merging each distinct multi-instance union the rows need, and how many.

    Distinct: the builder merges an object's part once however many samples it serves in, so the
    floor does too (the stricter floor). Gathering the lists and turning counts into bytes is left
    out of the timing: only pycocotools' merge is timed. Single-instance masks need no merge.
    """
    seconds = cpu = 0.0
    seen: set = set()
    for split, plan in plans.items():
        for chunk_start in range(0, len(plan), CHUNK_ROWS):
            lists = []
            for i in range(chunk_start, min(len(plan), chunk_start + CHUNK_ROWS)):
                pool_index, task, objects = plan.row(i)
                for instances in union_inputs(pools[split][pool_index], task, objects):
                    key = (split, pool_index, *map(id, instances))  # the instance dicts live as long as the pools
                    if len(instances) > 1 and key not in seen:
                        seen.add(key)
                        lists.append([{"size": r["size"], "counts": r["counts"].encode()} for r in instances])
            merge = mask_utils.merge
            start, start_cpu = time.perf_counter(), time.process_time()
            for instances in lists:
                merge(instances, intersect=False)
            seconds += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
    return seconds, cpu, len(seen)


def write_floor(data: Path, scratch: Path) -> tuple[float, float]:
    """Wall and CPU seconds pyarrow takes to write the finished shards' tables again with the builder's
    settings."""
    seconds = cpu = 0.0
    for shard in sorted(data.glob("*.parquet")):
        table = pq.read_table(shard)
        start, start_cpu = time.perf_counter(), time.process_time()
        write_table(table, scratch / "floor.parquet")
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        (scratch / "floor.parquet").unlink()
        del table
    return seconds, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", help="existing synthetic sources of that scale (else synthesized to a temp dir)")
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
        start, start_cpu = time.perf_counter(), cpu_seconds()
        result = build(readers, out, BuildOptions(), workers=args.workers, progress=True)
        elapsed, elapsed_cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
        total = sum(result.split_rows.values())
        size = sum(p.stat().st_size for p in (out / "data").glob("*.parquet"))
        peak = peak_rss_gb()
        print(f"build: {total:,} samples in {elapsed:.1f} s, {elapsed_cpu:.1f} CPU s "
              f"({total / elapsed:,.0f} samples/s), peak RSS {peak:.2f} GB, {size / 1024**3:.2f} GB of shards, "
              f"workers={args.workers}")
        print("  stages: " + ", ".join(f"{stage} {sec:.1f} s" for stage, sec in result.seconds.items()))
        for split, per_source in result.counts.items():
            for source, per_task in per_source.items():
                print(f"  {split:5s} {source:15s} " + "  ".join(f"{t}: {n:,}" for t, n in per_task.items()))
        for reader in readers:
            print(f"  {reader.source}: {reader.stats.summary()}")

        unions_s, unions_cpu, unions = union_floor(result.pools, result.plans)
        result.pools, result.plans = {}, {}
        parquet_s, parquet_cpu = write_floor(out / "data", scratch)
        floor, floor_cpu = unions_s + parquet_s, unions_cpu + parquet_cpu
        print(f"floor (one core): {floor:.1f} s, {floor_cpu:.1f} CPU s = {unions:,} pycocotools unions "
              f"{unions_s:.1f} s + pyarrow write of the shards {parquet_s:.1f} s")
        print(f"build time / floor: {elapsed / floor:.2f} (goal <= 2.0; the build writes with {args.workers} "
              f"workers on {os.cpu_count()} CPUs); build CPU / floor CPU: {elapsed_cpu / floor_cpu:.2f}")
        print(json.dumps({"benchmark": "build", "scale": args.scale, "samples": total, "workers": args.workers,
                          "cpus": os.cpu_count(), "build_s": round(elapsed, 2),
                          **{f"{stage}_s": round(sec, 2) for stage, sec in result.seconds.items()},
                          "samples_per_s": round(total / elapsed), "peak_rss_gb": round(peak, 2),
                          "shards_gb": round(size / 1024**3, 3), "floor_s": round(floor, 2),
                          "floor_unions_s": round(unions_s, 2), "floor_unions": unions,
                          "floor_parquet_write_s": round(parquet_s, 2), "build_cpu_s": round(elapsed_cpu, 2),
                          "floor_cpu_s": round(floor_cpu, 2), "cpu_over_floor": round(elapsed_cpu / floor_cpu, 3),
                          "time_over_floor": round(elapsed / floor, 3)}))
    finally:
        if not args.out:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
