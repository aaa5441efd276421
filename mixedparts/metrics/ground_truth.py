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

import numpy as np

from mixedparts.atomic import atomic_output
from mixedparts.errors import MixedPartsError
from mixedparts.gc_pause import cyclic_gc_paused
from mixedparts.schema import SAMPLE_FIELDS, SEGMENT_KINDS, TASKS

GT_FORMAT = "mixedparts-gt/1"
SCORING_FIELDS = ("sample_id", "source", "split", "task", "images", "objects", "segments")
"""The columns scoring reads; question and answer are not needed."""


class GroundTruthError(MixedPartsError):
    """Ground truth that cannot be read or is inconsistent."""


class GroundTruth:
    """The samples of one split, as sample rows (``rows``) and as flat columns (``columns``, what scoring reads).

    Read from a dataset it holds the Parquet tables and makes the rows only when asked (a report, an
    export): a row is a dozen Python objects per segment, most of reading a split's time and memory.
    """

    def __init__(self, rows: list[dict] | None, split: str, origin: str, *, tables: list | None = None):
        if (rows is None) == (tables is None):
            raise ValueError("GroundTruth takes rows or tables")
        self._rows, self._tables = rows, tables
        self.split = split
        self.origin = origin  # the folder, dataset name or file it came from
        self._columns: GroundTruthColumns | None = None

    @property
    def rows(self) -> list[dict]:
        if self._rows is None:
            self._rows = _rows_of(self._tables)
        return self._rows

    @property
    def columns(self) -> GroundTruthColumns:
        if self._columns is None:
            self._columns = (GroundTruthColumns.from_rows(self._rows) if self._tables is None
                             else GroundTruthColumns.from_tables(self._tables, self.origin, self.split))
        return self._columns

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else sum(table.num_rows for table in self._tables)

    def image_sizes(self) -> dict[str, list[tuple[int, int]]]:
        """sample id -> (height, width) of each image, in ground-truth order."""
        columns = self.columns
        sizes = list(zip(columns.image_heights.tolist(), columns.image_widths.tolist()))
        bounds = columns.image_offsets.tolist()
        return {sample_id: sizes[start:stop]
                for sample_id, start, stop in zip(columns.sample_ids, bounds[:-1], bounds[1:])}


