"""Synthetic PACO-LVIS: one LVIS-style JSON per split, objects and their parts in one annotation list.

Written as ``paco_lvis_v1.zip`` unpacks, next to the COCO 2017 images it points at (docs/sources.md)::

    ROOT/annotations/paco_lvis_v1_{train,val,test}.json
    COCO/train2017/<id:012d>.jpg      images of PACO train and val (val was carved out of LVIS train)
    COCO/val2017/<id:012d>.jpg        images of PACO test (the original LVIS val)

The quirks a reader must handle are all present:

- object categories carry LVIS disambiguators (``car_(automobile)``, ``glass_(drink_container)``);
  part categories are ``object:part`` with ids from 2000 and the bare part name as ``synset``;
  part names use underscores (``back_cover``) and keep PACO's oddities (``steeringwheel``);
- a part annotation names its object through ``obj_ann_id`` (an object's is its own id); all object
  annotations come first and the parts after them, as if parts were added to LVIS objects later;
- one annotation per (object, part name): a chair's legs are one mask, as in PACO;
- ``ball`` has no parts; part names recur across objects (leg, handle, wheel, base, body, ...);
  parts are sometimes absent, and a few fall below the 2% area filter;
- segmentation is compressed RLE, with a few polygons and uncompressed RLEs (which real-world loaders
  accept) and a few empty lists (which loaders skip);
- about one ``file_name`` in ten has no ``train2017/`` / ``val2017/`` folder.

The drawn record has one entry per image with ``image_id`` and ``file_name`` as the reader must yield
them (``paco_lvis:<id>``, ``train2017/<id>.jpg``), each object's ``annotation_id``, and one part per
part name; a ball's outline is not listed as a part.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from mixedparts import masks
from mixedparts.sources.paco import IMAGE_FOLDER_OF_SPLIT, SOURCE, SPLIT_FILE
from mixedparts.synth.common import drawing, drawn_entry, image_rng, write_jpeg, write_json
from mixedparts.synth.draw import (DrawnImage, DrawnObject, DrawnPart, ObjectTemplate, PartSpec, Shape, draw_image,
                                   render)

SPLITS = ("train", "val", "test")
SCALE_SIZES = {
    "tiny": ({"train": 10, "val": 10, "test": 10}, (160, 120)),
    "small": ({"train": 150, "val": 150, "test": 150}, (320, 240)),
    "medium": ({"train": 1_500, "val": 150, "test": 150}, (320, 240)),
    "full": ({"train": 22_000, "val": 1_200, "test": 4_800}, (320, 240)),
}
PAIR_SHARE = 0.85  # of images: two upright objects side by side; the others hold one wide object
BARE_FILE_NAME_EVERY = 10  # images 7, 17, 27, ... of a split: even a tiny release has one per split
POLYGON_SHARE, UNCOMPRESSED_SHARE = 0.04, 0.04  # of annotations; the rest are compressed RLE
EMPTY_PART_SHARE, EMPTY_OBJECT_SHARE = 0.03, 0.01  # of images: an extra annotation with segmentation []
PARALLEL_FROM = 500  # images; below this, starting worker processes costs more than it saves
FIRST_PART_CATEGORY_ID = 2000
LVIS_CATEGORY_COUNT = 1203

# A template part only shaping its object: PACO annotates no parts for ball and napkin.
OUTLINE = "(outline)"


def _rect(x0, y0, x1, y1) -> Shape:
    return ("rect", x0, y0, x1, y1)


def _ellipse(cx, cy, rx, ry) -> Shape:
    return ("ellipse", cx, cy, rx, ry)


def _poly(*xy) -> Shape:
    return ("poly", *xy)


def _mirrored(shape: Shape) -> tuple[Shape, Shape]:
    """A rectangle and its mirror image about the box's vertical centre line (two legs, two arms)."""
    _, x0, y0, x1, y1 = shape
    return shape, _rect(1 - x1, y0, 1 - x0, y1)


def _part(name: str, *pieces: Shape, presence: float = 1.0) -> tuple[PartSpec, ...]:
    """One PACO part; several pieces (a chair's legs) become one mask, each piece present independently."""
    return tuple(PartSpec(name=name, shape=piece, presence=presence, label=name.replace("_", " "))
                 for piece in pieces)


