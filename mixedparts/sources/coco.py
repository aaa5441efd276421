"""COCO-style annotation fields shared by the three releases: value checks and segmentation -> RLE."""

from __future__ import annotations

import math

import numpy as np

from mixedparts import masks
from mixedparts.masks import Rle

SHORT_POLYGON_POLICIES = ("drop", "pad", "error")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def segmentation_to_rle(segmentation: object, height: int, width: int,
                        short_polygons: str = "drop") -> tuple[Rle | None, int]:
    """A COCO segmentation as compressed RLE, and how many polygons were too short to use.

    Accepts polygon lists, compressed RLE (``str`` or ``bytes`` counts) and uncompressed RLE.
    Polygons with fewer than three points enclose nothing (and pycocotools would read four numbers as
    a box): ``drop`` them, ``pad`` them by repeating the last point as VLPart does, or raise (``error``).
    The mask is None when no polygon is left (an empty list, as some PACO records have). Raises
    ValueError saying what is wrong.
    """
    if isinstance(segmentation, list):
        return _from_polygons(segmentation, height, width, short_polygons)
    if not isinstance(segmentation, dict) or set(segmentation) != {"size", "counts"}:
        raise ValueError("expected a list of polygons, or an RLE object with exactly 'size' and 'counts'")
    size, counts = segmentation["size"], segmentation["counts"]
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)):
        raise ValueError(f"RLE 'size' must be [height, width], got {size!r}")
    if size != [height, width]:
        raise ValueError(f"RLE size {size[0]}x{size[1]} differs from the image's {height}x{width}")
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("RLE 'counts' bytes are not ASCII") from None
    if isinstance(counts, str):
        rle = {"size": [height, width], "counts": counts}
        problem = masks.validation_error(rle)
        if problem is not None:
            raise ValueError(problem)
        return rle, 0
    if isinstance(counts, list):
        if not all(is_int(v) and v >= 0 for v in counts):
            raise ValueError("uncompressed RLE 'counts' must be non-negative integers")
        if sum(counts) != height * width:
            raise ValueError(f"uncompressed RLE covers {sum(counts)} pixels, but {height}x{width} has "
                             f"{height * width}")
        return masks.from_uncompressed({"size": [height, width], "counts": counts}), 0
    raise ValueError(f"RLE 'counts' must be a string or a list of integers, got {type(counts).__name__}")


def _from_polygons(polygons: list, height: int, width: int, short_polygons: str) -> tuple[Rle | None, int]:
    usable, short = [], 0
    for index, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or not all(is_number(v) for v in polygon):
            raise ValueError(f"polygon {index} must be a flat list of finite numbers (x, y, x, y, ...)")
        if len(polygon) % 2:
            raise ValueError(f"polygon {index} has an odd number of coordinates ({len(polygon)})")
        if len(polygon) >= 6:
            usable.append(polygon)
            continue
        if short_polygons == "error":
            raise ValueError(f"polygon {index} needs at least 6 coordinates, got {len(polygon)}")
        short += 1
        if short_polygons == "pad" and polygon:
            usable.append(polygon + polygon[-2:] * ((6 - len(polygon)) // 2))
    return (masks.from_polygons(usable, height, width) if usable else None), short


def empty_mask(height: int, width: int) -> Rle:
    return masks.encode(np.zeros((height, width), dtype=bool))
