"""COCO-style annotation fields shared by the three releases: value checks and segmentation -> RLE."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mixedparts import masks
from mixedparts.errors import SourceError
from mixedparts.masks import Rle
from mixedparts.sources.base import require_keys

SHORT_POLYGON_POLICIES = ("drop", "pad", "error")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float (not a bool). JSON integers have no bound: one too large for a float is no
    coordinate (math.isfinite would raise OverflowError on it)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def validated_images(records: object, path: Path) -> Iterator[tuple[int | str, str, int, int, str]]:
    """A COCO ``images`` list, checked entry by entry: ``(id, file_name, width, height, where)`` in file
    order, ``where`` naming the entry for error messages (``images[1] (id 2, n0123_7.JPEG)``)."""
    if not isinstance(records, list):
        raise SourceError(path, f"'images' must be a list, got {type(records).__name__}", "images")
    seen: set = set()
    for index, record in enumerate(records):
        require_keys(record, ("id", "file_name", "width", "height"), path, f"images[{index}]")
        image_id, file_name, width, height = record["id"], record["file_name"], record["width"], record["height"]
        where = f"images[{index}] (id {image_id!r}, {file_name})"
        if not (is_int(image_id) or isinstance(image_id, str)):
            raise SourceError(path, f"image id must be an integer or string, got {image_id!r}", where)
        if image_id in seen:
            raise SourceError(path, f"duplicate image id {image_id!r}", where)
        if not isinstance(file_name, str) or not file_name:
            raise SourceError(path, f"file_name must be a non-empty string, got {file_name!r}", where)
        if not (is_int(width) and is_int(height) and width > 0 and height > 0):
            raise SourceError(path, f"width and height must be positive integers, got {width!r}x{height!r}", where)
        seen.add(image_id)
        yield image_id, file_name, width, height, where


def well_formed_rle_strings(segmentations: list[tuple[object, int, int]]) -> list[bool]:
    """For each ``(segmentation, height, width)``: whether it is a compressed RLE string at that size
    that :func:`segmentation_to_rle` accepts as it is. All strings are parsed together
    (``masks.well_formed``); validating them one at a time was most of a release's reading time.
    """
    return masks.well_formed([segmentation for segmentation, _, _ in segmentations],
                             [(height, width) for _, height, width in segmentations]).tolist()


def segmentation_to_rle(segmentation: object, height: int, width: int, short_polygons: str = "drop",
                        well_formed: bool = False) -> tuple[Rle | None, int]:
    """A COCO segmentation as compressed RLE, and how many polygons were too short to use.

    Accepts polygon lists, compressed RLE (``str`` or ``bytes`` counts) and uncompressed RLE.
    Polygons with fewer than three points enclose nothing (and pycocotools would read four numbers as
    a box): ``drop`` them, ``pad`` them by repeating the last point as VLPart does, or raise (``error``).
    The mask is None when no polygon is left (an empty list, as some PACO records have). Raises
    ValueError saying what is wrong. ``well_formed``: :func:`well_formed_rle_strings` vouched for it.
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
        problem = None if well_formed else masks.validation_error(rle)
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