def _object(category: str, label: str, aspect: float, *parts: tuple[PartSpec, ...]) -> ObjectTemplate:
    """Parts front to back: earlier parts hide later ones."""
    return ObjectTemplate(category=category, parts=tuple(spec for part in parts for spec in part), aspect=aspect,
                          label=label)


# Sizes follow from draw_image: a wide object (aspect ~1.4) fills an image alone and covers ~60% of
# it, so a part of 4% of the object's box is about 2.4% of the image; two upright objects (aspect
# ~0.66) share an image at ~35% each, so their parts need ~8% of the box. Most parts are that big;
# the small ones (eyes, headlights, buttons) are those the 2% area filter removes.
TEMPLATES = (
    _object("car_(automobile)", "car", 1.4,
            _part("wheel", _ellipse(0.19, 0.8, 0.11, 0.18), _ellipse(0.81, 0.8, 0.11, 0.18)),
            _part("headlight", _rect(0.9, 0.36, 1.0, 0.5)),
            _part("taillight", _rect(0.0, 0.36, 0.06, 0.5)),
            _part("steeringwheel", _ellipse(0.58, 0.26, 0.04, 0.07), presence=0.5),
            _part("antenna", _rect(0.3, 0.0, 0.32, 0.08), presence=0.3),
            _part("window", _rect(0.26, 0.12, 0.45, 0.36), _rect(0.47, 0.12, 0.64, 0.36)),
            _part("windshield", _poly(0.64, 0.1, 0.72, 0.1, 0.88, 0.36, 0.64, 0.36)),
            _part("roof", _rect(0.24, 0.02, 0.72, 0.12)),
            _part("door", _rect(0.26, 0.36, 0.45, 0.66), _rect(0.45, 0.36, 0.64, 0.66)),
            _part("hood", _rect(0.64, 0.36, 0.9, 0.54)),
            _part("trunk", _rect(0.06, 0.3, 0.26, 0.5), presence=0.8),
            _part("bumper", _rect(0.0, 0.5, 0.08, 0.78), _rect(0.92, 0.5, 1.0, 0.78)),
            _part("fender", _rect(0.08, 0.5, 0.26, 0.62), _rect(0.64, 0.54, 0.92, 0.62)),
            _part("runningboard", _rect(0.3, 0.66, 0.7, 0.76))),
    _object("dog", "dog", 1.33,
            _part("eye", _ellipse(0.12, 0.16, 0.025, 0.035)),
            _part("nose", _ellipse(0.03, 0.28, 0.04, 0.05)),
            _part("mouth", _rect(0.02, 0.34, 0.2, 0.44), presence=0.4),
            _part("ear", _poly(0.12, 0.0, 0.36, 0.0, 0.3, 0.26)),
            _part("head", _ellipse(0.16, 0.24, 0.16, 0.2)),
            _part("neck", _rect(0.24, 0.26, 0.4, 0.5)),
            _part("tail", _poly(0.84, 0.36, 1.0, 0.02, 1.0, 0.24, 0.9, 0.5), presence=0.9),
            _part("body", _ellipse(0.58, 0.46, 0.3, 0.2)),
            _part("leg", *_mirrored(_rect(0.3, 0.58, 0.38, 0.86)), *_mirrored(_rect(0.42, 0.58, 0.5, 0.86))),
            _part("foot", *_mirrored(_rect(0.28, 0.86, 0.4, 0.98)), *_mirrored(_rect(0.41, 0.86, 0.53, 0.98)))),
    _object("table", "table", 1.33,
            _part("drawer", _rect(0.38, 0.16, 0.62, 0.3), presence=0.6),
            _part("top", _rect(0.0, 0.0, 1.0, 0.1)),
            _part("rim", _rect(0.0, 0.1, 1.0, 0.16)),
            _part("apron", _rect(0.04, 0.16, 0.96, 0.3)),
            _part("wheel", _ellipse(0.09, 0.95, 0.06, 0.05), _ellipse(0.91, 0.95, 0.06, 0.05), presence=0.3),
            _part("leg", *_mirrored(_rect(0.04, 0.3, 0.14, 0.92)), *_mirrored(_rect(0.22, 0.3, 0.3, 0.84))),
            _part("inner_body", _rect(0.3, 0.3, 0.7, 0.52), presence=0.5),
            _part("shelf", _rect(0.14, 0.52, 0.86, 0.62), presence=0.5),
            _part("stretcher", _rect(0.14, 0.76, 0.86, 0.82), presence=0.6)),
    _object("bench", "bench", 1.5,
            _part("arm", *_mirrored(_rect(0.0, 0.26, 0.08, 0.52)), presence=0.7),
            _part("back", _rect(0.04, 0.0, 0.96, 0.3)),
            _part("seat", _rect(0.0, 0.52, 1.0, 0.64)),
            _part("leg", *_mirrored(_rect(0.04, 0.64, 0.12, 1.0)), *_mirrored(_rect(0.3, 0.64, 0.36, 0.94))),
            _part("stretcher", _rect(0.12, 0.82, 0.88, 0.88), presence=0.6)),
    _object("chair", "chair", 0.66,
            _part("arm", *_mirrored(_rect(0.0, 0.3, 0.1, 0.46)), presence=0.5),
            _part("rail", _rect(0.04, 0.0, 0.96, 0.1)),
            _part("back", _rect(0.18, 0.1, 0.82, 0.3)),
            _part("stile", *_mirrored(_rect(0.04, 0.1, 0.18, 0.46))),
            _part("spindle", _rect(0.26, 0.3, 0.74, 0.46), presence=0.6),
            _part("seat", _rect(0.0, 0.46, 1.0, 0.58)),
            _part("apron", _rect(0.06, 0.58, 0.94, 0.68)),
            _part("leg", *_mirrored(_rect(0.06, 0.68, 0.22, 1.0))),
            _part("stretcher", _rect(0.22, 0.76, 0.78, 0.9), presence=0.7)),
    _object("mouse_(computer_equipment)", "mouse", 0.66,
            _part("wheel", _rect(0.38, 0.02, 0.62, 0.36)),
            _part("left_button", _rect(0.06, 0.0, 0.4, 0.36)),
            _part("right_button", _rect(0.6, 0.0, 0.94, 0.36)),
            _part("side_button", _rect(0.0, 0.4, 0.06, 0.6), presence=0.5),
            _part("logo", _ellipse(0.5, 0.56, 0.26, 0.1), presence=0.5),
            _part("back_cover", _rect(0.06, 0.36, 0.94, 0.68)),
            _part("body", _rect(0.0, 0.0, 0.06, 1.0), _rect(0.94, 0.0, 1.0, 1.0)),
            _part("base", _rect(0.06, 0.68, 0.94, 0.86)),
            _part("bottom", _rect(0.06, 0.86, 0.94, 1.0))),
    _object("mug", "mug", 0.7,
            _part("handle", _poly(0.78, 0.18, 1.0, 0.24, 1.0, 0.66, 0.78, 0.72)),
            _part("inner_body", _ellipse(0.39, 0.09, 0.35, 0.07)),
            _part("rim", _rect(0.0, 0.0, 0.78, 0.2)),
            _part("drawing", _ellipse(0.39, 0.42, 0.2, 0.14), presence=0.5),
            _part("body", _rect(0.0, 0.2, 0.78, 0.72)),
            _part("base", _rect(0.0, 0.72, 0.78, 0.88)),
            _part("bottom", _rect(0.04, 0.88, 0.74, 1.0))),
    _object("glass_(drink_container)", "glass", 0.6,
            _part("rim", _rect(0.0, 0.0, 1.0, 0.1)),
            _part("inner_body", _rect(0.04, 0.1, 0.96, 0.26)),
            _part("body", _poly(0.0, 0.26, 1.0, 0.26, 0.86, 0.6, 0.14, 0.6)),
            _part("bottom", _rect(0.14, 0.6, 0.86, 0.7)),
            _part("stem", _rect(0.38, 0.7, 0.62, 0.88), presence=0.5),
            _part("base", _rect(0.06, 0.88, 0.94, 1.0))),
    _object("kettle", "kettle", 0.75,
            _part("knob", _ellipse(0.46, 0.07, 0.07, 0.05)),
            _part("handle", _rect(0.12, 0.0, 0.8, 0.14)),
            _part("lid", _ellipse(0.46, 0.23, 0.32, 0.1)),
            _part("spout", _poly(0.0, 0.14, 0.26, 0.36, 0.26, 0.72, 0.08, 0.52)),
            _part("switch", _rect(0.8, 0.62, 1.0, 0.8), presence=0.6),
            _part("body", _ellipse(0.56, 0.58, 0.36, 0.32)),
            _part("base", _rect(0.12, 0.86, 0.92, 1.0))),
    _object("bottle", "bottle", 0.6,
            _part("cap", _rect(0.34, 0.0, 0.66, 0.08)),
            _part("neck", _rect(0.32, 0.08, 0.68, 0.3)),
            _part("shoulder", _poly(0.32, 0.3, 0.68, 0.3, 1.0, 0.44, 0.0, 0.44)),
            _part("label", _rect(0.0, 0.5, 1.0, 0.7), presence=0.7),
            _part("body", _rect(0.0, 0.44, 1.0, 0.86)),
            _part("heel", _rect(0.0, 0.86, 1.0, 0.94)),
            _part("bottom", _rect(0.04, 0.94, 0.96, 1.0))),
    _object("ball", "ball", 1.0, _part(OUTLINE, _ellipse(0.5, 0.5, 0.5, 0.5))),
)
WIDE = tuple(t for t in TEMPLATES if t.aspect > 1.0)
UPRIGHT = tuple(t for t in TEMPLATES if t.aspect <= 1.0)
PARTLESS_WEIGHT = 0.25  # balls are rarer than the rest, which keeps the part count per image up


