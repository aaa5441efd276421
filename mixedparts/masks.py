"""COCO RLE helpers: every mask in the project travels as compressed RLE ``{"size": [h, w], "counts": str}``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils

Rle = dict  # {"size": [h, w], "counts": str}


def encode(mask: np.ndarray) -> Rle:
    """Binary HxW array -> compressed RLE with ``str`` counts (JSON- and Parquet-safe)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _coco(rle: Rle) -> dict:
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": list(rle["size"]), "counts": counts}


def decode(rle: Rle) -> np.ndarray:
    """Compressed RLE -> HxW bool array."""
    return mask_utils.decode(_coco(rle)).astype(bool)


def area(rle: Rle) -> int:
    return int(mask_utils.area(_coco(rle)))


def union(rles: Sequence[Rle]) -> Rle:
    if len(rles) == 1:
        return {"size": list(rles[0]["size"]), "counts": rles[0]["counts"]}
    merged = mask_utils.merge([_coco(r) for r in rles], intersect=False)
    return {"size": [int(merged["size"][0]), int(merged["size"][1])], "counts": merged["counts"].decode("ascii")}


def iou(a: Rle, b: Rle) -> float:
    return float(mask_utils.iou([_coco(a)], [_coco(b)], [0])[0][0])


def from_polygons(polygons: Iterable[Sequence[float]], height: int, width: int) -> Rle:
    """COCO polygon list (each ``[x1, y1, x2, y2, ...]``, at least 3 points) -> merged compressed RLE."""
    polygons = [list(map(float, p)) for p in polygons]
    rles = mask_utils.frPyObjects(polygons, height, width)
    merged = mask_utils.merge(rles)
    return {"size": [int(merged["size"][0]), int(merged["size"][1])], "counts": merged["counts"].decode("ascii")}


def from_uncompressed(rle: dict) -> Rle:
    """Uncompressed RLE (``counts`` a list of ints) -> compressed RLE."""
    h, w = rle["size"]
    compressed = mask_utils.frPyObjects(rle, h, w)
    return {"size": [int(h), int(w)], "counts": compressed["counts"].decode("ascii")}


def run_lengths(counts: str) -> list[int]:
    """Decode the run lengths of a compressed RLE string (pycocotools' ``rleFrString``).

    pycocotools decodes a truncated or overlong string without complaint, so validation needs the runs.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("truncated RLE counts")
            chunk = ord(counts[position]) - 48
            if chunk < 0 or chunk > 63:
                raise ValueError(f"invalid RLE character {counts[position]!r}")
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _well_formed_runs(counts: str) -> np.ndarray | None:
    """``run_lengths(counts)`` with numpy, or None where the string needs the exact (slow) look.

    Readers check every mask of a release: character by character in Python that was most of the
    reading stage. None means "not obviously fine" (bad characters, a truncated or overlong value),
    never a verdict: the caller then asks :func:`run_lengths` for the message.
    """
    if not counts.isascii():
        return None
    chunk = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if chunk.size == 0:
        return None
    if chunk.min() < 0 or chunk.max() > 63:
        return None
    more = (chunk & 0x20) != 0
    if more[-1]:
        return None
    ends = np.flatnonzero(~more)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    place = np.arange(chunk.size) - np.repeat(starts, ends - starts + 1)
    if place.max() >= 7:  # beyond 35 bits int64 shifts would overflow; pycocotools never writes such values
        return None
    values = np.add.reduceat((chunk & 0x1F) << (5 * place), starts)
    negative = (chunk[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (place[ends[negative]] + 1))
    # From the 4th run on a value is a delta to the run two places back: running sums of odd and even values.
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def validation_error(rle: object) -> str | None:
    """Why ``rle`` is not a well-formed compressed RLE, or None if it is."""
    if not isinstance(rle, dict):
        return "mask must be an object with 'size' and 'counts'"
    if set(rle) != {"size", "counts"}:
        return f"mask must have exactly the keys 'size' and 'counts', got {sorted(map(str, rle))}"
    size, counts = rle["size"], rle["counts"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return "mask 'size' must be [height, width] with positive integers"
    if not isinstance(counts, str):
        return "mask 'counts' must be a compressed RLE string"
    fast = _well_formed_runs(counts)
    if fast is not None and fast.min() >= 0 and int(fast.sum()) == size[0] * size[1]:
        return None
    try:
        runs = run_lengths(counts)
    except ValueError as error:
        return f"mask 'counts' is not valid RLE: {error}"
    if any(r < 0 for r in runs):
        return "mask 'counts' has a negative run length"
    if sum(runs) != size[0] * size[1]:
        return f"mask 'counts' covers {sum(runs)} pixels, but size {size[0]}x{size[1]} has {size[0] * size[1]}"
    return None


def is_valid(rle: object) -> bool:
    return validation_error(rle) is None
