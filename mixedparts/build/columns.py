"""Sample rows as flat fields, and a shard's rows straight into Arrow columns of the Sample schema.

A row as nested dicts, converted by ``pa.Table.from_pylist``, cost a dict per image, object, segment
and mask and then pyarrow's walk over all of them (~35 us a row). Here a row is a tuple of its
fields; :func:`table_of` gathers each leaf column across the shard into one list and assembles the
nested columns from those lists and offsets: the same table (``from_pylist``'s of
:meth:`SampleFields.as_row`, which a test checks), hence the same Parquet bytes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from mixedparts import schema
from mixedparts.masks import Rle
from mixedparts.sources.records import ImageRecord


class SampleFields(NamedTuple):
    sample_id: str
    source: str
    split: str
    task: str
    images: list[ImageRecord]
    categories: list[str]  # one object per image, in image order
    question: str
    answer: str
    segments: list[tuple[str, str, int, Rle]]  # (label, kind, image_index, mask): a NamedTuple each cost ~1 us

    def as_row(self) -> dict:
        """The Sample row (docs/formats.md) as plain Python values."""
        return {
            "sample_id": self.sample_id,
            "source": self.source,
            "split": self.split,
            "task": self.task,
            "images": [{"image_id": i.image_id, "file_name": i.file_name, "width": i.width, "height": i.height}
                       for i in self.images],
            "objects": [{"image_index": i, "category": c} for i, c in enumerate(self.categories)],
            "question": self.question,
            "answer": self.answer,
            "segments": [{"label": label, "kind": kind, "image_index": image_index, "mask": mask}
                         for label, kind, image_index, mask in self.segments],
        }


def arrow_schema() -> pa.Schema:
    """The Sample schema as Arrow's; the first call imports ``datasets`` (~1.5 CPU s)."""
    return schema.SAMPLE_FEATURES.arrow_schema


def _offsets(lengths: list[int]) -> pa.Array:
    ends = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=ends[1:])
    return pa.array(ends, type=pa.int32())


def _array(values, field: pa.Field) -> pa.Array:
    return values if isinstance(values, pa.Array) else pa.array(values, type=field.type)


def _struct(struct_type: pa.StructType, columns: dict) -> pa.StructArray:
    fields = [struct_type.field(i) for i in range(struct_type.num_fields)]
    return pa.StructArray.from_arrays([_array(columns[f.name], f) for f in fields], fields=fields)


def _list_of(list_type: pa.ListType, lengths: list[int], columns: dict) -> pa.ListArray:
    return pa.ListArray.from_arrays(_offsets(lengths), _struct(list_type.value_type, columns), type=list_type)


def table_of(rows: list[SampleFields]) -> pa.Table:
    """``pa.Table.from_pylist([row.as_row() for row in rows], schema=SAMPLE_FEATURES' schema)``, faster."""
    sample_schema = arrow_schema()
    images = [image for row in rows for image in row.images]
    categories = [category for row in rows for category in row.categories]
    segments = [segment for row in rows for segment in row.segments]
    image_lengths = [len(row.images) for row in rows]
    object_lengths = [len(row.categories) for row in rows]
    starts = np.repeat(np.cumsum([0, *object_lengths[:-1]]), object_lengths) if rows else np.zeros(0, np.int64)
    labels, kinds, image_indices, masks = ([segment[field] for segment in segments] for field in range(4))
    sizes = [side for mask in masks for side in mask["size"]]
    segment_type = sample_schema.field("segments").type
    mask_type = segment_type.value_type.field("mask").type
    size_type = mask_type.field("size").type
    mask_column = pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(_offsets([len(mask["size"]) for mask in masks]), pa.array(sizes, pa.int32()),
                                  type=size_type),
         pa.array([mask["counts"] for mask in masks], type=pa.string())],
        fields=[mask_type.field(i) for i in range(mask_type.num_fields)])
    columns = {
        "sample_id": [row.sample_id for row in rows],
        "source": [row.source for row in rows],
        "split": [row.split for row in rows],
        "task": [row.task for row in rows],
        "images": _list_of(sample_schema.field("images").type, image_lengths, {
            "image_id": [i.image_id for i in images], "file_name": [i.file_name for i in images],
            "width": [i.width for i in images], "height": [i.height for i in images]}),
        "objects": _list_of(sample_schema.field("objects").type, object_lengths, {
            "image_index": np.arange(len(categories), dtype=np.int32) - starts.astype(np.int32),
            "category": categories}),
        "question": [row.question for row in rows],
        "answer": [row.answer for row in rows],
        "segments": _list_of(segment_type, [len(row.segments) for row in rows], {
            "label": labels, "kind": kinds, "image_index": image_indices, "mask": mask_column}),
    }
    return pa.Table.from_arrays([_array(columns[f.name], f) for f in sample_schema], schema=sample_schema)
