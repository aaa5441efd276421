"""ADE20K-Part-234: the synthetic writer and the reader agree, the release's quirks are handled, bad input is
reported with its file and record, and the writer is deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mixedparts import masks
from mixedparts.cli import main
from mixedparts.errors import SourceError
from mixedparts.sources.ade20k_part234 import Ade20kPart234Reader, class_lists
from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION
from mixedparts.synth import ade20k_part234 as writer
from mixedparts.synth import source_paths, synthesize
from mixedparts.synth.common import write_jpeg, write_json

NO_PART = 65535


def read(root: Path, **options) -> tuple[list, Ade20kPart234Reader]:
    reader = Ade20kPart234Reader(root, **options)
    return list(reader.read_all()), reader


# -- (1) round trip on a tiny synthetic release -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synth") / "out"
    record = synthesize(out, scale="tiny", seed=0, sources=("ade20k_part234",))["ade20k_part234"]
    return source_paths(out)["ade20k_part234"], record


def expected_objects(entry: dict, min_area: float) -> list[tuple[str, dict[str, dict]]]:
    """(category, {part label: mask}) for each object that the area filter keeps."""
    return [(obj["label"], {p["label"]: p["mask"] for p in obj["parts"] if p["area"] >= min_area})
            for obj in entry["objects"] if obj["area"] >= min_area]


@pytest.mark.parametrize("min_area_fraction", [0.0, DEFAULT_MIN_AREA_FRACTION])
def test_reader_recovers_what_was_drawn(tiny, min_area_fraction):
    root, record = tiny
    images, _ = read(root, min_area_fraction=min_area_fraction)
    assert [i.image_id for i in images] == [e["image_id"] for e in record]
    for image, entry in zip(images, record):
        assert (image.file_name, image.width, image.height) == (entry["file_name"], entry["width"], entry["height"])
        expected = expected_objects(entry, min_area_fraction * image.width * image.height)
        assert [o.category for o in image.objects] == [category for category, _ in expected]
        for obj, (_, parts), drawn in zip(image.objects, expected, entry["objects"]):
            assert masks.iou(obj.mask, drawn["mask"]) >= 0.99
            assert {p.name for p in obj.parts} == set(parts)
            for part in obj.parts:
                assert masks.iou(part.mask, parts[part.name]) >= 0.99
                assert part.area == masks.area(part.mask)


def test_area_filter_drops_exactly_the_small_masks(tiny):
    root, record = tiny
    everything, _ = read(root, min_area_fraction=0.0)
    filtered, reader = read(root)
    small = [p for image in everything for o in image.objects for p in o.parts
             if p.area < DEFAULT_MIN_AREA_FRACTION * image.width * image.height]
    assert small, "the synthetic release should have parts below the area filter"
    kept = sum(len(o.parts) for image in filtered for o in image.objects)
    assert kept == sum(len(o.parts) for image in everything for o in image.objects) - len(small)
    assert reader.stats.counts["part masks below min area dropped"] == len(small)


def test_synthetic_release_has_the_quirks(tiny):
    root, record = tiny
    assert {p.name for p in root.iterdir()} == {"images", "annotations_detectron2_part", "ade20k_instance_train.json",
                                                 "ade20k_instance_val.json", "train_16shot.json"}
    assert any(e["file_name"].startswith("ADE_frame_") for e in record)
    assert (root / "images" / "training" / "ADE_train_00000001.jpg").is_file()
    maps = [np.asarray(Image.open(png)) for png in sorted((root / "annotations_detectron2_part").rglob("*.png"))]
    assert all(m.dtype == np.uint16 for m in maps)
    assert any((m == 0).any() for m in maps), "part id 0 (person's arm) must appear"
    annotations = json.loads((root / "ade20k_instance_train.json").read_text())
    assert annotations["categories"] == [{"id": i, "name": n} for i, n in enumerate(class_lists().objects)]
    encodings = {"polygons" if isinstance(a["segmentation"], list) else type(a["segmentation"]["counts"]).__name__
                 for a in annotations["annotations"]}
    assert encodings == {"polygons", "str", "list"}
    drawn_objects = [o for e in record for o in e["objects"]]
    assert any(o["area"] > sum(p["area"] for p in o["parts"]) for o in drawn_objects), "no unlabeled object pixels"
    few_shot = json.loads((root / "train_16shot.json").read_text())
    assert 0 < len(few_shot["images"]) <= len(annotations["images"])


def test_designs_use_real_names_that_overlap_across_objects():
    assert len(writer.DESIGNS) >= 8 and "person" in {d.name for d in writer.DESIGNS}
    owners: dict[str, set[str]] = {}
    for design in writer.DESIGNS:
        for part in design.parts:
            if part.name != writer.CORE:
                assert f"{design.name}'s {part.name}" in class_lists().parts
                owners.setdefault(part.name, set()).add(design.name)
    assert len(owners["leg"]) >= 5 and len(owners["arm"]) >= 3
    assert any(p.presence < 1 for d in writer.DESIGNS for p in d.parts)


# -- (2) quirks on hand-written releases ------------------------------------------------------------
# An 8x6 image: a chair (category 8) whose box is rows 1-4, columns 1-4, and a person (category 27) in
# columns 6-7 whose arm reaches onto the chair at row 4, column 2 (a person sitting on the chair).

CHAIR_ID, PERSON_ID = 8, 27
CHAIR_POLYGON = [[1, 1, 5, 1, 5, 5, 1, 5]]
LEG, SEAT, ARM = 48, 49, 0


def person_pixels() -> np.ndarray:
    pixels = np.zeros((6, 8), dtype=bool)
    pixels[:, 6:8] = True
    pixels[4, 2] = True
    return pixels


def fixture_part_map() -> np.ndarray:
    labels = np.full((6, 8), NO_PART, dtype=np.uint16)  # row 1 of the chair and column 7 carry no part
    labels[2, 1:5] = SEAT
    labels[3:5, 1] = labels[3:5, 4] = LEG
    labels[:, 6] = ARM
    labels[4, 2] = ARM
    return labels


def uncompressed(pixels: np.ndarray) -> dict:
    return {"size": [6, 8], "counts": masks.run_lengths(masks.encode(pixels)["counts"])}


def write_fixture(root: Path, *, categories: list | None = None, ids: tuple[int, int] = (CHAIR_ID, PERSON_ID),
                  part_map: np.ndarray | None = None) -> Path:
    split = "training"
    stem = "ADE_train_00000007"
    write_jpeg(root / "images" / split / f"{stem}.jpg", np.zeros((6, 8, 3), dtype=np.uint8))
    if part_map is None:
        part_map = fixture_part_map()
    png = root / "annotations_detectron2_part" / split / f"{stem}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(part_map).save(png)
    coco = {"images": [{"id": 7, "file_name": f"{stem}.jpg", "width": 8, "height": 6}],
            "annotations": [
                {"id": 70, "image_id": 7, "category_id": ids[0], "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0,
                 "segmentation": CHAIR_POLYGON},
                {"id": 71, "image_id": 7, "category_id": ids[1], "bbox": [2, 0, 6, 6], "area": 13, "iscrowd": 0,
                 "segmentation": uncompressed(person_pixels())}]}
    if categories is not None:
        coco["categories"] = categories
    write_json(root / "ade20k_instance_train.json", coco)
    write_json(root / "ade20k_instance_val.json", {"images": [], "annotations": [], "categories": []})
    return root


def part_masks(obj) -> dict[str, np.ndarray]:
    return {p.name: masks.decode(p.mask) for p in obj.parts}


def check_fixture_objects(images, reader) -> None:
    (image,) = images
    assert image.image_id == "ade20k_part234:training:7"
    chair, person = image.objects
    assert (chair.category, chair.annotation_id, person.category) == ("chair", "70", "person")
    chair_pixels = masks.decode(chair.mask)
    assert chair_pixels.sum() == 16 and chair_pixels[1:5, 1:5].all()
    labels = fixture_part_map()
    assert [p.name for p in chair.parts] == ["leg", "seat"]  # by part id; the person's arm pixel is dropped
    assert np.array_equal(part_masks(chair)["leg"], chair_pixels & (labels == LEG))
    assert np.array_equal(part_masks(chair)["seat"], chair_pixels & (labels == SEAT))
    assert reader.stats.counts["part labels of other objects inside an instance ignored"] == 1
    assert np.array_equal(masks.decode(person.mask), person_pixels())
    assert [p.name for p in person.parts] == ["arm"]  # value 0 is a part; 65535 in column 7 is none
    assert np.array_equal(part_masks(person)["arm"], person_pixels() & (labels == ARM))


@pytest.mark.parametrize("categories, ids", [
    ([{"id": CHAIR_ID, "name": "chair"}, {"id": PERSON_ID, "name": "person"}], (CHAIR_ID, PERSON_ID)),
    (None, (CHAIR_ID, PERSON_ID)),  # no block: ids index the 44 objects
    ([{"id": 1, "name": "Chair"}, {"id": 2, "name": "person"}], (1, 2)),  # the file's own block wins
], ids=["categories-block", "index-list", "renumbered-block"])
def test_part_masks_are_instance_and_own_part_ids(tmp_path, categories, ids):
    root = write_fixture(tmp_path / "ADE20KPart234", categories=categories, ids=ids)
    check_fixture_objects(*read(root, min_area_fraction=0.0))


def test_eight_bit_map_uses_255_as_unlabeled(tmp_path):
    eight_bit = fixture_part_map()
    eight_bit[eight_bit == NO_PART] = 255
    root = write_fixture(tmp_path / "any-name", part_map=eight_bit.astype(np.uint8))
    assert Image.open(root / "annotations_detectron2_part/training/ADE_train_00000007.png").mode == "L"
    check_fixture_objects(*read(root, min_area_fraction=0.0))


def test_root_may_be_the_folder_holding_the_release(tmp_path):
    write_fixture(tmp_path / "ADE20KPart234")
    images, reader = read(tmp_path, min_area_fraction=0.0)
    assert reader.image_root("training") == tmp_path / "ADE20KPart234" / "images" / "training"
    check_fixture_objects(images, reader)


def test_default_area_filter_on_fixture(tmp_path):
    images, reader = read(write_fixture(tmp_path / "r"))  # 2% of 48 pixels is about one pixel: all kept
    assert sum(len(o.parts) for o in images[0].objects) == 3


# -- (3) bad input: SourceError naming file and record, exit code 2 on the command line ------------


def edit_json(root: Path, change) -> None:
    path = root / "ade20k_instance_train.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def set_annotation(key, value):
    def change(data):
        data["annotations"][0][key] = value
    return lambda root: edit_json(root, change)


def write_png(relative: str, array: np.ndarray):
    def change(root):
        Image.fromarray(array).save(root / relative)
    return change


JSON = "ade20k_instance_train.json"
PNG = "annotations_detectron2_part/training/ADE_train_00000007.png"
BAD_INPUTS = {
    "missing json": (lambda root: (root / JSON).unlink(), JSON, None),
    "malformed json": (lambda root: (root / JSON).write_text('{"images": ['), JSON, None),
    "missing annotations key": (lambda root: edit_json(root, lambda d: d.pop("annotations")), JSON, "top level"),
    "unknown category id": (set_annotation("category_id", 44), JSON, "annotations[0]"),
    "category id not in block": (lambda root: edit_json(root, lambda d: d.update(
        categories=[{"id": 27, "name": "person"}])), JSON, "annotations[0]"),
    "unknown category name": (lambda root: edit_json(root, lambda d: d.update(
        categories=[{"id": 8, "name": "spaceship"}])), JSON, "categories[0]"),
    "unknown image id": (set_annotation("image_id", 8), JSON, "annotations[0]"),
    "missing image field": (lambda root: edit_json(root, lambda d: d["images"][0].pop("width")), JSON, "images[0]"),
    "missing image file": (lambda root: (root / "images/training/ADE_train_00000007.jpg").unlink(), JSON,
                           "images[0]"),
    "missing part map": (lambda root: (root / PNG).unlink(), PNG, "images[0]"),
    "part map of another size": (write_png(PNG, np.full((6, 9), NO_PART, dtype=np.uint16)), PNG, "images[0]"),
    "part map in colour": (write_png(PNG, np.zeros((6, 8, 3), dtype=np.uint8)), PNG, "images[0]"),
    "segmentation is a string": (set_annotation("segmentation", "oops"), JSON, "annotations[0]"),
    "polygon of odd length": (set_annotation("segmentation", [[1, 1, 5, 1, 5]]), JSON, "annotations[0]"),
    "polygon not numbers": (set_annotation("segmentation", [["a", 1, 5, 1, 5, 5]]), JSON, "annotations[0]"),
    "rle with wrong size": (set_annotation("segmentation", masks.encode(np.ones((5, 8), bool))), JSON,
                            "annotations[0]"),
    "rle with bad counts": (set_annotation("segmentation", {"size": [6, 8], "counts": "0"}), JSON, "annotations[0]"),
    "uncompressed rle too short": (set_annotation("segmentation", {"size": [6, 8], "counts": [3, 4]}), JSON,
                                   "annotations[0]"),
    "rle with extra keys": (set_annotation("segmentation", {"size": [6, 8], "counts": "PP", "x": 1}), JSON,
                            "annotations[0]"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_file_and_record(tmp_path, capsys, case):
    breakage, bad_file, record = BAD_INPUTS[case]
    root = write_fixture(tmp_path / "ADE20KPart234", categories=[{"id": 8, "name": "chair"},
                                                                  {"id": 27, "name": "person"}])
    breakage(root)
    with pytest.raises(SourceError) as error:
        read(root)
    assert error.value.path == str(root / bad_file)
    assert error.value.record == record or record in (error.value.record or "")
    assert str(root / bad_file) in str(error.value)

    assert main(["inspect", "--ade20k-part234", str(root)]) == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and str(root / bad_file) in lines[-1]
    assert sum(line.startswith("error: ") for line in lines) == 1


def test_missing_root(tmp_path, capsys):
    with pytest.raises(SourceError, match="not found"):
        Ade20kPart234Reader(tmp_path / "nowhere")
    assert main(["inspect", "--ade20k-part234", str(tmp_path / "nowhere")]) == 2
    stderr = capsys.readouterr().err.strip()
    assert stderr.count("\n") == 0 and stderr.startswith("error: ") and str(tmp_path / "nowhere") in stderr


def test_missing_image_is_fine_without_image_checks(tmp_path):
    root = write_fixture(tmp_path / "r")
    (root / "images/training/ADE_train_00000007.jpg").unlink()
    images, _ = read(root, min_area_fraction=0.0, check_images=False)
    assert len(images[0].objects) == 2


# -- (4) determinism --------------------------------------------------------------------------------


def release_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, monkeypatch):
    first = release_bytes(write_release(tmp_path / "a", seed=0))
    assert first == release_bytes(write_release(tmp_path / "b", seed=0))
    assert first != release_bytes(write_release(tmp_path / "c", seed=1))
    monkeypatch.setattr(writer, "PARALLEL_FROM", 1)  # worker processes must not change a byte
    assert first == release_bytes(write_release(tmp_path / "d", seed=0))


def test_images_flag_changes_no_annotation(tmp_path):
    with_images = release_bytes(write_release(tmp_path / "a", seed=0))
    without = release_bytes(write_release(tmp_path / "b", seed=0, images=False))
    assert not any(name.endswith(".jpg") for name in without)
    assert without == {name: data for name, data in with_images.items() if not name.endswith(".jpg")}


def write_release(out: Path, seed: int, images: bool = True) -> Path:
    synthesize(out, scale="tiny", seed=seed, images=images, sources=("ade20k_part234",))
    return out


def test_full_ade_category_names_are_matched_by_id_order(tmp_path):
    # Some converters write ADE's full names ("person, individual, someone, ...") and renumber from 1.
    objects = class_lists().objects
    full = {"person": "person, individual, someone, somebody, mortal, soul", "chair": "chair"}
    block = [{"id": i + 1, "name": full.get(name, f"{name}, other synonyms")} for i, name in enumerate(objects)]
    root = write_fixture(tmp_path / "ADE20KPart234", categories=block[::-1], ids=(CHAIR_ID + 1, PERSON_ID + 1))
    images, reader = read(root, min_area_fraction=0.0)
    check_fixture_objects(images, reader)
    (said,) = [k for k in reader.stats.counts if "by id order" in k]  # said once, naming an example
    assert said.startswith("ade20k_instance_train.json: categories matched to the 44 objects by id order")
    short = write_fixture(tmp_path / "short", categories=block[:43], ids=(CHAIR_ID + 1, PERSON_ID + 1))
    with pytest.raises(SourceError, match="block has 43 categories"):
        read(short)


def test_images_left_without_objects_are_yielded_and_counted(tmp_path):
    # The rule every reader follows (PACO used to skip such images): the builder drops them, not the reader.
    root = write_fixture(tmp_path / "ADE20KPart234")
    (image,), reader = read(root, min_area_fraction=0.9)
    assert image.objects == ()
    assert reader.stats.counts["images without surviving objects (yielded without objects)"] == 1
