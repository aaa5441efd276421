"""Synthetic PartImageNet **Seg** release: one large object per image, parts as COCO polygons and PNGs.

Layout under ``root`` (as the Seg zip unpacks; see docs/sources.md)::

    images/{train,val,test}/<wnid>_<n>.JPEG            flat, named by the real ImageNet WordNet id
    annotations/{split}/{split}.json                   COCO parts: the 40 real part categories
    annotations/{split}/<stem>.png                     uint8 part label map: 0-39 part id, 40 background
    annotations/{split}/<stem>.json                    {"imgHeight": h, "imgWidth": w}
    annotations/{split}_whole/{split}.json             COCO whole objects, one annotation per image
    annotations/{split}_whole/<stem>.png               uint8: fine-class index, 158 background
    annotations/{split}_whole/<stem>.json              {"imgHeight": h, "imgWidth": w}

The real release's ``_whole`` category scheme is unverified. This writer uses the fine-class scheme the
``_whole`` PNG is documented to use: category ``id`` = the class's index in the release's class list
sorted by WordNet id (the same value the ``_whole`` PNG holds), ``name`` = the WordNet id,
``supercategory`` = the super-category (``{"id": 3, "name": "n01440764", "supercategory": "Fish"}``).
The reader takes the fine class from the file name, as PartCLIPSeg does, so it never relies on it.

Known dirt of the real release reproduced here: a few part annotations carry an extra polygon of fewer
than three points (VLPart pads them). The extra polygon repeats vertices of the part's own outline, so
dropping it or padding it leaves the part's mask unchanged; the drawn record lists them per image under
``short_polygons``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixedparts import masks
from mixedparts.synth.common import drawing, drawn_entry, image_rng, write_jpeg, write_json, write_png
from mixedparts.synth.draw import DrawnImage, ObjectTemplate, PartSpec, draw_image, label_map, render

SOURCE = "partimagenet"
SPLITS = ("train", "val", "test")

# The release's 40 part categories, ids 0-39 in this order (docs/sources.md).
PART_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Quadruped", ("Head", "Body", "Foot", "Tail")),
    ("Biped", ("Head", "Body", "Hand", "Foot", "Tail")),
    ("Fish", ("Head", "Body", "Fin", "Tail")),
    ("Bird", ("Head", "Body", "Wing", "Foot", "Tail")),
    ("Snake", ("Head", "Body")),
    ("Reptile", ("Head", "Body", "Foot", "Tail")),
    ("Car", ("Body", "Tier", "Side Mirror")),
    ("Bicycle", ("Body", "Head", "Seat", "Tier")),
    ("Boat", ("Body", "Sail")),
    ("Aeroplane", ("Head", "Body", "Engine", "Wing", "Tail")),
    ("Bottle", ("Mouth", "Body")),
)
CATEGORIES = [{"id": i, "name": f"{supercategory} {part}", "supercategory": supercategory}
              for i, (supercategory, part) in enumerate((s, p) for s, parts in PART_CATEGORIES for p in parts)]
CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}
PART_BACKGROUND = 40
WHOLE_BACKGROUND = 158

# Real ImageNet-1k classes of each super-category, with their clean names lowercased (what the reader
# derives from the WordNet id). The weight is the super-category's class count in the real release,
# so the mix of super-categories resembles it.
FINE_CLASSES: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {
    "Quadruped": (46, (("n02085620", "chihuahua"), ("n02123045", "tabby cat"), ("n02129165", "lion"),
                       ("n02391049", "zebra"))),
    "Biped": (17, (("n02480855", "gorilla"), ("n02481823", "chimpanzee"))),
    "Fish": (10, (("n01440764", "tench"), ("n01443537", "goldfish"))),
    "Bird": (14, (("n01530575", "brambling"), ("n01531178", "goldfinch"))),
    "Snake": (15, (("n01728572", "worm snake"), ("n01734418", "kingsnake"))),
    "Reptile": (20, (("n01664065", "loggerhead sea turtle"), ("n01675722", "banded gecko"))),
    "Car": (19, (("n04285008", "sports car"), ("n02814533", "station wagon"), ("n03100240", "convertible"))),
    "Bicycle": (6, (("n03792782", "mountain bike"), ("n02835271", "tandem bicycle"))),
    "Boat": (4, (("n04147183", "schooner"), ("n04273569", "motorboat"))),
    "Aeroplane": (2, (("n02690373", "airliner"), ("n04552348", "military aircraft"))),
    "Bottle": (5, (("n04557648", "water bottle"), ("n02823428", "beer bottle"))),
}
WNIDS_SORTED = sorted(wnid for _, classes in FINE_CLASSES.values() for wnid, _ in classes)
FINE_INDEX = {wnid: i for i, wnid in enumerate(WNIDS_SORTED)}
SUPERCATEGORY_OF = {wnid: s for s, (_, classes) in FINE_CLASSES.items() for wnid, _ in classes}


def _snake_band(x_end: float, half_width: float, samples: int = 16) -> tuple:
    """A wavy band along x (the snake's body) as one polygon."""
    xs = [x_end * i / (samples - 1) for i in range(samples)]
    centre = [0.5 + 0.22 * math.sin(2.5 * math.pi * x) for x in xs]
    top = [v for x, c in zip(xs, centre) for v in (x, c - half_width)]
    bottom = [v for x, c in reversed(list(zip(xs, centre))) for v in (x, c + half_width)]
    return ("poly", *top, *bottom)


def _part(supercategory: str, part: str, shape: tuple, presence: float = 1.0) -> PartSpec:
    name = f"{supercategory} {part}"
    label = part.lower().replace("tier", "tire")
    return PartSpec(name=name, shape=shape, presence=presence, label=label)


# Geometry per super-category, front-most part first (draw.py clips later parts behind earlier ones).
# Legs, wheels and arms are separate instances of one category, as in the release. Tails, fins, side
# mirrors, seats and mouths are small on purpose: the default 2% area filter drops some of them.
SHAPES: dict[str, tuple[float, tuple[PartSpec, ...]]] = {
    "Quadruped": (1.4, (
        _part("Quadruped", "Head", ("ellipse", 0.84, 0.26, 0.14, 0.2)),
        _part("Quadruped", "Tail", ("poly", 0.0, 0.12, 0.1, 0.08, 0.22, 0.36, 0.12, 0.46), presence=0.7),
        _part("Quadruped", "Body", ("ellipse", 0.45, 0.45, 0.36, 0.22)),
        _part("Quadruped", "Foot", ("rect", 0.56, 0.5, 0.7, 1.0)),
        _part("Quadruped", "Foot", ("rect", 0.18, 0.5, 0.32, 1.0)),
    )),
    "Biped": (0.8, (
        _part("Biped", "Head", ("ellipse", 0.5, 0.13, 0.2, 0.13)),
        _part("Biped", "Hand", ("rect", 0.0, 0.28, 0.2, 0.7)),
        _part("Biped", "Hand", ("rect", 0.8, 0.28, 1.0, 0.7)),
        _part("Biped", "Foot", ("rect", 0.2, 0.76, 0.46, 1.0)),
        _part("Biped", "Foot", ("rect", 0.54, 0.76, 0.8, 1.0)),
        _part("Biped", "Tail", ("poly", 0.8, 0.72, 0.98, 0.8, 0.98, 0.9, 0.8, 0.8), presence=0.3),
        _part("Biped", "Body", ("rect", 0.2, 0.25, 0.8, 0.8)),
    )),
    "Fish": (2.0, (
        _part("Fish", "Head", ("ellipse", 0.2, 0.5, 0.18, 0.3)),
        _part("Fish", "Fin", ("poly", 0.36, 0.3, 0.55, 0.0, 0.72, 0.3), presence=0.8),
        _part("Fish", "Tail", ("poly", 0.84, 0.5, 1.0, 0.1, 1.0, 0.9)),
        _part("Fish", "Body", ("ellipse", 0.5, 0.5, 0.38, 0.3)),
    )),
    "Bird": (1.0, (
        _part("Bird", "Head", ("ellipse", 0.76, 0.22, 0.15, 0.15)),
        _part("Bird", "Wing", ("poly", 0.25, 0.35, 0.65, 0.4, 0.5, 0.62, 0.2, 0.6)),
        _part("Bird", "Foot", ("rect", 0.37, 0.72, 0.58, 1.0), presence=0.8),
        _part("Bird", "Tail", ("poly", 0.0, 0.42, 0.22, 0.5, 0.22, 0.68, 0.0, 0.78), presence=0.9),
        _part("Bird", "Body", ("ellipse", 0.47, 0.52, 0.3, 0.26)),
    )),
    "Snake": (2.4, (
        _part("Snake", "Head", ("ellipse", 0.9, 0.5, 0.11, 0.22)),
        _part("Snake", "Body", _snake_band(0.84, 0.14)),
    )),
    "Reptile": (1.6, (
        _part("Reptile", "Head", ("ellipse", 0.88, 0.42, 0.12, 0.15)),
        _part("Reptile", "Foot", ("rect", 0.6, 0.58, 0.76, 0.98)),
        _part("Reptile", "Foot", ("rect", 0.2, 0.58, 0.36, 0.98)),
        _part("Reptile", "Tail", ("poly", 0.0, 0.44, 0.22, 0.34, 0.22, 0.66, 0.0, 0.56), presence=0.8),
        _part("Reptile", "Body", ("ellipse", 0.46, 0.48, 0.33, 0.28)),
    )),
    "Car": (2.0, (
        _part("Car", "Side Mirror", ("rect", 0.62, 0.34, 0.68, 0.42), presence=0.7),
        _part("Car", "Tier", ("ellipse", 0.22, 0.8, 0.1, 0.2)),
        _part("Car", "Tier", ("ellipse", 0.78, 0.8, 0.1, 0.2)),
        _part("Car", "Body", ("poly", 0.0, 0.42, 0.25, 0.4, 0.35, 0.1, 0.7, 0.1, 0.8, 0.4, 1.0, 0.45, 1.0, 0.85,
                              0.0, 0.85)),
    )),
    "Bicycle": (1.6, (
        _part("Bicycle", "Seat", ("rect", 0.3, 0.14, 0.46, 0.24), presence=0.9),
        _part("Bicycle", "Head", ("rect", 0.64, 0.04, 0.8, 0.36)),
        _part("Bicycle", "Tier", ("ellipse", 0.2, 0.7, 0.19, 0.3)),
        _part("Bicycle", "Tier", ("ellipse", 0.8, 0.7, 0.19, 0.3)),
        _part("Bicycle", "Body", ("poly", 0.2, 0.7, 0.36, 0.24, 0.72, 0.24, 0.8, 0.7)),
    )),
    "Boat": (1.5, (
        _part("Boat", "Sail", ("poly", 0.45, 0.0, 0.45, 0.58, 0.88, 0.58), presence=0.6),
        _part("Boat", "Body", ("poly", 0.0, 0.58, 1.0, 0.58, 0.85, 1.0, 0.15, 1.0)),
    )),
    "Aeroplane": (2.0, (
        _part("Aeroplane", "Head", ("ellipse", 0.89, 0.5, 0.11, 0.17)),
        _part("Aeroplane", "Engine", ("ellipse", 0.5, 0.7, 0.06, 0.07), presence=0.8),
        _part("Aeroplane", "Wing", ("poly", 0.35, 0.55, 0.62, 0.55, 0.45, 1.0, 0.33, 1.0)),
        _part("Aeroplane", "Tail", ("poly", 0.0, 0.08, 0.12, 0.08, 0.2, 0.5, 0.0, 0.5)),
        _part("Aeroplane", "Body", ("ellipse", 0.5, 0.5, 0.46, 0.13)),
    )),
    "Bottle": (0.45, (
        _part("Bottle", "Mouth", ("rect", 0.36, 0.0, 0.64, 0.12)),
        _part("Bottle", "Body", ("poly", 0.3, 0.12, 0.7, 0.12, 0.7, 0.3, 0.95, 0.45, 0.95, 1.0, 0.05, 1.0, 0.05, 0.45,
                                 0.3, 0.3)),
    )),
}
SUPERCATEGORIES = tuple(FINE_CLASSES)
_CLASS_COUNTS = np.array([FINE_CLASSES[s][0] for s in SUPERCATEGORIES], dtype=float)
SUPERCATEGORY_WEIGHTS = _CLASS_COUNTS / _CLASS_COUNTS.sum()

# images per split and image size (width, height); full mirrors the real Seg release's ~12K images
SCALE_PLAN = {
    "tiny": ({"train": 11, "val": 11, "test": 11}, (160, 120)),
    "small": ({"train": 150, "val": 150, "test": 150}, (320, 240)),
    "medium": ({"train": 1_500, "val": 150, "test": 150}, (320, 240)),
    "full": ({"train": 9000, "val": 1000, "test": 2000}, (320, 240)),
}
# ImageNet-style image numbers; a different range per split keeps file names unique across the release
FIRST_IMAGE_NUMBER = {"train": 10000, "val": 50000, "test": 70000}
SHORT_POLYGON_RATE = 0.005
PARALLEL_FROM = 400  # images in a split; below it a process pool costs more than it saves


def template_for(wnid: str) -> ObjectTemplate:
    supercategory = SUPERCATEGORY_OF[wnid]
    aspect, parts = SHAPES[supercategory]
    label = dict(FINE_CLASSES[supercategory][1])[wnid]
    return ObjectTemplate(category=wnid, parts=parts, aspect=aspect, label=label)


def _choose_class(rng: np.random.Generator, index: int) -> str:
    # The first images of every split visit each super-category once, so even a tiny release covers all
    # of them; later ones follow the real release's class counts.
    if index < len(SUPERCATEGORIES):
        supercategory = SUPERCATEGORIES[index]
    else:
        supercategory = SUPERCATEGORIES[int(rng.choice(len(SUPERCATEGORIES), p=SUPERCATEGORY_WEIGHTS))]
    classes = FINE_CLASSES[supercategory][1]
    return classes[int(rng.integers(len(classes)))][0]


@dataclass
class _Job:
    root: Path
    seed: int
    split: str
    width: int
    height: int
    images: bool


@dataclass
class _Drawn:
    file_name: str
    wnid: str
    drawn: DrawnImage
    short_polygons: list[list[float] | None]  # per drawn part: the short polygon appended to it, if any


def _draw_one(job: _Job, index: int) -> _Drawn:
    """Draw image ``index`` of a split and write its pixel files; the JSON files are the caller's."""
    rng = image_rng(job.seed, SOURCE, job.split, index)
    wnid = _choose_class(rng, index)
    drawn = draw_image([template_for(wnid)], rng, job.width, job.height)
    if not drawn.objects:
        raise AssertionError(f"template {wnid} drew no part")  # every template has parts of presence 1
    parts = drawn.objects[0].parts
    short: list[list[float] | None] = []
    for i, part in enumerate(parts):
        # the first part of each split's first image always gets one, so every release has some
        if (index == 0 and i == 0) or rng.random() < SHORT_POLYGON_RATE:
            n_points = 1 + int(rng.integers(2))
            short.append(part.polygons[0][: 2 * n_points])
        else:
            short.append(None)
    stem = f"{wnid}_{FIRST_IMAGE_NUMBER[job.split] + index}"
    annotations = job.root / "annotations"
    part_map = label_map(drawn, lambda obj, part: CATEGORY_ID[part.name], PART_BACKGROUND, np.uint8)
    whole_map = np.where(part_map == PART_BACKGROUND, WHOLE_BACKGROUND, FINE_INDEX[wnid]).astype(np.uint8)
    write_png(annotations / job.split / f"{stem}.png", part_map)
    write_png(annotations / f"{job.split}_whole" / f"{stem}.png", whole_map)
    size = {"imgHeight": job.height, "imgWidth": job.width}
    write_json(annotations / job.split / f"{stem}.json", size)
    write_json(annotations / f"{job.split}_whole" / f"{stem}.json", size)
    if job.images:
        # rendering draws from the same stream last, so skipping it never changes the annotations
        write_jpeg(job.root / "images" / job.split / f"{stem}.JPEG", render(drawn, rng))
    return _Drawn(file_name=f"{stem}.JPEG", wnid=wnid, drawn=drawn, short_polygons=short)


def _draw_chunk(job: _Job, indices: range) -> list[_Drawn]:
    return [_draw_one(job, i) for i in indices]


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _draw_split(job: _Job, count: int) -> list[_Drawn]:
    """Every image of a split, in index order whether drawn here or in a pool (each has its own stream)."""
    workers = min(_usable_cpus(), 16)
    if count < PARALLEL_FROM or workers < 2:
        return _draw_chunk(job, range(count))
    chunk = 100
    starts = range(0, count, chunk)
    # fork where there is one: spawn re-runs the caller's __main__, which breaks scripts without a main guard
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        chunks = pool.map(_draw_chunk, [job] * len(starts), [range(s, min(s + chunk, count)) for s in starts])
        return [drawn for part in chunks for drawn in part]


def _bbox(polygons: list[list[float]]) -> list[float]:
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    return [round(min(xs), 2), round(min(ys), 2), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]


def _whole_categories() -> list[dict]:
    return [{"id": FINE_INDEX[wnid], "name": wnid, "supercategory": SUPERCATEGORY_OF[wnid]} for wnid in WNIDS_SORTED]


def write(root: Path, *, scale: str, seed: int, images: bool) -> list[dict]:
    """Write the release under ``root`` and return the drawn record."""
    counts, (width, height) = SCALE_PLAN[scale]
    record: list[dict] = []
    for split in SPLITS:
        job = _Job(root=root, seed=seed, split=split, width=width, height=height, images=images)
        coco_images, part_annotations, whole_annotations = [], [], []
        for index, item in enumerate(drawing(_draw_split(job, counts[split]), counts[split], f"PartImageNet {split}")):
            image_id = index + 1
            coco_images.append({"id": image_id, "file_name": item.file_name, "width": width, "height": height})
            obj = item.drawn.objects[0]
            short_record = []
            for part_index, (part, short) in enumerate(zip(obj.parts, item.short_polygons)):
                annotation_id = len(part_annotations) + 1
                segmentation = part.polygons + ([short] if short is not None else [])
                if short is not None:
                    short_record.append({"annotation_id": annotation_id, "part_index": part_index,
                                         "name": part.name, "points": len(short) // 2})
                part_annotations.append({
                    "id": annotation_id, "image_id": image_id, "category_id": CATEGORY_ID[part.name],
                    "bbox": _bbox(part.polygons), "area": float(masks.area(part.polygon_mask)), "iscrowd": 0,
                    "segmentation": segmentation})
            whole_mask = masks.from_polygons(obj.polygons, height, width)
            whole_annotations.append({
                "id": image_id, "image_id": image_id, "category_id": FINE_INDEX[item.wnid],
                "bbox": _bbox(obj.polygons), "area": float(masks.area(whole_mask)), "iscrowd": 0,
                "segmentation": obj.polygons})
            record.append(drawn_entry(split, item.file_name, item.drawn, wnid=item.wnid, image_id=image_id,
                                      short_polygons=short_record))
        write_json(root / "annotations" / split / f"{split}.json",
                   {"images": coco_images, "annotations": part_annotations, "categories": CATEGORIES})
        write_json(root / "annotations" / f"{split}_whole" / f"{split}.json",
                   {"images": coco_images, "annotations": whole_annotations, "categories": _whole_categories()})
    return record
