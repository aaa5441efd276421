"""Row assembly shortcuts give the rows the plain code gave: seeding, and the unions behind each segment."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import numpy as np
import pytest

from mixedparts import masks
from mixedparts.build import build
import pyarrow as pa
import pyarrow.parquet as pq

from mixedparts import schema
from mixedparts.build.columns import table_of
from mixedparts.build.materialize import materialize, materialize_rows, sample_rng, union_inputs
from mixedparts.build.options import BuildOptions
from mixedparts.build.seeding import SampleStreams
from mixedparts.build.shards import write_table
from mixedparts.sources import open_readers
from mixedparts.sources.coco import segmentation_to_rle, well_formed_rle_strings


def _same_draws(expected: np.random.Generator, got, choices: random.Random, steps: int = 12) -> None:
    """numpy's own Generator is the reference: a random mix of every draw the wording makes, so 32-bit
    draws (integers, permutation) and 64-bit ones (random) interleave and the kept half-words matter."""
    for _ in range(steps):
        kind = choices.randrange(3)
        if kind == 0:
            high = choices.choice([1, 2, 3, 4, 5, 7, 13, 100, 1000, 2**31 + 5, 2**32 - 1, 2**32])
            assert got.integers(high) == int(expected.integers(high)), high
        elif kind == 1:
            assert got.random() == expected.random()
        else:
            n = choices.choice([0, 1, 2, 3, 5, 9, 17, 40, 300])
            assert got.permutation(n) == expected.permutation(n).tolist(), n


def test_sample_rng_draws_as_default_rng_over_the_key_bytes():
    choices = random.Random(0)
    for i in range(300):
        key = hashlib.blake2b(str(i).encode(), digest_size=16).digest()
        expected, got = np.random.default_rng(list(key)), sample_rng(key)
        assert (got.state, got.increment) == tuple(expected.bit_generator.state["state"].values())
        _same_draws(expected, got, choices)
    zeros = bytes(16)  # trailing zero bytes still count as words
    assert sample_rng(zeros).random() == np.random.default_rng(list(zeros)).random()


def test_streams_seeded_together_draw_as_default_rngs_over_each_key():
    keys = [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(3000)]
    keys += [bytes(16), b"\xff" * 16, bytes(range(16))]
    streams = SampleStreams(keys)
    choices = random.Random(1)
    for i in [*range(len(keys)), 7, 0]:  # a stream asked for again starts over
        _same_draws(np.random.default_rng(list(keys[i])), streams.stream(i), choices, steps=6)
    short = [b"\x01\x02", b"\x03\x04"]  # fewer words than SeedSequence's pool
    _same_draws(np.random.default_rng([3, 4]), SampleStreams(short).stream(1), choices)


def test_wording_stream_refuses_bounds_numpy_would_draw_differently():
    stream = sample_rng(bytes(16))
    for bad in (0, -1, 2**32 + 1):
        with pytest.raises(ValueError):
            stream.integers(bad)
    with pytest.raises(ValueError):
        stream.permutation(-1)


@pytest.fixture(scope="module")
def planned(tiny_sources, tmp_path_factory):
    paths = tiny_sources(0)
    readers = open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                           partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])
    return build(readers, tmp_path_factory.mktemp("materialize") / "dataset", BuildOptions(), progress=False)


def test_union_inputs_are_the_instances_behind_every_segment_of_the_row(planned):
    merged_somewhere = 0
    for split, plan in planned.plans.items():
        for i in range(len(plan)):
            pool_index, task, objects = plan.row(i)
            pool = planned.pools[split][pool_index]
            row = materialize(pool, task, objects, BuildOptions().seed)
            lists = union_inputs(pool, task, objects)
            merged_somewhere += sum(len(instances) > 1 for instances in lists)
            assert Counter(masks.union(instances)["counts"] for instances in lists) == Counter(
                segment["mask"]["counts"] for segment in row["segments"])
    assert merged_somewhere  # the tiny releases do have parts with several instances


def test_shard_columns_are_the_table_and_parquet_bytes_of_the_row_dicts(planned, tmp_path):
    for split, plan in planned.plans.items():
        pools = planned.pools[split]
        rows = materialize_rows([(pools[p], t, o) for p, t, o in plan.rows(0, len(plan))], BuildOptions().seed)
        assert [(p, t, o) for p, t, o in plan.rows(3, 9)] == [plan.row(i) for i in range(3, 9)]
        columns = table_of(rows)
        dicts = pa.Table.from_pylist([row.as_row() for row in rows], schema=schema.SAMPLE_FEATURES.arrow_schema)
        assert columns.schema.equals(dicts.schema, check_metadata=True) and columns.equals(dicts)
        write_table(columns, tmp_path / "columns.parquet")
        write_table(dicts, tmp_path / "dicts.parquet")
        assert (tmp_path / "columns.parquet").read_bytes() == (tmp_path / "dicts.parquet").read_bytes()
        assert pq.read_table(tmp_path / "columns.parquet").to_pylist() == [row.as_row() for row in rows]
    assert table_of([]).num_rows == 0 and table_of([]).schema.equals(schema.SAMPLE_FEATURES.arrow_schema)


def test_rle_strings_checked_in_bulk_are_the_ones_checked_one_by_one():
    good = masks.encode(np.eye(6, 8, dtype=bool))
    cases = [good, {**good, "size": [6, 9]}, {"size": [True, 8], "counts": good["counts"]},
             {**good, "counts": good["counts"][:-1]}, {**good, "counts": "not RLE at all!~"},
             {**good, "counts": good["counts"] + "é"}, {**good, "counts": "0" * 20}, {**good, "extra": 1},
             {"size": [6, 8], "counts": [48]}, [[0, 0, 4, 0, 4, 4]], {**good, "counts": good["counts"].encode()}]
    flags = well_formed_rle_strings([(case, 6, 8) for case in cases])
    assert flags[0] and not any(flags[1:])
    for case, flag in zip(cases, flags):
        try:
            plain = segmentation_to_rle(case, 6, 8)
        except ValueError:
            plain = None
        assert not flag or plain == (case, 0)  # vouched for only what the one-by-one check accepts as it is
