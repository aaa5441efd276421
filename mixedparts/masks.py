"""COCO RLE helpers: every mask in the project travels as compressed RLE ``{"size": [h, w], "counts": str}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

from mixedparts.forking import available_cores, can_fork, chunk_bounds, fork_map

Rle = dict  # {"size": [h, w], "counts": str}


def encode(mask: np.ndarray) -> Rle:
    """Binary HxW array -> compressed RLE with ``str`` counts (JSON- and Parquet-safe)."""
    # A bool array is already 0/1 bytes: viewing it saves a copy (and a Fortran-ordered one needs none).
    rle = mask_utils.encode(np.asfortranarray(mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _coco(rle: Rle) -> dict:
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": list(rle["size"]), "counts": counts}


def decode(rle: Rle) -> np.ndarray:
    """Compressed RLE -> HxW bool array."""
    return mask_utils.decode(_coco(rle)).astype(bool)


def bbox(rle: Rle) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the smallest box holding the mask's pixels; all zero for an empty mask."""
    x, y, width, height = mask_utils.toBbox(_coco(rle))
    return int(x), int(y), int(width), int(height)


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


# ------------------------------------------------------------------------------------- compressed counts
#
# pycocotools' ``rleFrString``, vectorised over many strings at once: each character is a 6-bit chunk
# ``ord(c) - 48`` holding 5 value bits, 0x20 meaning "more chunks follow" and, in a value's last chunk,
# 0x10 meaning "negative"; from the 4th run on a value is a delta to the run two places back. Decoding
# one character at a time in Python was most of the reading and scoring time; pycocotools itself
# accepts truncated or overlong strings without complaint, so validation needs the runs.

FINE, COVERAGE, NEGATIVE_RUN, TOO_LONG_VALUE, TRUNCATED, BAD_CHARACTER = range(6)
"""Problem codes of :func:`parse_counts` and :func:`counts_problems`; where a string has several, the
highest is reported, as the character-by-character decoder would meet them."""

_MAX_CHUNKS = 7  # 35-bit values keep every int64 sum exact; pycocotools never writes longer ones
_BATCH_CHARACTERS = 250_000
"""Characters parsed at once: bounds the int64 arrays (several per character) and their sums. Smaller
batches reuse the same few megabytes instead of faulting in fresh pages for arrays of a million values
(measured: 10-30% less time for the masks of a predictions file)."""


class RunLengths(NamedTuple):
    runs: np.ndarray
    """All strings' run lengths, concatenated."""
    first: np.ndarray
    """Index in ``runs`` of each string's first run, plus a final end index (length n + 1)."""
    problem: np.ndarray
    """Per string: FINE, or why its runs are not to be trusted (coverage is not checked here)."""


def _as_bytes(counts: str | bytes) -> bytes:
    if isinstance(counts, str):
        # A non-ASCII string is invalid whatever else it holds: one out-of-range byte stands for it.
        return counts.encode("ascii") if counts.isascii() else b"\x00"
    return bytes(counts)


def parse_counts(counts: Sequence[str | bytes], exact: bool = False) -> RunLengths:
    """The run lengths of several compressed RLE strings at once.

    With ``exact`` the arithmetic is on Python integers (slow, for the rare strings flagged
    TOO_LONG_VALUE, whose values do not fit the int64 fast path).
    """
    n = len(counts)
    try:
        text = "".join(counts)
    except TypeError:  # bytes among them
        text = None
    if text is not None and text.isascii():
        raw, buffer = counts, text.encode("ascii")
    else:
        raw = [_as_bytes(c) for c in counts]
        buffer = b"".join(raw)
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    problem = np.zeros(n, dtype=np.int8)
    first = np.zeros(n + 1, dtype=np.int64)
    # Per-character work stays in small integer types; int64 only per value (a value is 1-7 characters).
    chunk = np.frombuffer(buffer, dtype=np.uint8) - np.uint8(48)  # wraps below '0' to > 63: bad too
    if chunk.size == 0:
        return RunLengths(np.zeros(0, dtype=object if exact else np.int64), first, problem)
    string_end = np.cumsum(lengths)  # exclusive end of each string's characters
    bad = np.flatnonzero(chunk > 63)
    if bad.size:
        chunk[bad] = 0
    more = (chunk & 0x20) != 0
    filled = np.flatnonzero(lengths > 0)
    last_char = string_end[filled] - 1
    truncated = filled[more[last_char]]  # the last value never ends
    more[last_char] = False  # so that no value straddles two strings
    ends = np.flatnonzero(~more)
    starts = np.empty_like(ends)
    starts[0] = 0
    np.add(ends[:-1], 1, out=starts[1:])
    width = ends - starts + 1  # characters per value
    # Values end at their string's last character at the latest, so counting the ends before each
    # string's end gives every string's first value.
    first[1:] = np.searchsorted(ends, string_end, side="left")
    long_values = width > _MAX_CHUNKS
    too_long = np.searchsorted(first[1:], np.flatnonzero(long_values), side="right") if long_values.any() else []
    if exact:
        values = (chunk[starts] & 0x1F).astype(object)
        for place in range(1, int(width.max())):
            longer = np.flatnonzero(width > place)
            values[longer] += (chunk[starts[longer] + place] & 0x1F).astype(object) << (5 * place)
        negative = (chunk[ends] & 0x10) != 0
        values[negative] -= 1 << (5 * width[negative].astype(object))
    else:
        values = (chunk[starts] & 0x1F).astype(np.int64)
        for place in range(1, min(int(width.max()), _MAX_CHUNKS)):
            longer = np.flatnonzero(width > place)
            values[longer] += (chunk[starts[longer] + place] & 0x1F).astype(np.int64) << (5 * place)
        # Each chunk adds its 5 bits at its place in its value; the bits never overlap, so a sum is an OR.
        # The last chunk's sign bit 0x10, shifted up to 1 << (5 * width), is subtracted where it is set
        # (the width capped: too-long values are flagged, the cap only keeps them finite).
        sign = (chunk[ends] & 0x10).astype(np.int64)
        sign <<= 5 * np.minimum(width, _MAX_CHUNKS) - 4
        values -= sign
    runs = _undelta(values, first)
    # Later assignments win: the order is the codes' order of precedence.
    negative_runs = np.flatnonzero(runs < 0)
    if negative_runs.size:
        problem[np.searchsorted(first[1:], negative_runs, side="right")] = NEGATIVE_RUN
    if not exact:
        problem[too_long] = TOO_LONG_VALUE
    problem[truncated] = TRUNCATED
    problem[np.searchsorted(string_end, bad, side="right")] = BAD_CHARACTER
    return RunLengths(runs, first, problem)


