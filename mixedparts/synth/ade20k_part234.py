"""Synthetic ADE20K-Part-234 (OV-PARTS layout): COCO object instances plus 16-bit part label maps.

Written as the real release is unpacked::

    ROOT/images/{training,validation}/ADE_train_%08d.jpg, ADE_val_%08d.jpg, a few ADE_frame_%08d.jpg
    ROOT/annotations_detectron2_part/{training,validation}/<stem>.png   uint16, part id 0-233, 65535 = none
    ROOT/ade20k_instance_{train,val}.json                               category_id = index into the 44 objects
    ROOT/train_16shot.json                                              a few-shot subset of the training file

The quirks a reader must handle are all present: part id 0 ("person's arm") is a real part, some
object pixels carry no part (a car's body, a bed's mattress), part names repeat across objects
("leg" on chairs, tables, beds, people...), parts are sometimes absent, a few are below the 2% area
filter, and object masks come as compressed RLE, uncompressed RLE or polygons.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from mixedparts import masks
from mixedparts.sources.ade20k_part234 import (NO_PART_16BIT, PART_MAP_FOLDER, SOURCE, SPLIT_FILE_SUFFIX,
                                              class_lists)
from mixedparts.synth.common import drawing, drawn_entry, image_rng, write_jpeg, write_json, write_png
from mixedparts.synth.draw import DrawnImage, DrawnObject, DrawnPart, ObjectTemplate, PartSpec, Shape, draw_image, render

# images per split and image size (width, height)
SCALE_SIZES = {
    "tiny": ({"training": 10, "validation": 10}, (160, 120)),
    "small": ({"training": 150, "validation": 150}, (320, 240)),
    "medium": ({"training": 1_500, "validation": 150}, (320, 240)),
    "full": ({"training": 4800, "validation": 700}, (320, 240)),
}
OBJECTS_PER_IMAGE = ((1, 0.2), (2, 0.4), (3, 0.4))
FRAME_EVERY, FRAME_OFFSET = 37, 5  # every 37th image, from the 6th, is an ADE_frame_... video frame
SHOTS = 16
POLYGON_SHARE, UNCOMPRESSED_SHARE = 0.2, 0.1  # of object annotations; the rest are compressed RLE
PARALLEL_FROM = 500  # images; below this, starting worker processes costs more than it saves

CORE = ""  # a piece of an object that carries no part label: 65535 in the part map


@dataclass(frozen=True)
class Part:
    name: str  # the part as ADE20K-Part-234 names it after "'s ", or CORE
    pieces: tuple[Shape, ...]  # one or more shapes (two legs are one "leg" part in a semantic map)
    presence: float = 1.0


@dataclass(frozen=True)
class ObjectDesign:
    name: str  # one of the 44 objects
    aspect: float
    parts: tuple[Part, ...]  # front to back: earlier parts hide later ones
    weight: float = 1.0  # how often it is picked


def _rect(x0, y0, x1, y1) -> Shape:
    return ("rect", x0, y0, x1, y1)


def _ellipse(cx, cy, rx, ry) -> Shape:
    return ("ellipse", cx, cy, rx, ry)


def _pair(x0, y0, x1, y1) -> tuple[Shape, Shape]:
    """A rectangle and its mirror image about the box's vertical centre line (two legs, two arms)."""
    return _rect(x0, y0, x1, y1), _rect(1 - x1, y0, 1 - x0, y1)