TEMPLATE_OF = {t.category: t for t in TEMPLATES}


def _part_names(template: ObjectTemplate) -> list[str]:
    return list(dict.fromkeys(spec.name for spec in template.parts if spec.name != OUTLINE))


# Ids as in the release: objects keep LVIS ids, which follow the alphabetical order of the 1,203
# LVIS categories; object-parts count up from 2000 in the order of their "object:part" names.
_OBJECT_NAMES = sorted(t.category for t in TEMPLATES)
OBJECT_IDS = {name: 1 + rank * (LVIS_CATEGORY_COUNT - 1) // (len(_OBJECT_NAMES) - 1)
              for rank, name in enumerate(_OBJECT_NAMES)}
PART_IDS = {name: FIRST_PART_CATEGORY_ID + rank for rank, name in
            enumerate(sorted(f"{t.category}:{p}" for t in TEMPLATES for p in _part_names(t)))}
PART_VOCABULARY = sorted({p for t in TEMPLATES for p in _part_names(t)})
ATTRIBUTE_TYPES = {
    "color": ("black", "white", "red", "blue", "green", "yellow", "brown", "grey"),
    "pattern_marking": ("plain", "striped", "dotted", "text"),
    "material": ("wood", "metal", "plastic", "fabric", "ceramic", "glass"),
    "transparency": ("opaque", "translucent", "transparent"),
}
ATTRIBUTES = [(kind, name) for kind, names in ATTRIBUTE_TYPES.items() for name in names]  # id = index
ATTRIBUTE_IDS = {kind: [i for i, (k, _) in enumerate(ATTRIBUTES) if k == kind] for kind in ATTRIBUTE_TYPES}
ATTRIBUTE_KNOWN_SHARE = 0.7  # of annotations whose attribute of a given kind is annotated (else unknown_<kind>)
LICENSE_COUNT = 8  # as COCO


