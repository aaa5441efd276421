"""``import-calico`` on synthetic bundle files written in the authors' schema (docs/sources.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mixedparts import markup, masks
from mixedparts.cli import main
from mixedparts.sources import open_readers
from mixedparts.sources.ade20k_part234 import class_lists

DATASET_NAME = {"paco_lvis": "paco_lvis", "partimagenet": "part_image_net", "ade20k_part234": "ade20k_part234"}
MODES = {"paco_lvis": {"train": "train", "val": "val", "test": "test"},
         "partimagenet": {"train": "train", "val": "val", "test": "test"},
         "ade20k_part234": {"training": "train", "validation": "test"}}


def raw_id(value: str) -> int:
    return int(value.rsplit(":", 1)[-1])


def part_entry(source: str, category: str, name: str) -> dict:
    if source == "ade20k_part234":
        ids = [i for i, full in enumerate(class_lists().parts) if full == f"{category}'s {name}"]
        return {"part_cat": name, "part_cat_ids": [ids, ids], "part_visibility": [1, 1]}
    if source == "paco_lvis":
        return {"part_cat": f"{category}:{name.replace(' ', '_')}", "part_ann_ids": [[], []]}
    return {"part_cat": name, "part_ann_ids": [[], []]}


def object_ann_id(source: str, obj) -> int:
    return 0 if source == "partimagenet" else int(obj.annotation_id)


def make_bundle(paths: dict, bundle: Path) -> dict:
    """Pair files over the synthetic releases; returns the questions each split must yield."""
    readers = open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                           partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])
    records = {"train": [], "val": [], "test": []}
    expected = {"train": [], "val": [], "test": []}
    for reader in readers:
        for release_split in reader.splits:
            mode = MODES[reader.source][release_split]
            images = [i for i in reader.read(release_split) if any(o.parts for o in i.objects)]
            for first, second in zip(images[0::2], images[1::2]):
                a = next(o for o in first.objects if o.parts)
                pairs = []
                for b in [o for o in second.objects if o.parts][:2]:
                    common = sorted(a.part_names & b.part_names)
                    unique = [sorted(a.part_names - b.part_names), sorted(b.part_names - a.part_names)]
                    pairs.append({
                        "cats": [a.category, b.category],
                        "ann_ids": [[object_ann_id(reader.source, a)], [object_ann_id(reader.source, b)]],
                        "visibility": [1, 1],
                        "common": [part_entry(reader.source, a.category, n) for n in common] or None,
                        "unique": {"part_cats": unique, "part_ann_ids": [[[] for _ in u] for u in unique]}
                        if any(unique) else None,
                    })
                posed = pairs if mode != "test" else pairs[:1]
                for pair, b_parts in zip(posed, [o.part_names for o in second.objects if o.parts][:2]):
                    if pair["common"]:
                        expected[mode].append(("common_parts", sorted(a.part_names & b_parts)))
                    if pair["unique"]:
                        expected[mode].append(("unique_parts", sorted(a.part_names ^ b_parts)))
                records[mode].append({"dataset_name": DATASET_NAME[reader.source],
                                      "img_ids": [raw_id(first.image_id), raw_id(second.image_id)],
                                      "is_object": False, "pairs": pairs})
                if a.category in {o.category for o in second.objects}:
                    b = next(o for o in second.objects if o.category == a.category)
                    records[mode].append({"dataset_name": DATASET_NAME[reader.source],
                                          "img_ids": [raw_id(first.image_id), raw_id(second.image_id)],
                                          "is_object": True,
                                          "pairs": [{"cats": [a.category] * 2,
                                                     "ann_ids": [[object_ann_id(reader.source, a)],
                                                                 [object_ann_id(reader.source, b)]],
                                                     "visibility": [1, 1], "common": None, "unique": None}]})
                    expected[mode].append(("common_object", [a.category]))
    bundle.mkdir()
    for mode, rows in records.items():
        (bundle / f"mixed_parts_{mode}.json").write_text(json.dumps(rows))
    # The bundle's refined per-source files, in the authors' naming scheme.
    pin = paths["partimagenet"] / "annotations"
    for split in ("train", "val", "test"):
        for folder in (split, f"{split}_whole"):
            data = json.loads((pin / folder / f"{split}.json").read_text())
            for category in data.get("categories", []):
                if folder == split:
                    category["name"] = category["name"].split(" ", 1)[1].lower()
                category["supercategory"] = str(category.get("supercategory", "")).lower()
            target = bundle / "PartImageNet" / "annotations" / folder / f"{split}_mixed_parts.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data))
    for suffix in ("train", "val"):
        source_file = paths["ade20k_part234"] / f"ade20k_instance_{suffix}.json"
        target = bundle / "ADE20KPart234" / f"ade20k_instance_{suffix}_mixed_parts.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source_file.read_text())
    return expected


@pytest.fixture(scope="module")
def imported(tmp_path_factory, tiny_sources):
    root = tmp_path_factory.mktemp("calico")
    paths = tiny_sources(3)
    expected = make_bundle(paths, root / "bundle")
    out = root / "dataset"
    code = main(["import-calico", "--bundle", str(root / "bundle"), "--paco", str(paths["paco_lvis"]),
                 "--coco-images", str(paths["coco_images"]), "--partimagenet", str(paths["partimagenet"]),
                 "--ade20k-part234", str(paths["ade20k_part234"]), "--out", str(out), "--quiet"])
    assert code == 0
    return out, expected


def test_one_sample_per_posed_question(imported):
    out, expected = imported
    for split, questions in expected.items():
        rows = [r for shard in sorted((out / "data").glob(f"{split}-*.parquet")) for r in pq.read_table(shard).to_pylist()]
        got = sorted((r["task"], sorted({s["label"] for s in r["segments"] if s["kind"] != "object"}
                                        if r["task"] != "common_object" else [r["objects"][0]["category"]]))
                     for r in rows)
        assert got == sorted(questions), split
        for row in rows:
            assert markup.seg_count(row["answer"]) == len(row["segments"])
            assert all(masks.area(s["mask"]) > 0 for s in row["segments"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["import"] == "calico-bundle"


def test_test_split_keeps_only_the_first_pair(imported):
    out, expected = imported
    # Every test record with two candidate pairs contributed the questions of its first pair only.
    assert expected["test"], "the synthetic bundle has test questions"
    assert len(expected["train"]) > len(expected["test"]) > 10
    rows = [r for shard in sorted((out / "data").glob("test-*.parquet")) for r in pq.read_table(shard).to_pylist()]
    assert len(rows) == len(expected["test"])


def test_bad_bundles_are_refused(tmp_path, capsys):
    assert main(["import-calico", "--bundle", str(tmp_path / "missing"), "--paco", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "bundle folder not found" in capsys.readouterr().err
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "mixed_parts_train.json").write_text("[{\"dataset_name\": \"nope\", \"img_ids\": [1, 2], \"pairs\": []}]")
    paco = tmp_path / "paco"
    paco.mkdir()
    (paco / "paco_lvis_v1_train.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    assert main(["import-calico", "--bundle", str(bundle), "--paco", str(paco), "--no-check-images",
                 "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "mixed_parts_train.json" in err and "record 0" in err and "unknown dataset_name" in err