DESIGNS = (
    ObjectDesign("person", 0.5, (
        Part("head", (_ellipse(0.5, 0.12, 0.26, 0.12),)),
        Part("neck", (_rect(0.38, 0.22, 0.62, 0.27),), 0.5),
        Part("hand", (_ellipse(0.12, 0.67, 0.12, 0.07), _ellipse(0.88, 0.67, 0.12, 0.07)), 0.6),
        Part("arm", _pair(0.0, 0.25, 0.24, 0.64)),
        Part("back", (_rect(0.24, 0.24, 0.76, 0.42),), 0.25),
        Part("torso", (_rect(0.24, 0.24, 0.76, 0.62),)),
        Part("foot", _pair(0.16, 0.9, 0.49, 1.0), 0.6),
        Part("leg", _pair(0.24, 0.62, 0.49, 0.92)),
    ), weight=2.0),
    ObjectDesign("chair", 0.75, (
        Part("arm", _pair(0.0, 0.3, 0.16, 0.5), 0.5),
        Part("seat cushion", (_rect(0.08, 0.4, 0.92, 0.5),), 0.35),
        Part("back", (_rect(0.12, 0.0, 0.88, 0.44),)),
        Part("seat", (_rect(0.04, 0.44, 0.96, 0.6),)),
        Part("apron", (_rect(0.08, 0.6, 0.92, 0.7),), 0.5),
        Part("stretcher", (_rect(0.18, 0.8, 0.82, 0.88),), 0.5),
        Part("leg", _pair(0.04, 0.58, 0.2, 1.0)),
    )),
    ObjectDesign("table", 1.4, (
        Part("top", (_rect(0.0, 0.0, 1.0, 0.22),)),
        Part("drawer", (_rect(0.3, 0.22, 0.7, 0.4),), 0.4),
        Part("apron", (_rect(0.04, 0.22, 0.96, 0.34),), 0.6),
        Part("shelf", (_rect(0.06, 0.66, 0.94, 0.78),), 0.6),
        Part("wheel", (_ellipse(0.1, 0.93, 0.1, 0.07), _ellipse(0.9, 0.93, 0.1, 0.07)), 0.2),
        Part("leg", _pair(0.02, 0.22, 0.18, 1.0)),
    )),
    ObjectDesign("bed", 1.6, (
        Part("headboard", (_rect(0.0, 0.0, 0.22, 0.8),)),
        Part("footboard", (_rect(0.8, 0.3, 1.0, 0.85),), 0.7),
        Part("side rail", (_rect(0.22, 0.55, 0.8, 0.78),)),
        Part("leg", (_rect(0.02, 0.8, 0.12, 1.0), _rect(0.88, 0.85, 0.98, 1.0)), 0.7),
        Part(CORE, (_rect(0.22, 0.3, 0.8, 0.55),)),  # the mattress: no part id
    )),
    ObjectDesign("sofa", 1.7, (
        Part("back pillow", (_rect(0.18, 0.12, 0.49, 0.45), _rect(0.51, 0.12, 0.82, 0.45)), 0.5),
        Part("seat cushion", (_rect(0.16, 0.45, 0.84, 0.62),)),
        Part("arm", _pair(0.0, 0.3, 0.16, 0.85)),
        Part("back", (_rect(0.08, 0.0, 0.92, 0.45),)),
        Part("seat base", (_rect(0.16, 0.62, 0.84, 0.85),)),
        Part("skirt", (_rect(0.04, 0.85, 0.96, 0.93),), 0.3),
        Part("leg", _pair(0.02, 0.85, 0.16, 1.0), 0.7),
    )),
    ObjectDesign("armchair", 1.0, (
        Part("back pillow", (_rect(0.25, 0.08, 0.75, 0.4),), 0.4),
        Part("seat cushion", (_rect(0.2, 0.44, 0.8, 0.58),), 0.5),
        Part("arm", _pair(0.0, 0.3, 0.2, 0.78)),
        Part("back", (_rect(0.1, 0.0, 0.9, 0.44),)),
        Part("seat", (_rect(0.2, 0.44, 0.8, 0.7),)),
        Part("apron", (_rect(0.06, 0.7, 0.94, 0.8),), 0.4),
        Part("leg", _pair(0.04, 0.78, 0.18, 1.0)),
    )),
    ObjectDesign("car", 2.0, (
        Part("wheel", (_ellipse(0.22, 0.8, 0.12, 0.2), _ellipse(0.78, 0.8, 0.12, 0.2))),
        Part("headlight", (_ellipse(0.95, 0.5, 0.05, 0.06),), 0.8),
        Part("license plate", (_rect(0.9, 0.62, 0.99, 0.7),), 0.5),
        Part("mirror", (_ellipse(0.64, 0.42, 0.05, 0.06),), 0.6),
        Part("window", (("poly", 0.3, 0.06, 0.62, 0.06, 0.75, 0.4, 0.2, 0.4),)),
        Part("door", (_rect(0.28, 0.4, 0.64, 0.76),)),
        Part("hood", (_rect(0.75, 0.36, 1.0, 0.56),)),
        Part("bumper", (_rect(0.0, 0.56, 0.1, 0.8), _rect(0.9, 0.56, 1.0, 0.8))),
        Part(CORE, (_rect(0.0, 0.38, 1.0, 0.8),)),  # the body panels: no part id
    )),
    ObjectDesign("bus", 2.4, (
        Part("wheel", (_ellipse(0.18, 0.84, 0.08, 0.16), _ellipse(0.82, 0.84, 0.08, 0.16))),
        Part("headlight", (_ellipse(0.96, 0.72, 0.035, 0.06),), 0.8),
        Part("mirror", (_rect(0.96, 0.15, 1.0, 0.32),), 0.5),
        Part("license plate", (_rect(0.42, 0.86, 0.56, 0.95),), 0.4),
        Part("door", (_rect(0.86, 0.22, 0.96, 0.86),)),
        Part("window", (_rect(0.04, 0.1, 0.3, 0.45), _rect(0.32, 0.1, 0.58, 0.45), _rect(0.6, 0.1, 0.84, 0.45))),
        Part("bumper", (_rect(0.0, 0.84, 1.0, 0.96),)),
        Part(CORE, (_rect(0.0, 0.0, 1.0, 0.85),)),  # the body: no part id
    )),
    ObjectDesign("lamp", 0.45, (
        Part("light source", (_ellipse(0.5, 0.42, 0.22, 0.08),), 0.5),
        Part("shade", (("poly", 0.2, 0.0, 0.8, 0.0, 1.0, 0.4, 0.0, 0.4),)),
        Part("column", (_rect(0.36, 0.4, 0.64, 0.86),)),
        Part("base", (_ellipse(0.5, 0.92, 0.5, 0.08),)),
        Part("cord", (_rect(0.64, 0.8, 0.98, 0.84),), 0.3),
    )),
    ObjectDesign("cabinet", 0.9, (
        Part("drawer", (_rect(0.08, 0.14, 0.92, 0.34),)),
        Part("door", (_rect(0.08, 0.36, 0.49, 0.88), _rect(0.51, 0.36, 0.92, 0.88))),
        Part("top", (_rect(0.0, 0.0, 1.0, 0.12),)),
        Part("skirt", (_rect(0.0, 0.88, 1.0, 1.0),), 0.6),
        Part("side", _pair(0.0, 0.12, 0.07, 0.88), 0.6),
        Part(CORE, (_rect(0.0, 0.12, 1.0, 0.88),)),  # the carcass around doors and drawers
    )),
    ObjectDesign("wardrobe", 0.7, (
        Part("mirror", (_rect(0.12, 0.18, 0.42, 0.6),), 0.4),
        Part("door", (_rect(0.05, 0.13, 0.49, 0.74), _rect(0.51, 0.13, 0.95, 0.74))),
        Part("drawer", (_rect(0.05, 0.76, 0.95, 0.92),)),
        Part("top", (_rect(0.0, 0.0, 1.0, 0.12),)),
        Part("leg", _pair(0.02, 0.93, 0.14, 1.0), 0.4),
        Part(CORE, (_rect(0.0, 0.12, 1.0, 0.93),)),
    )),
    ObjectDesign("bench", 2.0, (
        Part("arm", _pair(0.0, 0.28, 0.1, 0.66), 0.5),
        Part("back", (_rect(0.05, 0.0, 0.95, 0.4),)),
        Part("seat", (_rect(0.05, 0.45, 0.95, 0.64),)),
        Part("leg", _pair(0.08, 0.64, 0.2, 1.0)),
        Part(CORE, (_rect(0.1, 0.4, 0.9, 0.45),)),  # the back's supports
    )),
    ObjectDesign("stool", 0.7, (
        Part("seat", (_ellipse(0.5, 0.12, 0.5, 0.12),)),
        Part("leg", (*_pair(0.08, 0.2, 0.22, 1.0), _rect(0.43, 0.2, 0.57, 1.0))),
    ), weight=0.5),
)