def image_id_of(split: str, index: int) -> int:
    """COCO-style image ids, distinct across the three splits."""
    return (SPLITS.index(split) + 1) * 1_000_000 + index + 1


def file_names(split: str, index: int) -> tuple[str, str]:
    """(relative to the COCO root, as the reader must yield it; as the JSON spells it)."""
    full = f"{IMAGE_FOLDER_OF_SPLIT[split]}/{image_id_of(split, index):012d}.jpg"
    bare = index % BARE_FILE_NAME_EVERY == 7
    return full, full.split("/", 1)[1] if bare else full


def _pick(rng: np.random.Generator, templates: tuple[ObjectTemplate, ...]) -> ObjectTemplate:
    weights = np.array([1.0 if _part_names(t) else PARTLESS_WEIGHT for t in templates])
    return templates[int(rng.choice(len(templates), p=weights / weights.sum()))]


def _choose_templates(rng: np.random.Generator) -> list[ObjectTemplate]:
    if rng.random() < PAIR_SHARE:
        return [_pick(rng, UPRIGHT), _pick(rng, UPRIGHT)]
    return [_pick(rng, WIDE)]


def _one_mask_per_part(obj: DrawnObject) -> DrawnObject:
    """PACO annotates each part name once per object, so pieces (four legs) merge; outlines go."""
    pieces: dict[str, list[DrawnPart]] = {}
    for part in obj.parts:
        if part.name != OUTLINE:
            pieces.setdefault(part.name, []).append(part)
    parts = []
    for name, group in pieces.items():
        if len(group) == 1:
            parts.append(group[0])
            continue
        mask = masks.union([p.mask for p in group])
        parts.append(DrawnPart(name=name, label=group[0].label, polygons=[q for p in group for q in p.polygons],
                               polygon_mask=masks.union([p.polygon_mask for p in group]), mask=mask,
                               area=masks.area(mask)))
    return dataclasses.replace(obj, parts=parts)