@dataclass
class GroundTruthColumns:
    """The scoring fields of a split's rows as flat arrays, row after row: per sample, per image, per
    object and per segment (in row order, then the row's own order). Read from a dataset, labels and
    RLE strings stay Arrow arrays, so no Python object is made per segment until a scoring worker
    needs its masks; made from rows, the masks are the rows' own dicts."""

    sample_ids: list[str]
    sources: list[str]
    tasks: np.ndarray  # int64, index into schema.TASKS
    image_offsets: np.ndarray  # int64, rows + 1: row r's images are [image_offsets[r], image_offsets[r + 1])
    image_heights: np.ndarray
    image_widths: np.ndarray
    object_rows: np.ndarray
    object_image_index: np.ndarray
    object_categories: list[str]
    segment_rows: np.ndarray
    segment_image_index: np.ndarray
    segment_is_object: np.ndarray  # bool: kind "object"
    segment_labels: object  # a pyarrow string array (read from a dataset) or a list of strings (from rows)
    mask_heights: np.ndarray | None = None  # read from a dataset: the RLEs' sizes and strings, per segment
    mask_widths: np.ndarray | None = None
    mask_counts: object = None  # a pyarrow string array
    mask_dicts: list[dict] | None = None  # made from rows: the rows' own RLE dicts, per segment

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def image_counts(self) -> np.ndarray:
        return np.diff(self.image_offsets)

    @classmethod
    def from_rows(cls, rows: list[dict]) -> GroundTruthColumns:
        """Columns of rows that passed :func:`_check_rows`; the masks stay the rows' own dicts."""
        # One pass over each kind of record, transposed by zip: each dict is visited once (the rows'
        # dicts lie scattered in memory, so every further pass over them costs as much again).
        per_row = [(row["sample_id"], row["source"], TASKS.index(row["task"]), len(row["images"]),
                    len(row["objects"]), len(row["segments"])) for row in rows]
        sample_ids, sources, tasks, image_counts, object_counts, segment_counts = _transposed(per_row, 6)
        heights, widths = _transposed([(image["height"], image["width"])
                                       for row in rows for image in row["images"]], 2)
        object_image_index, categories = _transposed([(obj["image_index"], obj["category"])
                                                      for row in rows for obj in row["objects"]], 2)
        segment_image_index, is_object, labels, masks = _transposed(
            [(segment["image_index"], segment["kind"] == "object", segment["label"], segment["mask"])
             for row in rows for segment in row["segments"]], 4)
        return cls(sample_ids, sources, _int64(tasks),
                   np.concatenate([[0], np.cumsum(_int64(image_counts))]).astype(np.int64),
                   _int64(heights), _int64(widths), _repeat_rows(object_counts), _int64(object_image_index),
                   categories, _repeat_rows(segment_counts), _int64(segment_image_index),
                   np.array(is_object, dtype=bool), labels, mask_dicts=masks)

    @classmethod
    def from_tables(cls, tables: list, origin: str, split: str) -> GroundTruthColumns:
        """Columns of pyarrow tables of :data:`SCORING_FIELDS`, checked as :func:`_check_rows` checks rows
        (in bulk; where something fails, the rows are made and checked one by one for the message)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not tables:
            return cls.from_rows([])
        parts: dict[str, list] = {name: [] for name in (
            "sample_ids", "sources", "tasks", "splits", "image_counts", "image_heights", "image_widths",
            "object_rows", "object_image_index", "object_categories", "segment_rows", "segment_image_index",
            "segment_kinds", "segment_labels", "mask_sizes", "mask_counts")}
        base = 0
        for table in tables:
            def column(name):
                return table.column(name).combine_chunks()

            for name, field_name in (("sample_ids", "sample_id"), ("sources", "source"), ("tasks", "task"),
                                     ("splits", "split")):
                parts[name].append(column(field_name))
            images, objects, segments = column("images"), column("objects"), column("segments")
            parts["image_counts"].append(pc.list_value_length(images))
            image_fields = _struct_fields(images.flatten())
            parts["image_heights"].append(image_fields["height"])
            parts["image_widths"].append(image_fields["width"])
            object_fields = _struct_fields(objects.flatten())
            parts["object_rows"].append(_parent_rows(objects, base))
            parts["object_image_index"].append(object_fields["image_index"])
            parts["object_categories"].append(object_fields["category"])
            segment_fields = _struct_fields(segments.flatten())
            parts["segment_rows"].append(_parent_rows(segments, base))
            parts["segment_image_index"].append(segment_fields["image_index"])
            parts["segment_kinds"].append(segment_fields["kind"])
            parts["segment_labels"].append(segment_fields["label"])
            mask_fields = _struct_fields(segment_fields["mask"])
            parts["mask_sizes"].append(mask_fields["size"])
            parts["mask_counts"].append(mask_fields["counts"])
            base += table.num_rows
        arrays = {name: pa.chunked_array(chunks, type=chunks[0].type) for name, chunks in parts.items()}
        problem = _bulk_problem(arrays, split)
        if problem is not None:
            _check_rows(_rows_of(tables), origin, split)  # names the sample
            raise GroundTruthError(f"{origin}: {problem}")
        sizes = arrays["mask_sizes"]
        size_values = _numpy(pc.list_flatten(sizes)).reshape(-1, 2)
        counts = _one_array(arrays["mask_counts"])
        return cls(arrays["sample_ids"].to_pylist(), arrays["sources"].to_pylist(),
                   _numpy(pc.index_in(arrays["tasks"], pa.array(TASKS))),
                   np.concatenate([[0], np.cumsum(_numpy(arrays["image_counts"]))]).astype(np.int64),
                   _numpy(arrays["image_heights"]), _numpy(arrays["image_widths"]),
                   _numpy(arrays["object_rows"]), _numpy(arrays["object_image_index"]),
                   arrays["object_categories"].to_pylist(), _numpy(arrays["segment_rows"]),
                   _numpy(arrays["segment_image_index"]),
                   _numpy(pc.equal(arrays["segment_kinds"], "object")).astype(bool),
                   _one_array(arrays["segment_labels"]), size_values[:, 0].copy(), size_values[:, 1].copy(),
                   counts)


def _rows_of(tables: list) -> list[dict]:
    with cyclic_gc_paused():
        return [row for table in tables for row in table.to_pylist()]


def _one_array(strings):
    """One contiguous string array (``take`` on a chunked one concatenates the chunks on every call)."""
    import pyarrow as pa

    if isinstance(strings, pa.ChunkedArray):
        if strings.nbytes >= 2**31 - 1:  # past 32-bit offsets
            strings = strings.cast(pa.large_string())
        strings = strings.combine_chunks()
    return strings


def _struct_fields(array) -> dict:
    """A struct array's fields by name, nulls of the struct carried into each field."""
    return dict(zip([field.name for field in array.type], array.flatten()))


