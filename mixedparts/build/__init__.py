"""``mixedparts build``: source records -> paired samples -> a dataset folder of Parquet shards.

Stages: read every release once (records stay in memory; masks are compact RLE strings), plan the
samples of each split serially with one seeded generator (cheap: object indices only), then
materialize and write the shards (:mod:`mixedparts.build.writer`: parallel, resumable, atomic).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mixedparts.build.card import checksum_files, source_files
from mixedparts.build.materialize import materialize_rows
from mixedparts.build.options import BuildOptions
from mixedparts.build.pairing import Plan, plan_pool
from mixedparts.build.pool import Pool, build_pools
from mixedparts.build.splits import canonical_split, splits_fed_by
from mixedparts.build.writer import ShardWriter, check_output, finish, prepare_output
from mixedparts.errors import MixedPartsError
from mixedparts.gc_pause import cyclic_gc_paused
from mixedparts.schema import SPLITS, TASKS
from mixedparts.sources.registry import flags_sentence


@dataclass
class BuildResult:
    out: Path
    split_rows: dict
    counts: dict  # split -> source -> task -> rows
    shards_written: int
    shards_skipped: int
    seconds: dict  # wall time per stage: reading, pairing, writing (writing: its time not spent pairing)
    # What was planned, for benchmarks/build.py's floor (which re-derives the work of every row).
    pools: dict = field(default_factory=dict, repr=False)
    plans: dict = field(default_factory=dict, repr=False)


def read_pools(readers, options: BuildOptions, progress: bool) -> dict[str, list[Pool]]:
    """Pools per canonical split, in reader order."""
    pools: dict[str, list[Pool]] = defaultdict(list)
    for reader in readers:
        images = []
        for release_split in reader.splits:
            images += list(tqdm(reader.read(release_split), desc=f"reading {reader.source}/{release_split}",
                                unit=" images", disable=None if progress else True))
        source_pools = build_pools(
            images, reader.source,
            lambda image: canonical_split(image.source, image.split, image.image_id, options.ade_val_fraction),
            options.part_presence)
        for split in SPLITS:
            if split in source_pools:
                pools[split].append(source_pools[split])
    return pools


def image_roots(readers) -> dict:
    roots: dict = {}
    for reader in readers:
        per_split = {}
        for release_split in reader.splits:
            root = reader.image_root(release_split)
            if root is None:
                continue
            for split in splits_fed_by(reader.source, release_split):
                per_split[split] = str(Path(root).resolve())
        roots[reader.source] = per_split
    return roots


def plan_split(split_pools: list[Pool], split: str, options: BuildOptions, progress: bool) -> Plan:
    plan = Plan(options.images_per_sample)
    rng = np.random.default_rng([options.seed, SPLITS.index(split)])
    with tqdm(total=sum(len(p) for p in split_pools), desc=f"pairing {split}", unit=" objects",
              disable=None if progress else True) as bar:
        for index, pool in enumerate(split_pools):
            plan_pool(pool, index, options, rng, plan, progress=bar)
    # Rows of one anchor are drawn together; a seeded permutation spreads them (and the sources) over shards.
    order = rng.permutation(len(plan))
    if options.max_samples_per_split is not None:
        order = order[:options.max_samples_per_split]
    return plan.subset(order)


# Paused for the whole build, writing included: the pools and plans are millions of small acyclic
# objects, all still in the collector's youngest generation when reading ends; with the collector back
# on, the parent would walk them again and again, and so would each forked writer before its own pause,
# copying the pages it touches.
@cyclic_gc_paused()
def build(readers, out: str | Path, options: BuildOptions = BuildOptions(), workers: int = 1,
          progress: bool = True) -> BuildResult:
    if not readers:
        raise MixedPartsError(f"no source given: pass {flags_sentence()}")
    out = Path(out)
    sources = {r.source: {"root": str(r.root.resolve()),
                          "files": checksum_files(source_files(r.source, r.root), r.root),
                          "settings": r.settings()} for r in readers}
    fingerprint = {"options": options.fingerprint(), "sources": sources}
    check_output(out, fingerprint)

    clock = time.perf_counter()
    pools = read_pools(readers, options, progress)
    seconds = {"reading": time.perf_counter() - clock}
    splits = [split for split in SPLITS if pools.get(split)]
    if not splits:
        raise MixedPartsError("the sources hold no usable objects (after the area filter)")
    state = prepare_output(out, fingerprint)  # only now: bad input above leaves the folder untouched

    def rows_of(split: str, start: int, end: int, plan: Plan) -> list:
        planned = [(pools[split][pool_index], task, objects) for pool_index, task, objects in plan.rows(0, len(plan))]
        return materialize_rows(planned, options.seed)

    # The largest split is paired last: the shards of the others are written meanwhile, on the cores
    # the serial pairing leaves idle. Each split has its own generator, so the order changes nothing.
    largest = max(splits, key=lambda split: sum(len(pool) for pool in pools[split]))
    plans: dict[str, Plan] = {}
    seconds["pairing"] = 0.0
    clock = time.perf_counter()
    with ShardWriter(out, state, rows_of, options.shard_rows, workers, progress) as writer:
        for split in [*(split for split in splits if split != largest), largest]:
            pairing_clock = time.perf_counter()
            plan = plans[split] = plan_split(pools[split], split, options, progress)
            seconds["pairing"] += time.perf_counter() - pairing_clock
            writer.add(split, len(plan), plan.between)
        shards, written, kept = writer.wait()
    seconds["writing"] = time.perf_counter() - clock - seconds["pairing"]
    plans = {split: plans[split] for split in splits}  # SPLITS order, as the card and manifest list them
    shards = dict(sorted(shards.items(), key=lambda item: (splits.index(item[0].split("-")[0]), item[0])))
    split_rows = {split: len(plan) for split, plan in plans.items()}
    counts = count_rows(pools, plans)
    finish(out, shards, split_rows, counts, {"options": options.fingerprint(), "seed": options.seed,
                                            "sources": sources, "image_roots": image_roots(readers)})
    return BuildResult(out, split_rows, counts, written, kept, seconds, pools, plans)


def count_rows(pools: dict, plans: dict) -> dict:
    counts: dict = {}
    for split, plan in plans.items():
        per = Counter((pools[split][p].source, TASKS[t]) for p, t in zip(plan.pool_index, plan.task))
        counts[split] = {}
        for (source, task), n in sorted(per.items()):
            counts[split].setdefault(source, {})[task] = n
    return counts