def _segmentation(mask: masks.Rle, polygons: list[list[float]], choice: float) -> object:
    """The mask in one of the COCO encodings; polygons only where they rasterize to exactly this mask."""
    if choice < POLYGON_SHARE:
        if polygons and masks.from_polygons(polygons, *mask["size"])["counts"] == mask["counts"]:
            return polygons
    elif choice < POLYGON_SHARE + UNCOMPRESSED_SHARE:
        return {"size": list(mask["size"]), "counts": masks.run_lengths(mask["counts"])}
    return {"size": list(mask["size"]), "counts": mask["counts"]}


def _attributes(rng: np.random.Generator) -> dict:
    attribute_ids, unknown = [], {}
    for kind, ids in ATTRIBUTE_IDS.items():
        known = rng.random() < ATTRIBUTE_KNOWN_SHARE
        unknown[f"unknown_{kind}"] = int(not known)
        if known:
            attribute_ids.append(ids[int(rng.integers(len(ids)))])
    colours = [a for a in attribute_ids if a in ATTRIBUTE_IDS["color"]]
    return {"attribute_ids": attribute_ids, "dom_color_ids": colours, **unknown}


def _annotation(category_id: int, mask: masks.Rle | None, polygons: list[list[float]],
                rng: np.random.Generator) -> dict:
    """An annotation without its ids; ``mask`` None writes the empty segmentation real files contain."""
    if mask is None:
        bbox, area, segmentation = [0.0, 0.0, 0.0, 0.0], 0.0, []
    else:
        coco = {"size": mask["size"], "counts": mask["counts"].encode("ascii")}
        bbox = [float(v) for v in mask_utils.toBbox(coco)]
        area = float(masks.area(mask))
        segmentation = _segmentation(mask, polygons, float(rng.random()))
    return {"category_id": category_id, "bbox": bbox, "area": area, "segmentation": segmentation,
            **_attributes(rng)}


@dataclass(frozen=True)
class _Job:
    coco_root: Path
    split: str
    index: int
    seed: int
    size: tuple[int, int]
    images: bool


@dataclass
class _Stub:
    """One object annotation and its parts, before ids are given out; ``drawn`` indexes the record."""
    annotation: dict
    parts: list[dict]
    drawn: int | None


