"""Plain ``datasets.load_dataset(folder)`` gives each build's own rows, whatever the folder is called.

``datasets`` names its cache of a local folder after the folder's name and a hash of the dataset
card's YAML, never the files; the card therefore names the shards' content (see build/card.py).
"""

import shutil

import datasets
import pyarrow.parquet as pq

from mixedparts.build.options import BuildOptions


def shard_ids(folder, split):
    return [i for shard in sorted((folder / "data").glob(f"{split}-*.parquet"))
            for i in pq.read_table(shard, columns=["sample_id"])["sample_id"].to_pylist()]


def plain_ids(folder, cache, split="test"):
    return datasets.load_dataset(str(folder), split=split, cache_dir=str(cache))["sample_id"]


def test_two_builds_in_folders_of_the_same_name_share_one_cache(build_tiny, tmp_path):
    first = build_tiny(tmp_path / "a" / "dataset", BuildOptions(max_samples_per_split=40))
    second = build_tiny(tmp_path / "b" / "dataset", BuildOptions(seed=1))
    assert shard_ids(first, "test") != shard_ids(second, "test")
    cache = tmp_path / "hf-cache"
    assert plain_ids(first, cache) == shard_ids(first, "test")
    assert plain_ids(second, cache) == shard_ids(second, "test")
    assert plain_ids(first, cache) == shard_ids(first, "test")  # and its own entry is still the right one


def test_a_folder_rebuilt_in_place_loads_the_new_rows(build_tiny, tmp_path):
    folder, cache = tmp_path / "dataset", tmp_path / "hf-cache"
    build_tiny(folder, BuildOptions(max_samples_per_split=40))
    before = plain_ids(folder, cache)
    assert len(before) == 40
    shutil.rmtree(folder)
    build_tiny(folder, BuildOptions(seed=3))
    after = plain_ids(folder, cache)
    assert after == shard_ids(folder, "test") and after != before


def test_same_content_reuses_its_cache_entry(build_tiny, tmp_path):
    """Deterministic builds: the same inputs give the same card, so a second identical build hits the cache."""
    cache = tmp_path / "hf-cache"
    one = build_tiny(tmp_path / "one" / "dataset", BuildOptions(max_samples_per_split=40))
    two = build_tiny(tmp_path / "two" / "dataset", BuildOptions(max_samples_per_split=40))
    assert (one / "README.md").read_text() == (two / "README.md").read_text()
    plain_ids(one, cache)
    entries = sorted(p for p in cache.rglob("dataset_info.json"))
    plain_ids(two, cache)
    assert sorted(p for p in cache.rglob("dataset_info.json")) == entries