def _parent_rows(lists, base: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.add(pc.list_parent_indices(lists).cast(pa.int64()), base)


def _numpy(array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64) if len(array) else np.zeros(0, np.int64)


def _transposed(records: list[tuple], fields: int) -> list[list]:
    """Columns of a list of equal-length tuples."""
    return [list(column) for column in zip(*records)] if records else [[] for _ in range(fields)]


def _repeat_rows(counts: list[int]) -> np.ndarray:
    """Each row's index, repeated as many times as it has items."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), _int64(counts))


def _int64(values: list) -> np.ndarray:
    return np.array(values, dtype=np.int64) if values else np.zeros(0, dtype=np.int64)


def _all(flags) -> bool:
    """Whether every flag is true (Arrow's ``all`` of no values is null)."""
    import pyarrow.compute as pc

    return len(flags) == 0 or bool(pc.all(flags).as_py())


def _bulk_problem(arrays: dict, split: str) -> str | None:
    """What is wrong when the columns fail a check of :func:`_check_rows` or hold nulls where scoring
    needs values; None when they are fine. It only detects: the rows, checked one by one, name the sample."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name, array in arrays.items():
        if array.null_count:
            return f"null values in the ground truth's {name.replace('_', ' ')}"
    if pc.count_distinct(arrays["sample_ids"]).as_py() != len(arrays["sample_ids"]):
        return "duplicate sample ids"
    if not _all(pc.equal(arrays["splits"], split)):
        return f"samples not in split {split!r}"
    if not _all(pc.is_in(arrays["tasks"], pa.array(TASKS))):
        return "an unknown task"
    if not _all(pc.is_in(arrays["segment_kinds"], pa.array(SEGMENT_KINDS))):
        return "an unknown segment kind"
    if not _all(pc.equal(pc.list_value_length(arrays["mask_sizes"]), 2)):
        return "a mask size that is not [height, width]"
    counts = _numpy(arrays["image_counts"])
    index = _numpy(arrays["segment_image_index"])
    rows = _numpy(arrays["segment_rows"])
    if ((index < 0) | (index >= counts[rows])).any():
        return "a segment's image_index out of range"
    return None


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
    truth = GroundTruth(None, split, str(data), tables=_read_tables(data, split))
    truth.columns  # checked now, before anything else is read
    return truth


def _read_tables(data: str | os.PathLike, split: str) -> list:
    from mixedparts.loader import iter_tables

    try:
        return list(iter_tables(data, [split], list(SCORING_FIELDS)))
    except MixedPartsError as error:
        raise GroundTruthError(str(error)) from None


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
