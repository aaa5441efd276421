"""The builder on tiny synthetic releases: every pairing invariant on every row, determinism, resume."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from mixedparts import markup, masks
from mixedparts.build import build
from mixedparts.build.language import indefinite
from mixedparts.build.options import BuildOptions
from mixedparts.build.splits import canonical_split
from mixedparts.cli import main
from mixedparts.schema import SAMPLE_FEATURES, SPLITS, TASKS
from mixedparts.sources import open_readers


@pytest.fixture(scope="module")
def sources(tiny_sources):
    return tiny_sources(0)


def readers_for(paths):
    return open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                        partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])


def cli_source_args(paths) -> list[str]:
    return ["--paco", str(paths["paco_lvis"]), "--coco-images", str(paths["coco_images"]),
            "--partimagenet", str(paths["partimagenet"]), "--ade20k-part234", str(paths["ade20k_part234"])]


@pytest.fixture(scope="module")
def records(sources):
    return {image.image_id: image for reader in readers_for(sources) for image in reader.read_all()}


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "dataset"
    build(readers_for(sources), out, BuildOptions(shard_rows=150), workers=1, progress=False)
    return out


def rows_of(out: Path) -> list[dict]:
    rows = []
    for shard in sorted((out / "data").glob("*.parquet")):
        rows += pq.read_table(shard).to_pylist()
    return rows


def phrase_without_article(phrase: str) -> str:
    for article in ("a ", "an ", "the "):
        if phrase.startswith(article):
            return phrase[len(article):]
    return phrase


def chosen_object(image, category, object_mask):
    for obj in image.objects:
        if obj.category == category and masks.iou(obj.mask, object_mask) == 1.0:
            return obj
    raise AssertionError(f"no {category} in {image.image_id} has the object segment's mask")


def check_row(row: dict, records: dict, k: int) -> None:
    assert row["task"] in TASKS
    images = [records[i["image_id"]] for i in row["images"]]
    assert len(images) == k and len({i.image_id for i in images}) == k
    for image, meta in zip(images, row["images"]):
        assert image.source == row["source"]
        assert canonical_split(image.source, image.split, image.image_id, 0.1) == row["split"]
        assert (meta["file_name"], meta["width"], meta["height"]) == (image.file_name, image.width, image.height)

    # Markup: the i-th [SEG] is the i-th segment and its (IMAGEk) tag is the segment's image.
    segments = row["segments"]
    assert markup.seg_count(row["answer"]) == len(segments) > 0
    assert markup.seg_image_indices(row["answer"]) == [s["image_index"] for s in segments]
    position = 0
    for grounded in markup.parse(row["answer"]):
        for image_index in grounded.image_indices:
            segment = segments[position]
            assert phrase_without_article(grounded.phrase) == segment["label"]
            assert segment["image_index"] == image_index
            position += 1
    assert position == len(segments)

    for segment in segments:
        image = images[segment["image_index"]]
        assert segment["mask"]["size"] == [image.height, image.width]
        assert masks.area(segment["mask"]) > 0, "every label has a non-empty mask"
        assert segment["label"] == segment["label"].strip().lower() and not segment["label"].startswith("the ")

    categories = [o["category"] for o in row["objects"]]
    object_segments = [s for s in segments if s["kind"] == "object"]
    if row["task"] == "common_object":
        assert len(set(categories)) == 1 and {s["label"] for s in segments} == {categories[0]}
        assert sorted(s["image_index"] for s in segments) == list(range(k))
        for segment in segments:  # union of that category's instances in the image
            image = images[segment["image_index"]]
            expected = masks.union([o.mask for o in image.objects if o.category == categories[0]])
            assert masks.iou(expected, segment["mask"]) == 1.0
        return

    # Part tasks: the object sentence grounds each image's chosen object, then the part labels.
    masks_by_image = {s["image_index"]: s["mask"] for s in object_segments}
    assert sorted(masks_by_image) == list(range(k))
    chosen = [chosen_object(images[i], categories[i], masks_by_image[i]) for i in range(k)]
    part_sets = [obj.part_names for obj in chosen]
    part_segments = [s for s in segments if s["kind"] != "object"]
    labels_by_image = defaultdict(set)
    for segment in part_segments:
        labels_by_image[segment["image_index"]].add(segment["label"])
        obj = chosen[segment["image_index"]]
        expected = masks.union([p.mask for p in obj.parts if p.name == segment["label"]])
        assert masks.iou(expected, segment["mask"]) == 1.0, "a label's mask is the union of its instances"
    if row["task"] == "common_parts":
        common = frozenset.intersection(*part_sets)
        assert common and all(s["kind"] == "common_part" for s in part_segments)
        for i in range(k):
            assert labels_by_image[i] == common, "common labels are present in all images"
    else:
        assert all(s["kind"] == "unique_part" for s in part_segments) and part_segments
        for i in range(k):
            # Presence counts every annotation, also those the area filter dropped; masks only survivors.
            others = set().union(*(chosen[j].annotated_part_names for j in range(k) if j != i))
            assert labels_by_image[i] == set(part_sets[i] - others), "unique labels are on no other object"


def test_every_row_satisfies_the_pairing_rules(built, records):
    rows = rows_of(built)
    assert {r["split"] for r in rows} == set(SPLITS)
    assert {r["task"] for r in rows} == set(TASKS)
    assert {r["source"] for r in rows} == {"paco_lvis", "partimagenet", "ade20k_part234"}
    for row in rows:
        check_row(row, records, k=2)
    assert len({r["sample_id"] for r in rows}) == len(rows)
    split_of_image = {}
    for row in rows:
        for image in row["images"]:
            assert split_of_image.setdefault(image["image_id"], row["split"]) == row["split"], "image in two splits"
    cross = [r for r in rows if r["task"] != "common_object" and len({o["category"] for o in r["objects"]}) > 1]
    assert cross, "part samples pair objects of different categories too"


def test_plain_load_dataset_reads_three_splits_with_the_schema(built):
    # A private cache: pytest reuses temporary paths, and datasets' cache keys on the path.
    loaded = datasets.load_dataset(str(built), cache_dir=str(built.parent / "hf-cache"))
    assert set(loaded) == set(SPLITS)
    for split in SPLITS:
        assert loaded[split].features == SAMPLE_FEATURES
        assert len(loaded[split]) > 0
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["splits"] == {s: len(loaded[s]) for s in SPLITS}
    for name, entry in manifest["shards"].items():
        path = built / "data" / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert pq.read_metadata(path).num_rows == entry["rows"]
    card = (built / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "| paco_lvis | common_parts |" in card


def shard_digests(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").glob("*"))}


def test_build_is_deterministic_whatever_the_workers(sources, built, tmp_path):
    again = tmp_path / "again"
    build(readers_for(sources), again, BuildOptions(shard_rows=150), workers=2, progress=False)
    assert shard_digests(again) == shard_digests(built)
    assert len(shard_digests(built)) > 3


def test_three_and_four_images_per_sample(sources, records, tmp_path):
    for k in (3, 4):
        out = tmp_path / f"k{k}"
        build(readers_for(sources), out, BuildOptions(images_per_sample=k, max_samples_per_split=300),
              progress=False)
        rows = rows_of(out)
        assert rows and {r["task"] for r in rows} == set(TASKS)
        for row in rows:
            check_row(row, records, k=k)


@pytest.mark.slow
def test_resume_after_a_kill_gives_identical_shards(sources, built, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "mixedparts", "build", *cli_source_args(sources), "--out", str(out),
               "--shard-rows", "150", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wanted = random.Random(os.getpid()).randint(1, 4)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if len(list((out / "data").glob("*.parquet"))) >= wanted if (out / "data").exists() else False:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists() or process.returncode == 0

    # A half-written temporary file and a damaged shard must both be repaired by the rerun.
    shards = sorted((out / "data").glob("*.parquet"))
    if shards:
        shards[0].write_bytes(b"damaged")
    (out / "data" / ".train-00000-of-00001.parquet.tmp-1").write_bytes(b"partial")
    assert main(["build", *cli_source_args(sources), "--out", str(out), "--shard-rows", "150", "--quiet"]) == 0
    assert shard_digests(out) == shard_digests(built), "temporary leftovers removed, damaged shard rewritten"
    assert (out / "manifest.json").is_file()


def test_bad_output_folders_and_options_are_refused(sources, built, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["build", *cli_source_args(sources), "--out", str(other), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["build", *cli_source_args(sources), "--out", str(built), "--seed", "7", "--quiet"]) == 2
    assert "other sources or options" in capsys.readouterr().err
    assert main(["build", *cli_source_args(sources), "--out", str(tmp_path / "x"), "--images-per-sample", "1",
                 "--quiet"]) == 2
    assert main(["build", "--out", str(tmp_path / "y")]) == 2
    assert "no source given" in capsys.readouterr().err


def test_articles_follow_the_authors_format():
    assert indefinite("apron") == "an apron" and indefinite("leg") == "a leg"