def _draw(job: _Job) -> tuple[dict, list[_Stub], dict]:
    """One image: writes its pixels; returns its JSON image, its annotations (no ids yet) and its record."""
    width, height = job.size
    rng = image_rng(job.seed, SOURCE, job.split, job.index)
    drawn = draw_image(_choose_templates(rng), rng, width, height)
    full_name, written_name = file_names(job.split, job.index)
    if job.images:
        pixels = render(drawn, image_rng(job.seed, f"{SOURCE}/pixels", job.split, job.index))
        write_jpeg(job.coco_root / full_name, pixels)
    # A stream of its own, so that the annotation files do not depend on whether pixels were drawn.
    quirks = image_rng(job.seed, f"{SOURCE}/annotations", job.split, job.index)

    objects = [_one_mask_per_part(obj) for obj in drawn.objects]
    stubs = []
    for k, obj in enumerate(objects):
        parts = [_annotation(PART_IDS[f"{obj.category}:{p.name}"], p.mask, p.polygons, quirks) for p in obj.parts]
        stubs.append(_Stub(_annotation(OBJECT_IDS[obj.category], obj.mask, obj.polygons, quirks), parts, k))
    _add_empty_annotations(stubs, [obj.category for obj in objects], quirks)

    image_id = image_id_of(job.split, job.index)
    image = {"id": image_id, "file_name": written_name, "width": width, "height": height,
             "license": int(quirks.integers(1, LICENSE_COUNT + 1)),
             **_federated_lists(sorted({OBJECT_IDS[obj.category] for obj in objects}), quirks)}
    entry = drawn_entry(job.split, full_name, DrawnImage(width=width, height=height, objects=objects),
                        image_id=f"{SOURCE}:{image_id}")
    return image, stubs, entry


def _add_empty_annotations(stubs: list[_Stub], categories: list[str], rng: np.random.Generator) -> None:
    """The empty segmentations real files contain: now and then a part, or a whole object."""
    with_parts = [stub for stub in stubs if _part_names(TEMPLATE_OF[categories[stub.drawn]])]
    if with_parts and rng.random() < EMPTY_PART_SHARE:
        stub = with_parts[int(rng.integers(len(with_parts)))]
        category = categories[stub.drawn]
        names = _part_names(TEMPLATE_OF[category])
        part_id = PART_IDS[f"{category}:{names[int(rng.integers(len(names)))]}"]
        stub.parts.append(_annotation(part_id, None, [], rng))
    if rng.random() < EMPTY_OBJECT_SHARE:
        object_id = OBJECT_IDS[_OBJECT_NAMES[int(rng.integers(len(_OBJECT_NAMES)))]]
        stubs.append(_Stub(_annotation(object_id, None, [], rng), [], None))


def _federated_lists(present: list[int], rng: np.random.Generator) -> dict:
    """LVIS's per-image category lists (and PACO's attribute variants); no reader of parts needs them."""
    absent = [i for i in OBJECT_IDS.values() if i not in present]
    negatives = rng.choice(absent, int(rng.integers(0, 4)), replace=False)
    return {"neg_category_ids": sorted(int(i) for i in negatives),
            "not_exhaustive_category_ids": [i for i in present if rng.random() < 0.1],
            "neg_category_ids_attrs": [i for i in present if rng.random() < 0.1],
            "not_exhaustive_category_ids_attrs": [i for i in present if rng.random() < 0.2]}


