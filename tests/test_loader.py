"""The loader on a tiny built dataset: same rows every way, lazy decoding, masks as pycocotools decodes
them, image roots and their errors, and the PyTorch collate function."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mixedparts import masks
from mixedparts.build import build
from mixedparts.build.options import BuildOptions
from mixedparts.images import ImageFileError, ImageResolver, ImageRootError
from mixedparts.loader import (IMAGES_COLUMN, MASKS_COLUMN, DatasetLoadError, MaskError, decode_masks, decode_row,
                               iter_rows, load_dataset, read_rows, resolve, row_positions, rows_at)
from mixedparts.metrics.ground_truth import read_dataset_split
from mixedparts.schema import SAMPLE_FIELDS
from mixedparts.sources import open_readers


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_sources, build_tiny):
    root = tmp_path_factory.mktemp("loader")
    paths = tiny_sources(0)
    home = root / "home"
    build_tiny(home / "mixedparts", BuildOptions(shard_rows=150))
    return SimpleNamespace(root=root, home=home, data=home / "mixedparts", sources=paths, cache=root / "hf-cache")


@pytest.fixture
def at_home(built, monkeypatch):
    monkeypatch.setenv("MIXEDPARTS_HOME", str(built.home))
    return built


def reference_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def plain(row: dict) -> dict:
    return {key: row[key] for key in SAMPLE_FIELDS}


# ------------------------------------------------------------------------------------------ rows


def test_every_way_of_loading_gives_the_same_rows(at_home):
    built = at_home
    expected = read_dataset_split(built.data, "test", columns=SAMPLE_FIELDS)
    assert len(expected) > 100
    default = load_dataset("mixedparts", split="test", cache_dir=built.cache)
    folder = load_dataset(built.data, split="test", cache_dir=built.cache)
    streamed = load_dataset(str(built.data), split="test", streaming=True)
    hf = datasets.load_dataset(str(built.data), split="test", cache_dir=str(built.cache))
    assert isinstance(default, datasets.Dataset) and isinstance(streamed, datasets.IterableDataset)
    for loaded in (default, folder, streamed, hf):
        assert [plain(row) for row in loaded] == expected
    assert read_rows("mixedparts", "test") == expected


def test_split_none_gives_every_split(built):
    everything = load_dataset(built.data, cache_dir=built.cache)
    assert isinstance(everything, datasets.DatasetDict)
    manifest = json.loads((built.data / "manifest.json").read_text())
    assert {name: len(split) for name, split in everything.items()} == manifest["splits"]
    streams = load_dataset(built.data, streaming=True, decode_masks=True)
    assert isinstance(streams, datasets.IterableDatasetDict)
    row = next(iter(streams["val"]))
    assert len(row[MASKS_COLUMN]) == len(row["segments"])


def test_row_positions_and_rows_at(built):
    rows = read_dataset_split(built.data, "train", columns=SAMPLE_FIELDS)
    assert len(list((built.data / "data").glob("train-*.parquet"))) > 1  # several shards
    positions = row_positions(built.data, "train", task="unique_parts")
    assert [rows[p]["sample_id"] for p in positions] == [r["sample_id"] for r in rows if r["task"] == "unique_parts"]
    picks = [len(rows) - 1, 0, 151, 7]
    assert rows_at(built.data, "train", picks) == [rows[p] for p in picks]
    assert list(row_positions(built.data, "train", sample_id=rows[200]["sample_id"])) == [200]
    with pytest.raises(DatasetLoadError, match="no row"):
        rows_at(built.data, "train", [len(rows)])


def test_iter_rows_limits_selects_and_stops_early(built, monkeypatch):
    from mixedparts import loader

    rows = read_rows(built.data, "train")
    assert len(rows) > 300 and [plain(r) for r in rows] == rows
    tables = []
    real_iter_tables = loader.iter_tables
    monkeypatch.setattr(loader, "iter_tables", lambda *a, **k: (tables.append(t) or t for t in real_iter_tables(*a, **k)))
    assert read_rows(built.data, "train", limit=7) == rows[:7]
    assert len(tables) == 1  # the first shard held them: no other shard was read
    assert read_rows(built.data, "train", limit=len(rows) + 5) == rows
    assert list(iter_rows(built.data, "train", limit=0)) == []
    unique = [r for r in rows if r["task"] == "unique_parts"]
    assert len(unique) > 150  # beyond the first shard
    assert read_rows(built.data, "train", ["sample_id"], task="unique_parts", limit=155) == [
        {"sample_id": r["sample_id"]} for r in unique[:155]]
    with pytest.raises(DatasetLoadError, match=r"no split 'dev' \(splits present: train, val, test\)"):
        next(iter_rows(built.data, "dev"))


def test_scoring_baselines_and_calico_read_rows_and_roots_one_way(at_home, monkeypatch, tmp_path):
    """Each reader goes through ``loader.iter_tables`` (the baselines and Calico through ``iter_rows`` on top
    of it; scoring keeps the tables) and finds the default location's rows and image roots from any
    working directory (the baselines' and Calico's roots used to be looked up in ./mixedparts)."""
    from baselines.common import Images, load_rows
    from baselines.part_detector import dataset_vocabulary, vocabulary_from_rows
    from calico_baseline.data import image_roots_for
    from calico_baseline.data import read_rows as calico_rows
    from mixedparts import loader
    from mixedparts.metrics.ground_truth import load_ground_truth

    monkeypatch.chdir(tmp_path)
    expected = read_rows(at_home.data, "val")
    every_split = [r for s in ("train", "val", "test") for r in read_rows(at_home.data, s)]
    calls, table_calls = [], []
    real_iter_rows, real_iter_tables = loader.iter_rows, loader.iter_tables
    monkeypatch.setattr(loader, "iter_rows", lambda *a, **k: calls.append(a[:2]) or real_iter_rows(*a, **k))
    monkeypatch.setattr(loader, "iter_tables", lambda *a, **k: table_calls.append(a[:2]) or real_iter_tables(*a, **k))
    assert calico_rows("mixedparts", "val", 5) == expected[:5]
    assert load_rows("mixedparts", "val") == expected
    assert [r["sample_id"] for r in load_ground_truth("mixedparts", "val").rows] == [r["sample_id"] for r in expected]
    assert dataset_vocabulary("mixedparts", fallback=[]) == vocabulary_from_rows(every_split)
    assert len(calls) == 5 and all(split in ("train", "val", "test") for _, split in calls)
    assert len(table_calls) == 6 and all(splits in (["train"], ["val"], ["test"]) for _, splits in table_calls)

    manifest = ImageResolver.for_dataset(at_home.data)
    row = expected[0]
    for resolver in (image_roots_for("mixedparts"), Images("mixedparts").resolver):
        assert resolver.manifest_roots == manifest.manifest_roots and resolver.origin == manifest.origin
    image = Images("mixedparts").open(row, 0)
    assert (image.height, image.width) == (row["images"][0]["height"], row["images"][0]["width"])


# ------------------------------------------------------------------------------------------ masks


def test_decoded_masks_equal_pycocotools(built):
    ds = load_dataset(built.data, split="test", decode_masks=True, cache_dir=built.cache)
    assert ds.format["type"] == "custom"  # a transform: decoding happens on access
    checked = 0
    for row in ds:
        assert len(row[MASKS_COLUMN]) == len(row["segments"])
        for segment, mask in zip(row["segments"], row[MASKS_COLUMN]):
            image = row["images"][segment["image_index"]]
            assert mask.dtype == bool and mask.shape == (image["height"], image["width"])
            assert np.array_equal(mask, reference_mask(segment["mask"]))
            checked += 1
    assert checked > 500
    streamed = next(iter(load_dataset(built.data, split="test", streaming=True, decode_masks=True)))
    for segment, mask in zip(streamed["segments"], streamed[MASKS_COLUMN]):
        assert np.array_equal(mask, reference_mask(segment["mask"]))
    batch = ds[3:9]  # slices decode too, one list of masks per row
    assert [len(m) for m in batch[MASKS_COLUMN]] == [len(s) for s in batch["segments"]]


def test_decode_masks_matches_pycocotools_on_awkward_masks():
    rng = np.random.default_rng(1)
    arrays = [np.ones((3, 4), bool), np.zeros((5, 2), bool), rng.random((37, 23)) < 0.5, rng.random((8, 90)) < 0.03,
              np.eye(40, dtype=bool), np.zeros((1, 1), bool), np.ones((1, 1), bool)]
    big = np.zeros((700, 900), bool)
    big[3:690, 1:898] = True
    big[100:110, 200:300] = False
    arrays.append(big)
    segments = [{"mask": masks.encode(a)} for a in arrays]
    decoded = decode_masks(segments)
    for array, mask in zip(arrays, decoded):
        assert mask.shape == array.shape and np.array_equal(mask, array)
        assert np.array_equal(mask, reference_mask(masks.encode(array)))
    # pycocotools returns garbage for some malformed strings and raises for others: decode_masks refuses them all.
    for size, counts, reason in (([4, 4], "3", "covers 3 pixels"), ([2, 2], "0!", "invalid RLE character"),
                                 ([2, 2], "0Z", "truncated"), ([2, 2], "", "covers 0 pixels")):
        with pytest.raises(MaskError, match=f"segment 1 .*{reason}"):
            decode_masks([segments[0], {"label": "leg", "mask": {"size": size, "counts": counts}}])
    assert decode_masks([]) == []


# ------------------------------------------------------------------------------------------ images


def test_decoded_images_are_the_files(built):
    ds = load_dataset(built.data, split="val", decode_images=True, decode_masks=True, cache_dir=built.cache)
    roots = json.loads((built.data / "manifest.json").read_text())["image_roots"]
    for index in (0, len(ds) - 1):
        row = ds[index]
        assert len(row[IMAGES_COLUMN]) == len(row["images"])
        for meta, image in zip(row["images"], row[IMAGES_COLUMN]):
            assert image.mode == "RGB" and image.size == (meta["width"], meta["height"])
            path = Path(roots[row["source"]][row["split"]]) / meta["file_name"]
            with Image.open(path) as reference:
                assert np.array_equal(np.asarray(image), np.asarray(reference.convert("RGB")))


def test_user_image_roots_may_be_release_folders(built, tmp_path):
    """A dataset whose manifest roots are gone works with image_roots given as the build's release folders."""
    moved = tmp_path / "moved"
    shutil.copytree(built.data, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["image_roots"] = {source: {split: f"/nonexistent/{source}" for split in splits}
                               for source, splits in manifest["image_roots"].items()}
    (moved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageRootError, match=r"image root of .* does not exist: /nonexistent/.*image_roots="):
        load_dataset(moved, split="test", decode_images=True, cache_dir=built.cache)
    roots = {"paco_lvis": str(built.sources["coco_images"]), "partimagenet": str(built.sources["partimagenet"]),
             "ade20k_part234": str(built.sources["ade20k_part234"])}
    ds = load_dataset(moved, split="test", decode_images=True, image_roots=roots, cache_dir=built.cache)
    sources_seen = set()
    for row in ds:
        sources_seen.add(row["source"])
        assert [i.size for i in row[IMAGES_COLUMN]] == [(m["width"], m["height"]) for m in row["images"]]
    assert sources_seen == {"paco_lvis", "partimagenet", "ade20k_part234"}


def test_missing_image_file_is_reported_on_access(built, tmp_path):
    roots = {"paco_lvis": tmp_path / "coco", "partimagenet": built.sources["partimagenet"],
             "ade20k_part234": built.sources["ade20k_part234"]}
    shutil.copytree(built.sources["coco_images"], roots["paco_lvis"])
    ds = load_dataset(built.data, split="test", decode_images=True, image_roots=roots, cache_dir=built.cache)
    index = next(i for i, source in enumerate(ds.select_columns(["source"])["source"]) if source == "paco_lvis")
    row = ds.select_columns(["images"])[index]
    file_name = row["images"][1]["file_name"]
    ds[index]  # present: fine
    (roots["paco_lvis"] / file_name).unlink()
    with pytest.raises(ImageFileError) as raised:
        ds[index]
    message = str(raised.value)
    assert str(roots["paco_lvis"] / file_name) in message and "paco_lvis" in message and "image_roots=" in message


def test_no_root_for_a_source(built):
    resolver = ImageResolver(manifest_roots={}, user_roots={"paco_lvis": "/data/coco"})
    row = read_dataset_split(built.data, "test", columns=SAMPLE_FIELDS)[0]
    source = next(s for s in ("partimagenet", "ade20k_part234") if s != "paco_lvis")
    with pytest.raises(ImageRootError, match=rf"no image root for source '{source}'.*image_roots=.*--image-root"):
        resolver.open(source, "test", row["images"][0])


def test_wrong_image_size_is_reported(built, tmp_path):
    rows = read_dataset_split(built.data, "test", columns=SAMPLE_FIELDS)
    row = next(r for r in rows if r["source"] == "paco_lvis")
    root = tmp_path / "coco"
    path = root / row["images"][0]["file_name"]
    path.parent.mkdir(parents=True)
    Image.new("RGB", (7, 5)).save(path)
    with pytest.raises(ImageFileError, match="is 7x5 but the dataset records"):
        decode_row(row, {"paco_lvis": root}, masks=False)


# ------------------------------------------------------------------------------------------ errors


def test_locating_errors(built, monkeypatch, tmp_path):
    monkeypatch.setenv("MIXEDPARTS_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(DatasetLoadError, match="no MixedParts dataset at the default location.*mixedparts build"):
        load_dataset("mixedparts")
    with pytest.raises(DatasetLoadError, match="folder not found"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetLoadError, match="not a MixedParts dataset folder"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetLoadError, match=r"no split 'dev' \(splits present: train, val, test\)"):
        load_dataset(built.data, split="dev")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve("org/name") == "org/name"  # a Hub id is passed on to datasets


def test_hub_ids_go_through_datasets(monkeypatch, tmp_path):
    seen = {}

    def fake_load(path, **kwargs):
        seen.update(path=path, **kwargs)
        return datasets.Dataset.from_dict({"sample_id": ["x"], "segments": [[]]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline, an uncached Hub id is refused up front
    ds = load_dataset("someone/mixedparts", split="test", revision="v1", decode_masks=True)
    assert seen == {"path": "someone/mixedparts", "split": "test", "streaming": False, "revision": "v1"}
    assert ds[0][MASKS_COLUMN] == []


def test_importing_mixedparts_stays_light():
    code = ("import sys, mixedparts; assert 'datasets' not in sys.modules and 'torch' not in sys.modules; "
            "f = mixedparts.load_dataset; assert callable(f) and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ torch


def test_collate_keeps_everything(built):
    import torch
    from torch.utils.data import DataLoader

    from mixedparts.torch_data import Collator, collate, uncollate

    ds = load_dataset(built.data, split="test", decode_images=True, decode_masks=True, cache_dir=built.cache)
    # Mixed image sizes and mask counts in one batch.
    sizes = ds.select_columns(["images", "segments"])
    picks = []
    for i, row in enumerate(sizes):
        key = (row["images"][0]["width"], len(row["segments"]))
        if all(key != (sizes[j]["images"][0]["width"], len(sizes[j]["segments"])) for j in picks):
            picks.append(i)
        if len(picks) == 4:
            break
    subset = ds.select(picks)
    batch = next(iter(DataLoader(subset, batch_size=4, collate_fn=collate)))
    rows = [subset[i] for i in range(4)]
    n_images = sum(len(r["images"]) for r in rows)
    n_masks = sum(len(r["segments"]) for r in rows)
    height = max(i["height"] for r in rows for i in r["images"])
    width = max(i["width"] for r in rows for i in r["images"])
    assert batch["pixel_values"].shape == (n_images, 3, height, width) and batch["pixel_values"].dtype == torch.uint8
    assert batch["masks"].shape == (n_masks, height, width) and batch["masks"].dtype == torch.bool
    assert batch["mask_image"].shape == (n_masks,) and batch["image_sizes"].shape == (n_images, 2)
    assert batch["images_per_sample"].tolist() == [len(r["images"]) for r in rows]
    assert batch["masks_per_sample"].tolist() == [len(r["segments"]) for r in rows]
    assert batch["labels"] == [s["label"] for r in rows for s in r["segments"]]
    assert batch["segments"] == [r["segments"] for r in rows]  # the RLEs travel along
    for padded in (True, False):
        collated = Collator(pad=padded)(rows)
        for row, back in zip(rows, uncollate(collated) if padded else [None] * 4):
            if back is None:
                continue
            assert back["sample_id"] == row["sample_id"] and back["answer"] == row["answer"]
            assert [s["label"] for s in row["segments"]] == back["labels"]
            for image, array in zip(row[IMAGES_COLUMN], back["pixel_images"]):
                assert np.array_equal(np.asarray(image), array)
            for mask, array in zip(row[MASKS_COLUMN], back["masks"]):
                assert np.array_equal(mask, array)
        if not padded:
            assert [tuple(t.shape) for t in collated["masks"]] == [m.shape for r in rows for m in r[MASKS_COLUMN]]
            assert [tuple(t.shape[1:]) for t in collated["pixel_values"]] == [
                (i["height"], i["width"]) for r in rows for i in r["images"]]
    # Without decoded masks in the rows, collate decodes the RLEs itself; without images it skips pixels.
    bare = [plain(r) for r in rows]
    masks_only = collate(bare)
    assert "pixel_values" not in masks_only and torch.equal(masks_only["masks"], batch["masks"])


def test_dataloader_workers_and_pickling(built):
    from torch.utils.data import DataLoader

    from mixedparts.torch_data import collate

    ds = load_dataset(built.data, split="val", decode_images=True, decode_masks=True, cache_dir=built.cache)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone[0]["sample_id"] == ds[0]["sample_id"] and len(clone[0][IMAGES_COLUMN]) == 2
    loader = DataLoader(ds.select(range(6)), batch_size=3, num_workers=1, collate_fn=collate)
    assert [len(b["sample_id"]) for b in loader] == [3, 3]


def test_a_folder_rebuilt_in_place_loads_its_new_rows(built, tmp_path, monkeypatch):
    # datasets keys its cache on the folder's path; the loader must key it on the shards' content.
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    folder = tmp_path / "rebuilt"

    def readers():
        return open_readers(paco=built.sources["paco_lvis"], coco_images=built.sources["coco_images"])

    build(readers(), folder, BuildOptions(seed=0), progress=False)
    first = load_dataset(str(folder), split="test")
    shutil.rmtree(folder)
    build(readers(), folder, BuildOptions(seed=1, max_samples_per_split=7), progress=False)
    second = load_dataset(str(folder), split="test")
    assert len(first) > 7 and len(second) == 7