def _undelta(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The runs of the concatenated strings' values (string ``s`` holds ``values[first[s]:first[s + 1]]``).

    From a string's 4th value on, run[i] = value[i] + run[i - 2]: odd runs are running sums of the odd
    values, even runs from index 2 on running sums of the even values. Running sums over each parity
    of the *concatenation* give them all at once, less each string's sum before its own values of that
    parity start (index 1 for odd runs, index 2 for even ones); index 0 is its value.
    """
    starts, stops = first[:-1], first[1:]
    zero = values[:0].sum()  # 0 of the values' type (int64, or a Python int for the exact path)
    runs = np.empty_like(values)
    for parity in (0, 1):
        sums = np.cumsum(values[parity::2])  # the running sums of this parity class, over all strings
        if not sums.size:
            continue
        # Per string, the class's sum before its runs start: at the class's last index below the string's
        # start where the class holds its odd indices, and at its first value (index 0) where it holds
        # the even ones, so that every run of the class subtracts one per-string constant.
        odd_runs = (starts & 1) != parity
        base_index = np.where(odd_runs, starts - 1, starts) // 2  # global index -> index in the class
        # (an empty string's index may be past the end: it repeats its base 0 times)
        base = np.where(odd_runs & (starts == 0), zero, sums[np.minimum(base_index, len(sums) - 1)])
        count = (stops - parity + 1) // 2 - (starts - parity + 1) // 2  # the string's values in the class
        sums -= np.repeat(base, count)
        runs[parity::2] = sums
    filled = starts[stops > starts]
    runs[filled] = values[filled]
    return runs


def _covered(parsed: RunLengths) -> np.ndarray:
    """Pixels each string's runs cover."""
    total = np.concatenate(([0], np.cumsum(parsed.runs)))
    return total[parsed.first[1:]] - total[parsed.first[:-1]]


def counts_problems(counts: Sequence[str | bytes], pixels: Sequence[int]) -> np.ndarray:
    """Per string its problem code (FINE when its runs are well formed and cover ``pixels``), in batches.

    TOO_LONG_VALUE is no verdict: such a string may be valid (:func:`validation_error` decides).
    """
    pixels = np.asarray(pixels, dtype=np.int64)
    problems = np.zeros(len(counts), dtype=np.int8)
    start = 0
    while start < len(counts):
        end, characters = start, 0
        while end < len(counts) and (characters < _BATCH_CHARACTERS or end == start):
            characters += len(counts[end])
            end += 1
        parsed = parse_counts(counts[start:end])
        problem = parsed.problem.copy()
        problem[(problem == FINE) & (_covered(parsed) != pixels[start:end])] = COVERAGE
        problems[start:end] = problem
        start = end
    return problems


def _exact_runs(counts: str) -> tuple[np.ndarray, int]:
    parsed = parse_counts([counts])
    if parsed.problem[0] == TOO_LONG_VALUE:
        parsed = parse_counts([counts], exact=True)
    return parsed.runs, int(parsed.problem[0])


def run_lengths(counts: str) -> list[int]:
    """The run lengths of one compressed RLE string (the counts of an uncompressed RLE); a malformed
    string raises ValueError. Negative runs are returned as decoded."""
    runs, problem = _exact_runs(counts)
    if problem == BAD_CHARACTER:
        raise ValueError(f"invalid RLE character {next(c for c in counts if not 48 <= ord(c) <= 111)!r}")
    if problem == TRUNCATED:
        raise ValueError("truncated RLE counts")
    return [int(r) for r in runs]


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


_MAX_SIDE = 2**31  # keeps height * width and every sum in int64


PARALLEL_FROM = 20_000
"""Masks from which :func:`first_invalid` splits the work over forked processes (fewer take under a second)."""


def first_invalid(rles: Sequence[object], workers: int | None = None) -> int | None:
    """Index of the first mask that :func:`validation_error` rejects, or None: the same verdicts, found in
    bulk (a predictions file holds millions of RLE characters); only suspects are looked at one by one.
    Many masks are checked in ``workers`` forked processes (default: one per available core)."""
    workers = workers or available_cores()
    if len(rles) >= PARALLEL_FROM and can_fork(workers):
        found = fork_map(_first_invalid_between, rles, chunk_bounds(len(rles), 2 * workers), workers)
        return next((index for index in found if index is not None), None)
    return _first_invalid_between(rles, (0, len(rles)))


def _first_invalid_between(rles: Sequence[object], bounds: tuple[int, int]) -> int | None:
    start, stop = bounds
    for offset in np.flatnonzero(~well_formed(rles[start:stop])).tolist():
        if validation_error(rles[start + offset]) is not None:
            return start + offset
    return None


def well_formed(rles: Sequence[object], sizes: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Per RLE, whether it is ``{"size": [h, w], "counts": str}`` (at ``sizes[i]`` when given) with well-formed
    runs covering h x w, found in bulk: where this is True, :func:`validation_error` says None. False is no
    verdict (a string with overlong values may still be valid): ask :func:`validation_error`."""
    candidates: list[int] = []
    counts: list[str] = []
    pixels: list[int] = []
    for i, rle in enumerate(rles):
        if (type(rle) is dict and len(rle) == 2 and type(rle.get("counts")) is str
                and type(rle.get("size")) in (list, tuple) and len(rle["size"]) == 2
                and type(rle["size"][0]) is int and type(rle["size"][1]) is int
                and 0 < rle["size"][0] < _MAX_SIDE and 0 < rle["size"][1] < _MAX_SIDE
                and (sizes is None or (rle["size"][0], rle["size"][1]) == tuple(sizes[i]))):
            candidates.append(i)
            counts.append(rle["counts"])
            pixels.append(rle["size"][0] * rle["size"][1])
    ok = np.zeros(len(rles), dtype=bool)
    if candidates:
        ok[candidates] = counts_problems(counts, pixels) == FINE
    return ok


class InvalidMask(ValueError):
    """An RLE of :func:`decode_all` that is not well formed; ``index`` is its position, ``reason`` the
    message of :func:`validation_error`."""

    def __init__(self, index: int, reason: str):
        self.index, self.reason = index, reason
        super().__init__(f"mask {index}: {reason}")


def decode_all(rles: Sequence[Mapping]) -> list[np.ndarray]:
    """Each RLE as a (height, width) bool array, equal to pycocotools' ``decode`` (str or bytes counts).

    All masks are parsed and expanded together (one ``np.repeat``): several times faster than
    pycocotools' byte loop at COCO sizes. Each array is a Fortran-ordered view into one buffer. The
    first malformed RLE raises :class:`InvalidMask` (pycocotools would raise or return garbage).
    """
    if not rles:
        return []
    sizes = [(int(r["size"][0]), int(r["size"][1])) for r in rles]
    parsed = parse_counts([r["counts"] for r in rles])
    runs, first = parsed.runs, parsed.first
    problem = parsed.problem.copy()
    problem[(problem == FINE) & (_covered(parsed) != np.array([h * w for h, w in sizes], dtype=np.int64))] = COVERAGE
    for i in np.flatnonzero(problem != FINE).tolist():
        counts = rles[i]["counts"]
        text = counts if isinstance(counts, str) else bytes(counts).decode("latin-1")
        reason = validation_error({"size": list(sizes[i]), "counts": text})
        if reason is not None:
            raise InvalidMask(i, reason)
    ok = problem == FINE
    out: list[np.ndarray | None] = [None] * len(rles)
    runs_per_string = np.diff(first)
    parity = ((np.arange(runs.size) - np.repeat(first[:-1], runs_per_string)) & 1).astype(bool)
    if ok.all():
        flat = np.repeat(parity, runs)
    else:
        keep = np.repeat(ok, runs_per_string)
        flat = np.repeat(parity[keep], runs[keep])
    offset = 0
    for i in np.flatnonzero(ok).tolist():
        h, w = sizes[i]
        out[i] = flat[offset:offset + h * w].reshape(w, h).T
        offset += h * w
    for i in np.flatnonzero(~ok).tolist():  # valid, with values too long for the fast path
        h, w = sizes[i]
        exact = np.asarray(run_lengths(rles[i]["counts"] if isinstance(rles[i]["counts"], str)
                                       else bytes(rles[i]["counts"]).decode("latin-1")), dtype=np.int64)
        out[i] = np.repeat((np.arange(exact.size) & 1).astype(bool), exact).reshape(w, h).T
    return out  # type: ignore[return-value]