def part_id(object_name: str, part_name: str) -> int:
    return class_lists().parts.index(f"{object_name}'s {part_name}")


def _check_designs() -> None:
    """Every design uses real ADE20K-Part-234 names, so the ids come from the package's class lists."""
    for design in DESIGNS:
        assert design.name in class_lists().objects, design.name
        for part in design.parts:
            if part.name != CORE:
                part_id(design.name, part.name)


_check_designs()


def image_name(split: str, index: int) -> str:
    if index % FRAME_EVERY == FRAME_OFFSET:
        return f"ADE_frame_{index + 1:08d}.jpg"
    return f"ADE_{SPLIT_FILE_SUFFIX[split]}_{index + 1:08d}.jpg"


def _pick_design(rng: np.random.Generator, slot_aspect: float) -> ObjectDesign:
    """Designs shaped like the slot are likelier, so objects fill their slot and few parts come out tiny."""
    fit = np.array([d.weight * np.exp(-2.0 * abs(np.log(d.aspect / slot_aspect))) for d in DESIGNS])
    return DESIGNS[int(rng.choice(len(DESIGNS), p=fit / fit.sum()))]


def _template_for(design: ObjectDesign, rng: np.random.Generator, slot_aspect: float) -> ObjectTemplate:
    """This instance's template: its parts chosen once each, so both legs come or go together; its box
    stretched halfway towards the slot's shape."""
    specs = []
    for part in design.parts:
        if part.presence < 1.0 and rng.random() >= part.presence:
            continue
        full_name = f"{design.name}'s {part.name}" if part.name != CORE else CORE
        specs += [PartSpec(name=full_name, shape=shape, label=part.name) for shape in part.pieces]
    aspect = float(np.sqrt(design.aspect * slot_aspect) * rng.uniform(0.9, 1.1))
    return ObjectTemplate(category=design.name, parts=tuple(specs), aspect=aspect, label=design.name)


