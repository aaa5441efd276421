"""Procedural objects built from parts: geometry, rasterized masks and rendered pixels.

An :class:`ObjectTemplate` lays its parts out in a unit box; :func:`draw_image` places a few objects
side by side in an image, clips parts against each other so that they never overlap (earlier parts
are in front), rasterizes every part with pycocotools — the same rasterizer the readers use for
polygons — and keeps each part's visible pixels (its raster minus pixels an earlier part claimed,
since two rasters sharing an edge can both claim a boundary pixel). :func:`render` and
:func:`label_map` paint from those disjoint masks, so every mask matches the image exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.ops import unary_union

from mixedparts import masks
from mixedparts.masks import Rle

# A shape in the object's unit box (x right, y down):
#   ("rect", x0, y0, x1, y1) · ("ellipse", cx, cy, rx, ry) · ("poly", x1, y1, x2, y2, ...)
Shape = tuple


@dataclass(frozen=True)
class PartSpec:
    name: str  # the name as the release spells it (e.g. "back_cover", "Quadruped Head", "chair's leg")
    shape: Shape
    presence: float = 1.0  # probability that an instance has this part (makes part sets differ)
    label: str = ""  # the normalized name a reader must produce ("back cover", "head", "leg")


@dataclass(frozen=True)
class ObjectTemplate:
    category: str  # the release's spelling of the object category
    parts: tuple[PartSpec, ...]
    aspect: float = 1.0  # width / height of the object's box
    label: str = ""  # the normalized category a reader must produce


@dataclass
class DrawnPart:
    name: str
    label: str
    polygons: list[list[float]]  # COCO polygons in image pixels
    polygon_mask: Rle  # the polygons rasterized alone (what a reader of polygon files gets)
    mask: Rle  # the visible pixels: polygon_mask minus pixels already claimed by earlier parts
    area: int  # of ``mask``


@dataclass
class DrawnObject:
    category: str
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    parts: list[DrawnPart]
    polygons: list[list[float]]  # outline of the whole object (union of its parts)
    mask: Rle  # union of the part masks
    area: int


@dataclass
class DrawnImage:
    width: int
    height: int
    objects: list[DrawnObject] = field(default_factory=list)


def _unit_geometry(shape: Shape) -> Polygon:
    kind, *params = shape
    if kind == "rect":
        return box(*params)
    if kind == "ellipse":
        cx, cy, rx, ry = params
        return affinity.scale(Point(cx, cy).buffer(1.0, quad_segs=12), rx, ry)
    if kind == "poly":
        return Polygon(list(zip(params[0::2], params[1::2])))
    raise ValueError(f"unknown shape kind {kind!r}")


def _polygons(geometry) -> list[list[float]]:
    """COCO polygons of a shapely geometry; rounded to 0.01 px so files and masks agree exactly."""
    if geometry.is_empty:
        return []
    parts = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
    out = []
    for polygon in parts:
        if not isinstance(polygon, Polygon) or polygon.area < 1.0:
            continue
        coords = list(polygon.exterior.coords)[:-1]
        if len(coords) >= 3:
            out.append([round(v, 2) for xy in coords for v in xy])
    return out


def _solid(geometry):
    """Keep polygonal pieces only and fill holes (COCO polygons cannot express them)."""
    pieces = geometry.geoms if hasattr(geometry, "geoms") else [geometry]
    polygons = [Polygon(p.exterior) for p in pieces if isinstance(p, Polygon) and not p.is_empty]
    polygons += [Polygon(q.exterior) for p in pieces if isinstance(p, MultiPolygon) for q in p.geoms]
    return unary_union(polygons) if polygons else Polygon()


def draw_object(template: ObjectTemplate, rng: np.random.Generator, slot: tuple[float, float, float, float],
                width: int, height: int) -> DrawnObject | None:
    """Place ``template`` inside ``slot`` (x0, y0, x1, y1) with random size, position and part presence."""
    sx0, sy0, sx1, sy1 = slot
    slot_w, slot_h = sx1 - sx0, sy1 - sy0
    scale = rng.uniform(0.75, 0.95)
    obj_h = min(slot_h, slot_w / template.aspect) * scale
    obj_w = obj_h * template.aspect
    x0 = sx0 + rng.uniform(0, slot_w - obj_w)
    y0 = sy0 + rng.uniform(0, slot_h - obj_h)
    # Clipping to the slot (inside the image) keeps jittered parts from reaching a neighbouring object.
    frame = box(sx0, sy0, sx1, sy1).intersection(box(0, 0, width, height))
    taken = Polygon()
    claimed = np.zeros((height, width), dtype=bool)
    parts: list[DrawnPart] = []
    for spec in template.parts:
        if spec.presence < 1.0 and rng.random() >= spec.presence:
            continue
        unit = _unit_geometry(spec.shape)
        jitter = rng.uniform(-0.03, 0.03, size=2)
        geometry = affinity.translate(unit, float(jitter[0]), float(jitter[1]))
        geometry = affinity.affine_transform(geometry, [obj_w, 0, 0, obj_h, x0, y0])
        geometry = _solid(geometry.intersection(frame).difference(taken))
        polygons = _polygons(geometry)
        if not polygons:
            continue
        polygon_mask = masks.from_polygons(polygons, height, width)
        visible = masks.decode(polygon_mask) & ~claimed
        if not visible.any():
            continue
        claimed |= visible
        taken = taken.union(geometry)
        parts.append(DrawnPart(name=spec.name, label=spec.label or spec.name, polygons=polygons, polygon_mask=polygon_mask,
                               mask=masks.encode(visible), area=int(visible.sum())))
    if not parts:
        return None
    mask = masks.union([p.mask for p in parts])
    return DrawnObject(category=template.category, label=template.label or template.category, box=(x0, y0, x0 + obj_w, y0 + obj_h), parts=parts,
                       polygons=_polygons(_solid(taken)), mask=mask, area=masks.area(mask))


def draw_image(templates: list[ObjectTemplate], rng: np.random.Generator, width: int, height: int) -> DrawnImage:
    """One image holding ``len(templates)`` objects, each in its own vertical slot (objects never overlap)."""
    drawn = DrawnImage(width=width, height=height)
    slot_w = width / max(1, len(templates))
    for i, template in enumerate(templates):
        slot = (i * slot_w + 1, 1.0, (i + 1) * slot_w - 1, height - 1.0)
        obj = draw_object(template, rng, slot, width, height)
        if obj is not None:
            drawn.objects.append(obj)
    return drawn


def colour_of(name: str) -> np.ndarray:
    """A stable colour per part name, so the same part looks alike across images."""
    digest = hashlib.sha256(name.encode()).digest()
    return np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float32) * 0.7 + 40


def render(drawn: DrawnImage, rng: np.random.Generator) -> np.ndarray:
    """HxWx3 uint8 pixels: a noisy background and each part filled with its own textured colour."""
    h, w = drawn.height, drawn.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 200, size=3).astype(np.float32)
    image = base + 30 * np.stack([np.sin(xx / 17.0), np.cos(yy / 23.0), np.sin((xx + yy) / 31.0)], axis=-1)
    image += rng.normal(0, 6, size=(h, w, 3))
    for obj in drawn.objects:
        for part in obj.parts:
            pixels = masks.decode(part.mask)
            colour = colour_of(f"{obj.category}/{part.name}")
            image[pixels] = colour + rng.normal(0, 8, size=(int(pixels.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def label_map(drawn: DrawnImage, value_of, fill: int, dtype) -> np.ndarray:
    """Semantic map: every visible part pixel gets ``value_of(obj, part)``, the rest ``fill``."""
    out = np.full((drawn.height, drawn.width), fill, dtype=dtype)
    for obj in drawn.objects:
        for part in obj.parts:
            out[masks.decode(part.mask)] = value_of(obj, part)
    return out
