"""Row assembly shortcuts give the rows the plain code gave: seeding, and the unions behind each segment."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from mixedparts import masks
from mixedparts.build import build
from mixedparts.build.materialize import materialize, sample_rng, union_inputs
from mixedparts.build.options import BuildOptions
from mixedparts.sources import open_readers


def test_sample_rng_is_the_stream_of_default_rng_over_the_key_bytes():
    for i in range(300):
        key = hashlib.blake2b(str(i).encode(), digest_size=16).digest()
        expected, got = np.random.default_rng(list(key)), sample_rng(key)
        assert got.bit_generator.state == expected.bit_generator.state
        assert got.integers(1000, size=5).tolist() == expected.integers(1000, size=5).tolist()
    zeros = bytes(16)  # trailing zero bytes still count as words
    assert sample_rng(zeros).random() == np.random.default_rng(list(zeros)).random()


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