def _merge_pieces(obj: DrawnObject) -> DrawnObject:
    """One part per part name, without the unlabeled core: what a semantic part map can tell apart."""
    merged: dict[str, list[DrawnPart]] = {}
    for part in obj.parts:
        if part.name != CORE:
            merged.setdefault(part.name, []).append(part)
    parts = []
    for name, pieces in merged.items():
        mask = masks.union([p.mask for p in pieces])
        parts.append(DrawnPart(name=name, label=pieces[0].label, polygons=[q for p in pieces for q in p.polygons],
                               polygon_mask=masks.union([p.polygon_mask for p in pieces]), mask=mask,
                               area=masks.area(mask)))
    return dataclasses.replace(obj, parts=parts)


def _segmentation(obj: DrawnObject, choice: float) -> object:
    """The object's mask in one of the three COCO encodings (polygons only where they rasterize exactly)."""
    if choice < POLYGON_SHARE:
        # The union of every piece's polygons (core included) rasterizes to the union of the visible
        # pieces: each piece's visible pixels are its raster minus pixels an earlier raster covers.
        # Only pixels lost to a neighbouring object break this; then the RLE is written instead.
        polygons = [q for p in obj.parts for q in p.polygons]
        if masks.from_polygons(polygons, *obj.mask["size"])["counts"] == obj.mask["counts"]:
            return polygons
    if choice < POLYGON_SHARE + UNCOMPRESSED_SHARE:
        return {"size": list(obj.mask["size"]), "counts": masks.run_lengths(obj.mask["counts"])}
    return dict(obj.mask)


@dataclass(frozen=True)
class _Job:
    root: Path
    split: str
    index: int
    seed: int
    size: tuple[int, int]
    images: bool