def _draw_all(jobs: list[_Job]):
    """Results in job order; each image has its own random streams, so worker count never changes bytes."""
    workers = min(len(os.sched_getaffinity(0)), 8)
    if len(jobs) < PARALLEL_FROM or workers < 2:
        yield from map(_draw, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        yield from pool.map(_draw, jobs, chunksize=64)


def _categories(annotations: list[dict]) -> list[dict]:
    """All object and object-part categories, counted over this split as LVIS counts them."""
    images_of: dict[int, set] = {}
    instances = Counter()
    for annotation in annotations:
        images_of.setdefault(annotation["category_id"], set()).add(annotation["image_id"])
        instances[annotation["category_id"]] += 1

    def counts(category_id: int) -> dict:
        image_count = len(images_of.get(category_id, ()))
        frequency = "r" if image_count <= 10 else "c" if image_count <= 100 else "f"  # the LVIS rule
        return {"frequency": frequency, "image_count": image_count, "instance_count": instances[category_id]}

    labels = {t.category: t.label for t in TEMPLATES}
    objects = [{"id": i, "name": name, "supercategory": "OBJECT", "synset": f"{labels[name].replace(' ', '_')}.n.01",
                **counts(i)} for name, i in OBJECT_IDS.items()]
    parts = [{"id": i, "name": name, "supercategory": "PART", "synset": name.split(":", 1)[1], **counts(i)}
             for name, i in PART_IDS.items()]
    return sorted(objects, key=lambda c: c["id"]) + parts


def _joint_object_attributes() -> list[dict]:
    """Every (object, attribute) pair, as the eval API reads them (the real entries' fields are unverified)."""
    pairs = [(name, object_id, attribute_id) for name, object_id in sorted(OBJECT_IDS.items())
             for attribute_id in range(len(ATTRIBUTES))]
    return [{"id": k, "name": f"{name}:{ATTRIBUTES[attribute_id][1]}", "obj": object_id, "attr": attribute_id}
            for k, (name, object_id, attribute_id) in enumerate(pairs)]


def _queries(objects: list[dict], parts: list[dict], image_ids: list[int]) -> list[dict]:
    """PACO's instance queries (test only): level-1 "<object>" and "<object> with <part>" queries."""
    labels = {OBJECT_IDS[t.category]: t.label for t in TEMPLATES}
    images_with: dict[int, set] = {}
    positives: dict[tuple, list[int]] = {}
    objects = [obj for obj in objects if obj["segmentation"]]
    parts = [part for part in parts if part["segmentation"]]
    for obj in objects:
        images_with.setdefault(obj["category_id"], set()).add(obj["image_id"])
        positives.setdefault((obj["category_id"], None), []).append(obj["id"])
    category_of = {obj["id"]: obj["category_id"] for obj in objects}
    for part in parts:
        positives.setdefault((category_of[part["obj_ann_id"]], part["category_id"]), []).append(part["obj_ann_id"])
    part_names = {i: name.split(":", 1)[1].replace("_", " ") for name, i in PART_IDS.items()}
    queries = []
    for (object_id, part_id), ann_ids in sorted(positives.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        thing = ["obj", object_id] if part_id is None else ["part", part_id]
        text = labels[object_id] if part_id is None else f"{labels[object_id]} with a {part_names[part_id]}"
        queries.append({"id": len(queries), "query_string": text, "level": 1,
                        "structured_query": [object_id, thing], "pos_ann_ids": sorted(set(ann_ids)),
                        "neg_ann_ids": [],
                        "neg_im_ids": [i for i in image_ids if i not in images_with[object_id]][:5]})
    return queries


def write(root: Path, *, coco_images: Path, scale: str, seed: int, images: bool) -> list[dict]:
    """Write the release under ``root`` and its images under ``coco_images``; return the drawn record."""
    counts, size = SCALE_SIZES[scale]
    record: list[dict] = []
    next_id = 1  # annotation ids are unique across the three files, as in the release
    for split in SPLITS:
        jobs = [_Job(coco_images, split, index, seed, size, images) for index in range(counts[split])]
        image_list, object_list, pending_parts = [], [], []
        for image, stubs, entry in drawing(_draw_all(jobs), len(jobs), f"PACO-LVIS {split}"):
            image_list.append(image)
            for stub in stubs:
                obj = {"id": next_id, "image_id": image["id"], **stub.annotation, "obj_ann_id": next_id}
                object_list.append(obj)
                pending_parts += [(obj, part) for part in stub.parts]
                if stub.drawn is not None:
                    entry["objects"][stub.drawn]["annotation_id"] = str(next_id)
                next_id += 1
            record.append(entry)
        part_list = []
        for obj, part in pending_parts:
            part_list.append({"id": next_id, "image_id": obj["image_id"], **part, "obj_ann_id": obj["id"]})
            next_id += 1
        annotations = object_list + part_list
        payload = {
            "info": {"description": "PACO-LVIS v1 (synthetic, drawn by mixedparts)", "version": "1.0",
                     "year": 2023},
            "licenses": [{"id": i, "name": f"licence {i}", "url": ""} for i in range(1, LICENSE_COUNT + 1)],
            "images": image_list,
            "annotations": annotations,
            "categories": _categories(annotations),
            "part_categories": [{"id": i, "name": name, "supercategory": "PART"}
                                for i, name in enumerate(PART_VOCABULARY)],
            "attributes": [{"id": i, "name": name, "supercategory": "ATTR", "type": kind}
                           for i, (kind, name) in enumerate(ATTRIBUTES)],
            "attr_type_to_attr_idxs": ATTRIBUTE_IDS,
            "joint_obj_attribute_categories": _joint_object_attributes(),
        }
        if split == "test":
            payload["queries"] = _queries(object_list, part_list, [i["id"] for i in image_list])
        write_json(root / "annotations" / SPLIT_FILE.format(split=split), payload)
    return record
