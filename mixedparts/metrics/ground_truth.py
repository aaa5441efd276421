"""Ground truth for scoring: a built dataset folder, or an exported ground-truth file.

Dataset folder: Parquet shards ``DIR/data/{split}-NNNNN-of-MMMMM.parquet`` of
:data:`mixedparts.schema.SAMPLE_FEATURES` rows, as the builder writes them (a Hugging Face dataset
name works too, through ``datasets.load_dataset``).

Ground-truth file (what the leaderboard keeps): JSON Lines, the header
``{"format": "mixedparts-gt/1", "split": "test", "samples": N}`` then one sample row per line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mixedparts.atomic import atomic_output
from mixedparts.errors import MixedPartsError
from mixedparts.gc_pause import cyclic_gc_paused
from mixedparts.schema import SAMPLE_FIELDS, SEGMENT_KINDS, TASKS

GT_FORMAT = "mixedparts-gt/1"
SCORING_FIELDS = ("sample_id", "source", "split", "task", "images", "objects", "segments")
"""The columns scoring reads; question and answer are not needed."""


class GroundTruthError(MixedPartsError):
    """Ground truth that cannot be read or is inconsistent."""


@dataclass
class GroundTruth:
    rows: list[dict]
    split: str
    origin: str  # the folder, dataset name or file it came from

    def image_sizes(self) -> dict[str, list[tuple[int, int]]]:
        """sample id -> (height, width) of each image, in ground-truth order."""
        return {row["sample_id"]: [(image["height"], image["width"]) for image in row["images"]]
                for row in self.rows}


@cyclic_gc_paused()  # millions of small acyclic dicts and lists (see mixedparts.gc_pause)
def load_ground_truth(data: str | os.PathLike | None = None, split: str = "test",
                      gt_file: str | os.PathLike | None = None) -> GroundTruth:
    """The split to score, from ``gt_file`` if given, else from the dataset ``data``."""
    if gt_file is not None:
        truth = read_ground_truth(gt_file)
        if split and truth.split != split:
            raise GroundTruthError(f"{gt_file}: holds split {truth.split!r}, but split {split!r} was asked for")
        return truth
    if data is None:
        raise GroundTruthError("no ground truth given: pass --data DIR (a built dataset) or --gt FILE")
    return GroundTruth(read_dataset_split(data, split), split, str(data))


def read_dataset_split(data: str | os.PathLike, split: str, columns: Iterable[str] = SCORING_FIELDS) -> list[dict]:
    """Rows of one split of a built dataset folder, ``"mixedparts"`` (the default location) or a Hub id."""
    from mixedparts.loader import read_rows

    try:
        rows = read_rows(data, split, list(columns))
    except MixedPartsError as error:
        raise GroundTruthError(str(error)) from None
    _check_rows(rows, str(data), split)
    return rows


def write_ground_truth(rows: Iterable[Mapping], path: str | os.PathLike, split: str | None = None) -> Path:
    """Export sample rows as a ground-truth file (atomically). ``split`` defaults to the rows' split."""
    path = Path(path)
    rows = [dict(row) for row in rows]
    splits = {row.get("split") for row in rows}
    if split is None:
        if len(splits) != 1:
            raise GroundTruthError(f"{path}: the rows span splits {sorted(map(str, splits))}; pass split=")
        (split,) = splits
    _check_rows(rows, str(path), split)
    with atomic_output(path) as out:
        out.write(json.dumps({"format": GT_FORMAT, "split": split, "samples": len(rows)}) + "\n")
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
    return path


def read_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Read a file written by :func:`write_ground_truth`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise GroundTruthError(f"{path}: cannot read: {error}") from None
    rows = []
    header = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise GroundTruthError(f"{path}: line {number}: not valid JSON: {error}") from None
        if header is None:
            if not isinstance(value, dict) or value.get("format") != GT_FORMAT:
                raise GroundTruthError(f"{path}: the first line must be the header {{\"format\": \"{GT_FORMAT}\", "
                                       f"\"split\": ...}}")
            header = value
        else:
            rows.append(value)
    if header is None:
        raise GroundTruthError(f"{path}: empty file")
    split = header.get("split")
    if not isinstance(split, str):
        raise GroundTruthError(f"{path}: the header's 'split' must be a string")
    if "samples" in header and header["samples"] != len(rows):
        raise GroundTruthError(f"{path}: the header announces {header['samples']} samples, the file holds "
                               f"{len(rows)} (truncated?)")
    _check_rows(rows, str(path), split)
    return GroundTruth(rows, split, str(path))


def _check_rows(rows: list[dict], origin: str, split: str) -> None:
    """Cheap consistency checks: the builder validates masks, this catches a wrong or damaged file."""
    seen: set[str] = set()
    for number, row in enumerate(rows):
        try:
            _check_row(row, number, origin, split, seen)
        except (KeyError, TypeError, AttributeError) as error:
            raise GroundTruthError(f"{origin}: sample #{number} is malformed ({type(error).__name__}: {error})") \
                from None


def _check_row(row: dict, number: int, origin: str, split: str, seen: set[str]) -> None:
    if not isinstance(row, dict):
        raise GroundTruthError(f"{origin}: sample #{number} is not an object")
    missing = [key for key in SCORING_FIELDS if key not in row]
    if missing:
        raise GroundTruthError(f"{origin}: sample #{number}: missing {', '.join(missing)} "
                               f"(expected the fields of schema.SAMPLE_FEATURES: {', '.join(SAMPLE_FIELDS)})")
    sample_id = row["sample_id"]
    if sample_id in seen:
        raise GroundTruthError(f"{origin}: duplicate sample id {sample_id!r}")
    seen.add(sample_id)
    if row["split"] != split:
        raise GroundTruthError(f"{origin}: sample {sample_id!r} is in split {row['split']!r}, not {split!r}")
    if row["task"] not in TASKS:
        raise GroundTruthError(f"{origin}: sample {sample_id!r}: unknown task {row['task']!r}")
    count = len(row["images"])
    for segment in row["segments"]:
        if not 0 <= segment["image_index"] < count or segment["kind"] not in SEGMENT_KINDS:
            raise GroundTruthError(f"{origin}: sample {sample_id!r}: bad segment {segment['label']!r} "
                                   f"(image_index {segment['image_index']}, kind {segment['kind']!r})")