def _draw(job: _Job) -> tuple[dict, list[dict], dict]:
    """One image: writes its part map (and pixels); returns its COCO image, annotations (no ids yet), record."""
    rng = image_rng(job.seed, SOURCE, job.split, job.index)
    width, height = job.size
    counts, weights = zip(*OBJECTS_PER_IMAGE)
    n_objects = int(rng.choice(counts, p=weights))
    slot_aspect = width / n_objects / height
    templates = [_template_for(_pick_design(rng, slot_aspect), rng, slot_aspect) for _ in range(n_objects)]
    drawn = draw_image(templates, rng, width, height)
    encodings = rng.random(len(drawn.objects))
    pixels = render(drawn, rng) if job.images else None  # rendered with the core, so the body is painted

    annotations = []
    for obj, choice in zip(drawn.objects, encodings):
        raw = {"size": obj.mask["size"], "counts": obj.mask["counts"].encode("ascii")}
        annotations.append({"category_id": class_lists().objects.index(obj.category),
                            "bbox": [float(v) for v in mask_utils.toBbox(raw)], "area": float(obj.area),
                            "iscrowd": 0, "segmentation": _segmentation(obj, choice)})

    objects = [_merge_pieces(obj) for obj in drawn.objects]
    file_name = image_name(job.split, job.index)
    part_map = np.full((height, width), NO_PART_16BIT, dtype=np.uint16)
    for obj in objects:
        for part in obj.parts:
            part_map[masks.decode(part.mask)] = part_id(obj.category, part.label)
    write_png(job.root / PART_MAP_FOLDER / job.split / Path(file_name).with_suffix(".png"), part_map)
    if pixels is not None:
        write_jpeg(job.root / "images" / job.split / file_name, pixels)

    image_id = job.index + 1
    image = {"id": image_id, "file_name": file_name, "width": width, "height": height}
    final = DrawnImage(width=width, height=height, objects=objects)
    return image, annotations, drawn_entry(job.split, file_name, final, image_id=f"{SOURCE}:{job.split}:{image_id}")


def _draw_all(jobs: list[_Job]) -> Iterator[tuple[dict, list[dict], dict]]:
    """Results in job order; each image has its own random stream, so worker count never changes bytes."""
    workers = min(len(os.sched_getaffinity(0)), 8)
    if len(jobs) < PARALLEL_FROM or workers < 2:
        yield from map(_draw, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        yield from pool.map(_draw, jobs, chunksize=32)


def _categories() -> list[dict]:
    return [{"id": i, "name": name} for i, name in enumerate(class_lists().objects)]


def _few_shot(coco: dict) -> dict:
    """Up to SHOTS training images per object class, with all their annotations."""
    images_of: dict[int, list[int]] = {}
    for annotation in coco["annotations"]:
        chosen = images_of.setdefault(annotation["category_id"], [])
        if annotation["image_id"] not in chosen and len(chosen) < SHOTS:
            chosen.append(annotation["image_id"])
    keep = {image_id for chosen in images_of.values() for image_id in chosen}
    return {"images": [i for i in coco["images"] if i["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep],
            "categories": coco["categories"]}


def write(root: Path, *, scale: str, seed: int, images: bool) -> list[dict]:
    """Write the release under ``root``; return the drawn record."""
    counts, size = SCALE_SIZES[scale]
    record: list[dict] = []
    for split in ("training", "validation"):
        jobs = [_Job(root, split, index, seed, size, images) for index in range(counts[split])]
        coco: dict = {"images": [], "annotations": [], "categories": _categories()}
        for image, image_annotations, entry in drawing(_draw_all(jobs), len(jobs), f"ADE20K-Part-234 {split}"):
            coco["images"].append(image)
            for annotation in image_annotations:
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image["id"],
                                            **annotation})
            record.append(entry)
        if images:
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
        write_json(root / f"ade20k_instance_{SPLIT_FILE_SUFFIX[split]}.json", coco)
        if split == "training":
            write_json(root / "train_16shot.json", _few_shot(coco))
    return record
