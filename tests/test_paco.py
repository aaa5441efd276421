"""PACO-LVIS: the synthetic release read back, the release's quirks, bad input, determinism."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mixedparts import masks
from mixedparts.cli import main
from mixedparts.errors import SourceError
from mixedparts.sources import paco as paco_source
from mixedparts.sources.paco import PacoReader
from mixedparts.synth import paco as paco_synth
from mixedparts.synth import source_paths, synthesize
from mixedparts.synth.common import DRAWN_RECORD

SPLITS = ("train", "val", "test")


# -- the synthetic release, read back -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("paco") / "synth"
    synthesize(out, scale="tiny", seed=0, sources=("paco_lvis",))
    drawn = json.loads((out / DRAWN_RECORD).read_text())["paco_lvis"]
    return source_paths(out), drawn


def _annotation_files(paths: dict) -> dict[str, dict]:
    folder = paths["paco_lvis"] / "annotations"
    return {split: json.loads((folder / f"paco_lvis_v1_{split}.json").read_text()) for split in SPLITS}


def test_round_trip_reads_back_everything_drawn(tiny):
    paths, drawn = tiny
    reader = PacoReader(paths["paco_lvis"], coco_images=paths["coco_images"], min_area_fraction=0)
    read = list(reader.read_all())

    assert [(i.split, i.image_id, i.file_name, i.width, i.height) for i in read] == \
        [(e["split"], e["image_id"], e["file_name"], e["width"], e["height"]) for e in drawn]
    for image, entry in zip(read, drawn):
        assert [o.annotation_id for o in image.objects] == [o["annotation_id"] for o in entry["objects"]]
        for obj, expected in zip(image.objects, entry["objects"]):
            assert obj.category == expected["label"]
            assert masks.iou(obj.mask, expected["mask"]) >= 0.99
            assert [p.name for p in obj.parts] == [p["label"] for p in expected["parts"]]
            for part, expected_part in zip(obj.parts, expected["parts"]):
                assert masks.iou(part.mask, expected_part["mask"]) >= 0.99, (image.image_id, part.name)

    empty = sum(a["segmentation"] == [] for data in _annotation_files(paths).values() for a in data["annotations"])
    assert reader.stats.counts["empty segmentations skipped"] == empty > 0
    names = {p.name for i in read for o in i.objects for p in o.parts}
    assert {"back cover", "left button", "leg", "wheel", "handle"} & names  # underscores gone, names shared
    assert {o.category for i in read for o in i.objects} <= {"car", "dog", "table", "bench", "chair", "mouse", "mug",
                                                             "glass", "kettle", "bottle", "ball"}


def test_area_filter_drops_exactly_the_masks_below_two_percent(tiny):
    paths, drawn = tiny
    reader = PacoReader(paths["paco_lvis"], coco_images=paths["coco_images"])  # default 0.02
    read = {i.image_id: i for i in reader.read_all()}
    dropped = 0
    for entry in drawn:
        min_area = 0.02 * entry["width"] * entry["height"]
        objects = [o for o in entry["objects"] if o["area"] >= min_area]
        if not objects:
            assert entry["image_id"] not in read
            continue
        image = read[entry["image_id"]]
        assert [o.annotation_id for o in image.objects] == [o["annotation_id"] for o in objects]
        for obj, expected in zip(image.objects, objects):
            kept = [p["label"] for p in expected["parts"] if p["area"] >= min_area]
            assert [p.name for p in obj.parts] == kept
            assert all(p.area >= min_area for p in obj.parts)
            dropped += len(expected["parts"]) - len(kept)
    assert dropped == reader.stats.counts["part masks below min area dropped"] > 0


def test_synthetic_files_have_the_release_layout(tiny):
    paths, drawn = tiny
    files = _annotation_files(paths)
    top_level = {"images", "annotations", "categories", "part_categories", "attributes", "attr_type_to_attr_idxs",
                 "joint_obj_attribute_categories"}
    for split, data in files.items():
        assert top_level <= set(data) and ("queries" in data) == (split == "test")
        for image in data["images"]:
            assert {"neg_category_ids", "not_exhaustive_category_ids", "neg_category_ids_attrs",
                    "not_exhaustive_category_ids_attrs", "license"} <= set(image)
        for annotation in data["annotations"]:
            assert {"bbox", "area", "obj_ann_id", "attribute_ids", "dom_color_ids", "unknown_color",
                    "unknown_pattern_marking", "unknown_material", "unknown_transparency"} <= set(annotation)
        names = {c["name"]: c for c in data["categories"]}
        assert {"car_(automobile)", "glass_(drink_container)", "mouse_(computer_equipment)", "ball"} <= set(names)
        assert names["car_(automobile):steeringwheel"]["synset"] == "steeringwheel"
        assert all(c["id"] >= 2000 for c in data["categories"] if ":" in c["name"])
        assert not any(n.startswith("ball:") for n in names)
    annotations = [a for data in files.values() for a in data["annotations"]]
    segmentations = [a["segmentation"] for a in annotations]
    assert any(isinstance(s, list) and s for s in segmentations)  # polygons
    assert any(isinstance(s, dict) and isinstance(s["counts"], list) for s in segmentations)  # uncompressed RLE
    assert sum(isinstance(s, dict) and isinstance(s["counts"], str) for s in segmentations) > 0.8 * len(annotations)
    file_names = [i["file_name"] for data in files.values() for i in data["images"]]
    assert any("/" not in f for f in file_names) and any(f.startswith("train2017/") for f in file_names)
    assert all(e["file_name"].startswith("val2017/" if e["split"] == "test" else "train2017/") for e in drawn)
    # several instances of one category differ in their part sets
    part_sets = {}
    for entry in drawn:
        for obj in entry["objects"]:
            part_sets.setdefault(obj["label"], set()).add(frozenset(p["label"] for p in obj["parts"]))
    assert any(len(sets) > 1 for sets in part_sets.values())


def test_same_seed_same_bytes(tmp_path, monkeypatch):
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    synthesize(tmp_path / "a", scale="tiny", seed=3, sources=("paco_lvis",))
    monkeypatch.setattr(paco_synth, "PARALLEL_FROM", 0)  # worker processes draw this one
    synthesize(tmp_path / "b", scale="tiny", seed=3, sources=("paco_lvis",))
    monkeypatch.undo()
    synthesize(tmp_path / "c", scale="tiny", seed=3, sources=("paco_lvis",), images=False)
    synthesize(tmp_path / "d", scale="tiny", seed=4, sources=("paco_lvis",), images=False)
    a = files(tmp_path / "a")
    assert a == files(tmp_path / "b")
    assert any(name.endswith(".jpg") for name in a)
    annotations = {name: data for name, data in a.items() if name.endswith(".json")}
    assert annotations == files(tmp_path / "c")  # drawing pixels changes no annotation
    assert annotations != files(tmp_path / "d")


# -- hand-written releases with every quirk ----------------------------------------------------------------

H, W = 40, 50  # 2% of the image is 40 pixels


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _compressed(mask: np.ndarray) -> dict:
    return masks.encode(mask)  # pycocotools RLE with str counts, as json.load returns it


def _uncompressed(mask: np.ndarray) -> dict:
    return {"size": [H, W], "counts": masks.run_lengths(masks.encode(mask)["counts"])}


def _annotation(annotation_id: int, image_id: int, category_id: int, obj_ann_id: int, segmentation) -> dict:
    return {"id": annotation_id, "image_id": image_id, "category_id": category_id, "obj_ann_id": obj_ann_id,
            "bbox": [0.0, 0.0, 1.0, 1.0], "area": 1.0, "segmentation": segmentation, "attribute_ids": [],
            "dom_color_ids": [], "unknown_color": 1, "unknown_pattern_marking": 1, "unknown_material": 1,
            "unknown_transparency": 1}


def _image(image_id: int, file_name: str) -> dict:
    return {"id": image_id, "file_name": file_name, "width": W, "height": H, "license": 1, "neg_category_ids": [],
            "not_exhaustive_category_ids": [], "neg_category_ids_attrs": [], "not_exhaustive_category_ids_attrs": []}


CATEGORIES = [
    {"id": 41, "name": "ball", "supercategory": "OBJECT", "synset": "ball.n.01"},
    {"id": 207, "name": "car_(automobile)", "supercategory": "OBJECT", "synset": "car.n.01"},
    {"id": 232, "name": "chair", "supercategory": "OBJECT", "synset": "chair.n.01"},
    {"id": 705, "name": "mouse_(computer_equipment)", "supercategory": "OBJECT", "synset": "mouse.n.04"},
    *({"id": 2000 + i, "name": name, "supercategory": "PART", "synset": name.split(":")[1]} for i, name in enumerate((
        "car_(automobile):wheel", "car_(automobile):steeringwheel", "car_(automobile):turnsignal", "chair:leg",
        "chair:seat", "mouse_(computer_equipment):left_button", "mouse_(computer_equipment):back_cover",
        "mouse_(computer_equipment):side_button"))),
]
CAR, CHAIR, BALL, MOUSE = 207, 232, 41, 705
WHEEL, STEERINGWHEEL, TURNSIGNAL, LEG, SEAT, LEFT_BUTTON, BACK_COVER, SIDE_BUTTON = range(2000, 2008)


def _train() -> dict:
    return {
        "images": [_image(101, "train2017/000000000101.jpg"), _image(102, "000000000102.jpg"),
                   _image(103, "000000000103.jpg"), _image(104, "train2017/000000000104.jpg"),
                   _image(105, "train2017/000000000105.jpg")],
        "annotations": [
            # image 101: a car and a chair, one part listed before its object
            _annotation(5003, 101, WHEEL, 5001, _compressed(_box(2, 25, 10, 33))),
            _annotation(5001, 101, CAR, 5001, _compressed(_box(0, 10, 24, 36))),
            _annotation(5002, 101, CHAIR, 5002, [[26, 5, 48, 5, 48, 38, 26, 38]]),
            _annotation(5004, 101, STEERINGWHEEL, 5001, _uncompressed(_box(12, 12, 20, 20))),
            _annotation(5005, 101, LEG, 5002, _compressed(_box(28, 28, 34, 38))),
            _annotation(5006, 101, SEAT, 5002, _compressed(_box(26, 20, 48, 28))),
            # image 102 (bare file name): a small part and an empty segmentation
            _annotation(5010, 102, MOUSE, 5010, _compressed(_box(5, 5, 45, 35))),
            _annotation(5011, 102, LEFT_BUTTON, 5010, _compressed(_box(5, 5, 25, 15))),
            _annotation(5012, 102, BACK_COVER, 5010, _compressed(_box(5, 15, 45, 35))),
            _annotation(5013, 102, SIDE_BUTTON, 5010, _compressed(_box(0, 0, 5, 6))),
            _annotation(5014, 102, LEFT_BUTTON, 5010, []),
            # image 103 (bare, in val2017): a ball without parts and an object below 2%
            _annotation(5020, 103, BALL, 5020, _compressed(_box(10, 10, 30, 30))),
            _annotation(5021, 103, CHAIR, 5021, _compressed(_box(40, 0, 45, 6))),
            _annotation(5022, 103, LEG, 5021, _compressed(_box(40, 3, 45, 6))),
            # image 104: its only object has an empty segmentation; image 105 has no annotations
            _annotation(5030, 104, CAR, 5030, []),
            _annotation(5031, 104, TURNSIGNAL, 5030, _compressed(_box(0, 0, 10, 10))),
        ],
        "categories": CATEGORIES, "part_categories": [], "attributes": [], "attr_type_to_attr_idxs": {},
    }


def _one_image_split(image_id: int, file_name: str) -> dict:
    chair = image_id * 10
    return {"images": [_image(image_id, file_name)],
            "annotations": [_annotation(chair, image_id, CHAIR, chair, _compressed(_box(0, 0, 30, 30))),
                            _annotation(chair + 1, image_id, SEAT, chair, _compressed(_box(0, 10, 30, 20)))],
            "categories": CATEGORIES}


IMAGE_FOLDERS = {101: "train2017", 102: "train2017", 103: "val2017", 104: "train2017", 105: "train2017",
                 201: "train2017", 301: "val2017"}


def _write_release(tmp_path: Path, train: dict | None = None, under_annotations: bool = True) -> tuple[Path, Path]:
    root, coco = tmp_path / "paco", tmp_path / "coco"
    folder = root / "annotations" if under_annotations else root
    folder.mkdir(parents=True)
    releases = {"train": train or _train(), "val": _one_image_split(201, "train2017/000000000201.jpg"),
                "test": _one_image_split(301, "000000000301.jpg")}
    for split, data in releases.items():
        (folder / f"paco_lvis_v1_{split}.json").write_text(json.dumps(data))
    for image_id, image_folder in IMAGE_FOLDERS.items():
        (coco / image_folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(coco / image_folder / f"{image_id:012d}.jpg")
    return root, coco


def _summary(reader: PacoReader, split: str = "train") -> dict:
    return {image.image_id: [(o.annotation_id, o.category, [p.name for p in o.parts]) for o in image.objects]
            for image in reader.read(split)}


def test_objects_group_their_parts_and_names_are_normalized(tmp_path):
    root, coco = _write_release(tmp_path)
    reader = PacoReader(root, coco_images=coco, min_area_fraction=0)
    assert _summary(reader) == {
        "paco_lvis:101": [("5001", "car", ["wheel", "steeringwheel"]), ("5002", "chair", ["leg", "seat"])],
        "paco_lvis:102": [("5010", "mouse", ["left button", "back cover", "side button"])],
        "paco_lvis:103": [("5020", "ball", []), ("5021", "chair", ["leg"])],
        # as every reader does: images left without objects are yielded (empty) and counted
        "paco_lvis:104": [], "paco_lvis:105": [],
    }
    assert reader.stats.counts["empty segmentations skipped"] == 2
    assert reader.stats.counts["parts of objects with empty segmentation dropped"] == 1
    assert reader.stats.counts["images without surviving objects (yielded without objects)"] == 2


def test_every_encoding_gives_the_annotated_mask(tmp_path):
    root, coco = _write_release(tmp_path)
    image = next(PacoReader(root, coco_images=coco, min_area_fraction=0).read("train"))
    car, chair = image.objects
    assert masks.decode(car.mask).tolist() == _box(0, 10, 24, 36).tolist()  # compressed
    assert masks.decode(car.parts[1].mask).tolist() == _box(12, 12, 20, 20).tolist()  # uncompressed
    assert masks.iou(chair.mask, masks.encode(_box(26, 5, 48, 38))) > 0.9  # polygon
    assert all(masks.is_valid(m) for m in (car.mask, chair.mask, *(p.mask for p in car.parts)))


def test_bytes_counts_are_accepted(tmp_path, monkeypatch):
    root, coco = _write_release(tmp_path)
    data = _train()
    data["annotations"][1]["segmentation"]["counts"] = data["annotations"][1]["segmentation"]["counts"].encode()
    monkeypatch.setattr(paco_source, "load_json", lambda path: data)
    car = next(PacoReader(root, coco_images=coco, min_area_fraction=0).read("train")).objects[0]
    assert masks.decode(car.mask).tolist() == _box(0, 10, 24, 36).tolist()


def test_area_filter_drops_small_parts_and_objects(tmp_path):
    root, coco = _write_release(tmp_path)
    reader = PacoReader(root, coco_images=coco)
    assert _summary(reader) == {
        "paco_lvis:101": [("5001", "car", ["wheel", "steeringwheel"]), ("5002", "chair", ["leg", "seat"])],
        "paco_lvis:102": [("5010", "mouse", ["left button", "back cover"])],
        "paco_lvis:103": [("5020", "ball", [])],
        "paco_lvis:104": [], "paco_lvis:105": [],
    }
    assert reader.stats.counts["part masks below min area dropped"] == 1
    assert reader.stats.counts["object masks below min area dropped"] == 1
    # The small side button and the mask-less left-button annotation still say the mouse has them.
    mouse = [image for image in reader.read("train") if image.image_id == "paco_lvis:102"][0].objects[0]
    assert mouse.dropped_part_names == {"side button"}
    assert mouse.annotated_part_names == {"left button", "back cover", "side button"}


def test_bare_file_names_are_found_in_either_coco_folder(tmp_path):
    root, coco = _write_release(tmp_path)
    found = {split: {i.image_id: i.file_name for i in PacoReader(root, coco_images=coco).read(split)}
             for split in SPLITS}
    assert found == {"train": {"paco_lvis:101": "train2017/000000000101.jpg",
                               "paco_lvis:102": "train2017/000000000102.jpg",
                               "paco_lvis:103": "val2017/000000000103.jpg",
                               "paco_lvis:104": "train2017/000000000104.jpg",
                               "paco_lvis:105": "train2017/000000000105.jpg"},
                     "val": {"paco_lvis:201": "train2017/000000000201.jpg"},
                     "test": {"paco_lvis:301": "val2017/000000000301.jpg"}}
    # without images to look in, the split's folder is the best guess
    reader = PacoReader(root)
    assert reader.image_root("train") is None
    assert [i.file_name for i in reader.read("train")][2] == "train2017/000000000103.jpg"
    assert [i.file_name for i in reader.read("test")] == ["val2017/000000000301.jpg"]


def test_files_directly_under_the_root_are_found(tmp_path):
    root, coco = _write_release(tmp_path, under_annotations=False)
    assert len(list(PacoReader(root, coco_images=coco).read_all())) == 7


# -- bad input: SourceError naming the file and the record, exit code 2 from the CLI -------------------------


def _annotation_by_id(data: dict, annotation_id: int) -> dict:
    return next(a for a in data["annotations"] if a["id"] == annotation_id)


def _mutate(annotation_id: int, **changes):
    def mutate(data: dict) -> None:
        _annotation_by_id(data, annotation_id).update(changes)
    return mutate


def _delete(annotation_id: int, key: str):
    def mutate(data: dict) -> None:
        del _annotation_by_id(data, annotation_id)[key]
    return mutate


def _delete_image_field(data: dict) -> None:
    del data["images"][0]["width"]


def _bad_counts(data: dict) -> None:
    _annotation_by_id(data, 5005)["segmentation"]["counts"] = "not RLE at all!~"


def _truncated_counts(data: dict) -> None:
    segmentation = _annotation_by_id(data, 5006)["segmentation"]
    segmentation["counts"] = segmentation["counts"][:-2]


def _wrong_size(data: dict) -> None:
    _annotation_by_id(data, 5011)["segmentation"]["size"] = [H * 2, W]


def _bad_uncompressed(data: dict) -> None:
    _annotation_by_id(data, 5004)["segmentation"]["counts"][-1] += 7


BAD_ANNOTATIONS = {
    "missing field": (_delete(5004, "segmentation"), "annotation id 5004", "missing field(s) segmentation"),
    "missing image field": (_delete_image_field, "image id 101", "missing field(s) width"),
    "unknown category": (_mutate(5005, category_id=999), "annotation id 5005", "unknown category_id 999"),
    "unknown image": (_mutate(5006, image_id=999), "annotation id 5006", "image_id 999"),
    "part of another image's object": (_mutate(5011, obj_ann_id=5001), "annotation id 5011", "names no object"),
    "part of no object": (_mutate(5012, obj_ann_id=77777), "annotation id 5012", "names no object"),
    "object pointing elsewhere": (_mutate(5010, obj_ann_id=5001), "annotation id 5010", "its own id"),
    "duplicate id": (_mutate(5012, id=5011), "annotation id 5011", "duplicate annotation id"),
    "non-integer id": (_mutate(5012, image_id="102"), "annotation id 5012", "'image_id' must be an integer"),
    "invalid RLE": (_bad_counts, "annotation id 5005", "malformed segmentation"),
    "truncated RLE": (_truncated_counts, "annotation id 5006", "malformed segmentation"),
    "RLE of another size": (_wrong_size, "annotation id 5011", "differs from the image's 40x50"),
    "uncompressed RLE too long": (_bad_uncompressed, "annotation id 5004", "malformed segmentation"),
    "segmentation of a wrong type": (_mutate(5001, segmentation="rle"), "annotation id 5001", "malformed segmentation"),
}


def _assert_cli_error(capsys, monkeypatch, args: list[str], *fragments: str) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")  # inspect's progress bars also write to stderr
    capsys.readouterr()
    assert main(["inspect", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_bad_annotations_name_the_file_and_the_record(case, tmp_path, capsys, monkeypatch):
    mutate, record, message = BAD_ANNOTATIONS[case]
    data = copy.deepcopy(_train())
    mutate(data)
    root, coco = _write_release(tmp_path, train=data)
    with pytest.raises(SourceError) as raised:
        list(PacoReader(root, coco_images=coco).read("train"))
    assert raised.value.path.endswith("paco_lvis_v1_train.json") and raised.value.record == record
    assert message in raised.value.message
    _assert_cli_error(capsys, monkeypatch, ["--paco", str(root), "--coco-images", str(coco)],
                      "paco_lvis_v1_train.json", record, message)


def test_short_polygons_are_dropped_and_counted_or_padded(tmp_path):
    # LVIS-style dirt: a polygon of 2 points beside a usable one, and a part whose only polygon is short.
    data = copy.deepcopy(_train())
    _mutate(5002, segmentation=[[26, 5, 48, 5, 48, 38, 26, 38], [1, 2, 3, 4]])(data)
    _mutate(5005, segmentation=[[28, 28, 34, 38]])(data)
    root, coco = _write_release(tmp_path, train=data)
    reader = PacoReader(root, coco_images=coco, min_area_fraction=0)
    chair = next(reader.read("train")).objects[1]
    assert (chair.category, [p.name for p in chair.parts]) == ("chair", ["seat"])
    assert masks.iou(chair.mask, masks.encode(_box(26, 5, 48, 38))) > 0.9
    assert chair.dropped_part_names == {"leg"}  # annotated, so present, but without a mask
    assert reader.stats.counts["short polygons dropped"] == 2
    assert reader.stats.counts["annotations without a usable polygon dropped"] == 1
    padder = PacoReader(root, coco_images=coco, min_area_fraction=0, short_polygons="pad")
    chair = next(padder.read("train")).objects[1]
    assert padder.stats.counts["short polygons padded"] == 2
    # The padded 2-point polygon encloses no pixel: an empty mask, dropped and counted, the leg still present.
    assert [p.name for p in chair.parts] == ["seat"] and chair.dropped_part_names == {"leg"}
    assert padder.stats.counts["empty part masks dropped"] == 1
    assert padder.settings()["short_polygons"] == "pad"
    with pytest.raises(ValueError, match="short_polygons"):
        PacoReader(root, short_polygons="ignore")


def test_missing_images_are_errors_when_checking(tmp_path, capsys, monkeypatch):
    root, coco = _write_release(tmp_path)
    (coco / "train2017" / "000000000101.jpg").unlink()
    with pytest.raises(SourceError, match=r"paco_lvis_v1_train\.json: image id 101: image file not found"):
        list(PacoReader(root, coco_images=coco).read("train"))
    assert len(list(PacoReader(root, coco_images=coco, check_images=False).read("train"))) == 5
    _assert_cli_error(capsys, monkeypatch, ["--paco", str(root), "--coco-images", str(coco)], "image id 101")

    (coco / "val2017" / "000000000103.jpg").unlink()
    (coco / "train2017" / "000000000101.jpg").write_bytes((coco / "train2017" / "000000000102.jpg").read_bytes())
    with pytest.raises(SourceError, match=r"image id 103: image file 000000000103\.jpg is in neither"):
        list(PacoReader(root, coco_images=coco).read("train"))


def test_missing_or_malformed_files(tmp_path, capsys, monkeypatch):
    with pytest.raises(SourceError, match="release root folder not found"):
        PacoReader(tmp_path / "nowhere")
    _assert_cli_error(capsys, monkeypatch, ["--paco", str(tmp_path / "nowhere")], str(tmp_path / "nowhere"))

    root, coco = _write_release(tmp_path)
    (root / "annotations" / "paco_lvis_v1_val.json").unlink()
    with pytest.raises(SourceError, match=r"paco_lvis_v1_val\.json: val annotations not found"):
        list(PacoReader(root, coco_images=coco).read("val"))
    _assert_cli_error(capsys, monkeypatch, ["--paco", str(root), "--coco-images", str(coco)],
                      "paco_lvis_v1_val.json")

    (root / "annotations" / "paco_lvis_v1_test.json").write_text('{"images": [')
    with pytest.raises(SourceError, match=r"paco_lvis_v1_test\.json: malformed JSON"):
        list(PacoReader(root, coco_images=coco).read("test"))

    (root / "annotations" / "paco_lvis_v1_test.json").write_text('{"images": [], "annotations": {}}')
    with pytest.raises(SourceError, match="top level: missing field"):
        list(PacoReader(root, coco_images=coco).read("test"))
