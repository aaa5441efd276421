"""Loader benchmark: samples/s of ``mixedparts.load_dataset`` on one core, and the cost of images on top
of bare PIL decoding of the same JPEGs.

    python benchmarks/loader.py [--data DIR] [--image-size 640x480] [--max-samples 6000] [--repeat 3]

Synthesizes the ``small`` synthetic releases with their images drawn at ``--image-size`` (COCO's
typical 640x480 by default) and builds at most ``--max-samples`` samples per split (about a minute
on 2 cores), unless ``--data`` holds a build already (then it is reused; a fresh build there is kept).
Prints, in one process, the best of ``--repeat`` passes with the page cache warm, as wall-clock
samples/s and samples per CPU second of the process (the fairer per-core figure on a shared machine),
and last one JSON line with the figures:

- rows with nothing decoded; with masks decoded (images off; goal >= 2,000 samples/s per core), row
  by row, in batches of 64, and streaming;
- rows with images decoded (masks off) against a bare ``PIL.Image.open(path).convert("RGB")`` loop
  over the same files in the same order: the overhead is their time ratio minus one (goal <= 10%);
- a DataLoader pass (batch 8, ``mixedparts.torch_data.collate``) with images and masks, for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def best_of(repeat: int, function) -> tuple[float, float, int]:
    """(best wall seconds, CPU seconds of that run, count) over ``repeat`` runs. On a shared machine the
    CPU time of this process is the fairer per-core figure; both are printed."""
    runs = []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        count = function()
        runs.append((time.perf_counter() - start, time.process_time() - cpu, count))
    return min(runs)


def rate(wall: float, cpu: float, count: int) -> str:
    return f"{count / wall:8,.0f} samples/s wall, {count / cpu:8,.0f} per CPU second"


def set_image_size(scale: str, size: str) -> None:
    """Draw the synthetic releases at ``size`` (the writers read their size tables at call time)."""
    from mixedparts.synth import ade20k_part234, paco, partimagenet

    width, height = (int(v) for v in size.lower().split("x"))
    for module in (paco, ade20k_part234):
        counts, _ = module.SCALE_SIZES[scale]
        module.SCALE_SIZES[scale] = (counts, (width, height))
    counts, _ = partimagenet.SCALE_PLAN[scale]
    partimagenet.SCALE_PLAN[scale] = (counts, (width, height))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=("tiny", "small"), help="synthetic scale to build")
    parser.add_argument("--data", help="a built dataset folder with its image roots; if it holds no build yet, the "
                        "synthetic one is built there (with its sources next to it) and kept for later runs")
    parser.add_argument("--split", default="train")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-samples", type=int, default=6000, help="samples per split of the synthetic build")
    parser.add_argument("--image-size", default="640x480", help="WIDTHxHEIGHT of the synthetic images (COCO's "
                        "typical 640x480 by default; the synthetic releases' own size at --scale small is 320x240)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="mixedparts-loader-bench-"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(scratch / "hf-cache"))
    try:
        data = Path(args.data) if args.data else None
        if data is None or not (data / "manifest.json").is_file():
            from mixedparts.build import build
            from mixedparts.build.options import BuildOptions
            from mixedparts.sources import open_readers
            from mixedparts.synth import source_paths, synthesize

            work = data.parent if data is not None else scratch
            data = data or scratch / "dataset"
            start = time.perf_counter()
            set_image_size(args.scale, args.image_size)
            sources = work / f"{data.name}-sources"
            synthesize(sources, scale=args.scale, seed=0)
            paths = source_paths(sources)
            readers = open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                                   partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])
            build(readers, data, BuildOptions(seed=0, max_samples_per_split=args.max_samples), workers=2,
                  progress=False)
            print(f"built a {args.scale} synthetic dataset at {args.image_size} in {time.perf_counter() - start:.1f} s"
                  f"{f' into {data}' if args.data else ''}")
        measure(data, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def measure(data: Path, args) -> None:
    from PIL import Image

    from mixedparts.images import ImageResolver
    from mixedparts.loader import load_dataset

    plain = load_dataset(data, split=args.split)
    n = len(plain)
    sizes = sorted({(i["width"], i["height"]) for row in plain.select(range(min(n, 200))) for i in row["images"]})
    masks_total = sum(len(s) for s in plain["segments"])
    print(f"split {args.split}: {n:,} samples, {masks_total / n:.1f} masks per sample, image sizes {sizes[:3]}"
          f"{'...' if len(sizes) > 3 else ''}; one process, best of {args.repeat}")

    def iterate(dataset) -> int:
        count = 0
        for _ in dataset:
            count += 1
        return count

    def iterate_batches(dataset, size: int = 64) -> int:
        count = 0
        for batch in dataset.iter(batch_size=size):
            count += len(batch["sample_id"])
        return count

    figures: dict = {"benchmark": "loader", "split": args.split, "samples": n, "cpus": os.cpu_count()}

    def record(name: str, measured: tuple[float, float, int]) -> str:
        wall, cpu, count = measured
        figures[f"{name}_per_s"] = round(count / wall)
        figures[f"{name}_per_cpu_s"] = round(count / cpu)
        return rate(wall, cpu, count)

    print(f"no decoding, row by row:           {record('plain', best_of(args.repeat, lambda: iterate(plain)))}")
    with_masks = load_dataset(data, split=args.split, decode_masks=True)
    print(f"masks decoded, row by row:         {record('masks', best_of(args.repeat, lambda: iterate(with_masks)))}"
          f"   (goal >= 2,000 per core)")
    print(f"masks decoded, batches of 64:      "
          f"{record('masks_batched', best_of(args.repeat, lambda: iterate_batches(with_masks)))}")
    streamed = load_dataset(data, split=args.split, decode_masks=True, streaming=True)
    streaming = best_of(args.repeat, lambda: iterate(streamed))
    print(f"masks decoded, streaming:          {record('masks_streaming', streaming)}")

    # Images on: the loader against a bare PIL loop over the same files, in the same order.
    resolver = ImageResolver.for_dataset(data)
    files = [str(resolver.path(row["source"], row["split"], image))
             for row in plain.select_columns(["source", "split", "images"]) for image in row["images"]]

    def raw() -> int:
        for path in files:
            with Image.open(path) as image:
                image.convert("RGB")
        return n

    with_images = load_dataset(data, split=args.split, decode_images=True)
    raw()  # warm the page cache
    loader_wall, loader_cpu, _ = best_of(args.repeat, lambda: iterate(with_images))
    raw_wall, raw_cpu, _ = best_of(args.repeat, raw)
    print(f"images decoded (masks off):        {record('images', (loader_wall, loader_cpu, n))}")
    print(f"  bare PIL open + convert('RGB') of the same {len(files):,} JPEGs: {rate(raw_wall, raw_cpu, n)}")
    print(f"  loader overhead: {loader_wall / raw_wall - 1:+.1%} wall, {loader_cpu / raw_cpu - 1:+.1%} CPU "
          f"(goal <= 10%)")
    figures["image_overhead_wall"] = round(loader_wall / raw_wall - 1, 4)
    figures["image_overhead_cpu"] = round(loader_cpu / raw_cpu - 1, 4)

    try:
        import torch
        from torch.utils.data import DataLoader

        from mixedparts.torch_data import collate
    except ImportError:
        print("torch not installed: DataLoader pass skipped")
        print(json.dumps(figures))
        return
    torch.set_num_threads(1)
    both = load_dataset(data, split=args.split, decode_images=True, decode_masks=True)
    # The DataLoader fetches a batch with Dataset.__getitems__: one transform call per batch.
    loader = DataLoader(both, batch_size=8, shuffle=False, num_workers=0, collate_fn=collate)

    def batches() -> int:
        count = 0
        for batch in loader:
            count += len(batch["sample_id"])
        return count

    collated = best_of(args.repeat, batches)
    print(f"DataLoader + collate (images and masks, batch 8, 0 workers): {record('dataloader', collated)}")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
