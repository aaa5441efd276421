"""PartImageNet Seg: the synthetic writer and the reader agree, the release's quirks are handled,
and bad input is reported as one SourceError naming the file and the record."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mixedparts import masks
from mixedparts.cli import main
from mixedparts.errors import SourceError
from mixedparts.sources.partimagenet import PartImageNetReader, fine_class_name, part_name
from mixedparts.synth import partimagenet as synth_partimagenet
from mixedparts.synth import source_paths, synthesize

# ---------------------------------------------------------------------------------------------------
# round trip on a tiny synthetic release


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("partimagenet") / "synth"
    record = synthesize(out, scale="tiny", seed=0, sources=("partimagenet",))
    return source_paths(out)["partimagenet"], record["partimagenet"]


def _read(root: Path, **options) -> tuple[PartImageNetReader, dict]:
    reader = PartImageNetReader(root, **options)
    return reader, {(image.split, image.file_name): image for image in reader.read_all()}


def _expected_parts(drawn_object: dict, mask_key: str, min_area: float) -> list[tuple[str, dict]]:
    return [(p["label"], p[mask_key]) for p in drawn_object["parts"] if masks.area(p[mask_key]) >= min_area]


def _expected_png_parts(drawn_object: dict, min_area: float) -> list[tuple[str, dict]]:
    """The label map merges instances of a part category and lists categories by id."""
    by_id: dict[int, list] = defaultdict(list)
    for part in drawn_object["parts"]:
        by_id[synth_partimagenet.CATEGORY_ID[part["name"]]].append(part)
    merged = [(group[0]["label"], masks.union([p["mask"] for p in group])) for _, group in sorted(by_id.items())]
    return [(label, mask) for label, mask in merged if masks.area(mask) >= min_area]


@pytest.mark.parametrize("min_area_fraction", [0.0, 0.02])
def test_json_round_trip(tiny, min_area_fraction):
    root, drawn = tiny
    reader, images = _read(root, min_area_fraction=min_area_fraction)
    assert len(images) == len(drawn) == 33
    small = 0
    for entry in drawn:
        image = images[(entry["split"], entry["file_name"])]
        drawn_object = entry["objects"][0]
        min_area = min_area_fraction * entry["width"] * entry["height"]
        assert image.image_id == f"partimagenet:{entry['split']}:{entry['image_id']}"
        assert (image.width, image.height) == (entry["width"], entry["height"])
        (obj,) = image.objects
        assert obj.category == drawn_object["label"] == fine_class_name(entry["wnid"])
        assert masks.iou(obj.mask, drawn_object["mask"]) >= 0.99
        expected = _expected_parts(drawn_object, "polygon_mask", min_area)
        small += len(drawn_object["parts"]) - len(expected)
        assert [p.name for p in obj.parts] == [label for label, _ in expected]
        for part, (_, mask) in zip(obj.parts, expected):
            assert masks.iou(part.mask, mask) >= 0.99
            assert part.area == masks.area(part.mask)
    assert reader.stats.counts["part masks below min area dropped"] == small
    assert (small > 0) == (min_area_fraction > 0)
    assert reader.stats.counts["short polygons dropped"] == sum(len(e["short_polygons"]) for e in drawn) >= 3


@pytest.mark.parametrize("min_area_fraction", [0.0, 0.02])
def test_png_round_trip(tiny, min_area_fraction):
    root, drawn = tiny
    reader, images = _read(root, min_area_fraction=min_area_fraction, mask_source="png")
    for entry in drawn:
        (obj,) = images[(entry["split"], entry["file_name"])].objects
        drawn_object = entry["objects"][0]
        assert obj.category == drawn_object["label"]
        assert masks.iou(obj.mask, drawn_object["mask"]) >= 0.99
        expected = _expected_png_parts(drawn_object, min_area_fraction * entry["width"] * entry["height"])
        assert [p.name for p in obj.parts] == [label for label, _ in expected]
        for part, (_, mask) in zip(obj.parts, expected):
            assert masks.iou(part.mask, mask) >= 0.99
    assert "short polygons dropped" not in reader.stats.counts  # the polygons are never read


def test_synth_covers_the_release_shape(tiny):
    _, drawn = tiny
    supercategories = {synth_partimagenet.SUPERCATEGORY_OF[e["wnid"]] for e in drawn}
    assert len(supercategories) >= 6
    labels = defaultdict(set)
    for entry in drawn:
        for part in entry["objects"][0]["parts"]:
            labels[part["label"]].add(synth_partimagenet.SUPERCATEGORY_OF[entry["wnid"]])
    assert "tire" in labels and "tier" not in labels
    assert len(labels["head"]) >= 3 and len(labels["body"]) >= 3  # part names shared across super-categories


def test_padding_short_polygons_keeps_masks(tiny):
    root, drawn = tiny
    _, dropped = _read(root, min_area_fraction=0)
    padder, padded = _read(root, min_area_fraction=0, short_polygons="pad")
    assert padder.stats.counts["short polygons padded"] == sum(len(e["short_polygons"]) for e in drawn)
    for key, image in padded.items():
        assert [p.mask for p in image.objects[0].parts] == [p.mask for p in dropped[key].objects[0].parts]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_is_deterministic(tiny, tmp_path):
    root, _ = tiny
    again = tmp_path / "again"
    synthesize(again, scale="tiny", seed=0, sources=("partimagenet",))
    assert _tree_bytes(source_paths(again)["partimagenet"]) == _tree_bytes(root)
    other = tmp_path / "other"
    synthesize(other, scale="tiny", seed=1, sources=("partimagenet",))
    assert _tree_bytes(source_paths(other)["partimagenet"]) != _tree_bytes(root)


def test_synth_in_parallel_writes_the_same_bytes(tmp_path, monkeypatch):
    sequential, parallel = tmp_path / "sequential", tmp_path / "parallel"
    synthesize(sequential, scale="tiny", seed=3, images=False, sources=("partimagenet",))
    monkeypatch.setattr(synth_partimagenet, "PARALLEL_FROM", 1)
    synthesize(parallel, scale="tiny", seed=3, images=False, sources=("partimagenet",))
    assert _tree_bytes(parallel) == _tree_bytes(sequential)


# ---------------------------------------------------------------------------------------------------
# hand-written fixtures

WIDTH, HEIGHT = 40, 30
FISH, CAR = "n01440764_10029.JPEG", "n04285008_7.JPEG"  # tench, sports car


def _square(x0, y0, x1, y1) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _release() -> dict:
    """Part file of a two-image release: a tench (head, body) and a sports car (tier, side mirror)."""
    return {
        "images": [{"id": 1, "file_name": FISH, "width": WIDTH, "height": HEIGHT},
                   {"id": 2, "file_name": CAR, "width": WIDTH, "height": HEIGHT}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 9, "bbox": [0, 0, 0, 0], "area": 0, "iscrowd": 0,
             "segmentation": [_square(2, 5, 12, 25)]},
            {"id": 11, "image_id": 1, "category_id": 10, "bbox": [0, 0, 0, 0], "area": 0, "iscrowd": 0,
             "segmentation": [_square(12, 5, 36, 25)]},
            {"id": 20, "image_id": 2, "category_id": 25, "bbox": [0, 0, 0, 0], "area": 0, "iscrowd": 0,
             "segmentation": [_square(5, 15, 15, 28)]},
            {"id": 21, "image_id": 2, "category_id": 26, "bbox": [0, 0, 0, 0], "area": 0, "iscrowd": 0,
             "segmentation": [_square(20, 5, 30, 12)]},
        ],
        "categories": copy.deepcopy(synth_partimagenet.CATEGORIES),
    }


def _whole() -> dict:
    """_whole file covering only the tench, with its own image ids (matched by file name)."""
    return {"images": [{"id": 7, "file_name": FISH, "width": WIDTH, "height": HEIGHT}],
            "annotations": [{"id": 70, "image_id": 7, "category_id": 3, "segmentation": [_square(1, 2, 39, 29)]}],
            "categories": [{"id": 3, "name": "n01440764", "supercategory": "Fish"}]}


def _write(root: Path, part_file: dict | None = None, whole_file: dict | None = None, images: bool = True) -> Path:
    annotations = root / "annotations"
    for folder, payload in (("train", part_file or _release()), ("train_whole", whole_file or _whole())):
        (annotations / folder).mkdir(parents=True, exist_ok=True)
        (annotations / folder / "train.json").write_text(json.dumps(payload))
    if images:
        (root / "images" / "train").mkdir(parents=True)
        for record in (part_file or _release())["images"]:
            Image.new("RGB", (record["width"], record["height"])).save(root / "images" / "train" / record["file_name"],
                                                                      format="JPEG")
    return root


def _write_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8)).save(path)


def _objects(root: Path, **options) -> dict:
    reader = PartImageNetReader(root, **options)
    images = list(reader.read("train"))
    return {image.file_name: image.objects[0] if image.objects else None for image in images}, reader


def _box_mask(x0, y0, x1, y1) -> np.ndarray:
    out = np.zeros((HEIGHT, WIDTH), dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


@pytest.mark.parametrize(("name", "supercategory", "expected"), [
    ("Quadruped Head", "Quadruped", "head"), ("Car Tier", "Car", "tire"), ("Bicycle Tier", "Bicycle", "tire"),
    ("Car Side Mirror", "Car", "side mirror"), ("head", "quadruped", "head"), ("Boat Sail", None, "boat sail"),
])
def test_part_names(name, supercategory, expected):
    assert part_name(name, supercategory) == expected


def test_fixture_names_prefixes_and_classes(tmp_path):
    objects, _ = _objects(_write(tmp_path), min_area_fraction=0)
    assert objects[FISH].category == "tench"
    assert [p.name for p in objects[FISH].parts] == ["head", "body"]
    assert objects[CAR].category == "sports car"
    assert [p.name for p in objects[CAR].parts] == ["tire", "side mirror"]


def test_whole_used_when_present_union_otherwise(tmp_path):
    objects, reader = _objects(_write(tmp_path), min_area_fraction=0)
    assert objects[FISH].annotation_id == "train_whole:70"
    assert objects[FISH].mask == masks.from_polygons([_square(1, 2, 39, 29)], HEIGHT, WIDTH)
    assert objects[CAR].mask == masks.union([p.mask for p in objects[CAR].parts])
    assert reader.stats.counts["objects from the union of parts (no _whole annotation)"] == 1


def test_missing_whole_file_falls_back_to_parts(tmp_path):
    root = _write(tmp_path)
    (root / "annotations" / "train_whole" / "train.json").unlink()
    objects, reader = _objects(root, min_area_fraction=0)
    assert objects[FISH].mask == masks.union([p.mask for p in objects[FISH].parts])
    assert reader.stats.counts["objects from the union of parts (no _whole annotation)"] == 2
    assert reader.stats.counts["splits without a _whole file (train)"] == 1


def test_png_mode_backgrounds_and_ignore(tmp_path):
    root = _write(tmp_path)
    part_map = np.full((HEIGHT, WIDTH), 40, dtype=np.uint8)
    part_map[5:25, 2:12] = 9
    part_map[5:25, 12:36] = 10
    part_map[5:25, 20] = 255  # an ignored seam inside the body
    whole_map = np.full((HEIGHT, WIDTH), 158, dtype=np.uint8)
    whole_map[2:29, 1:39] = 0
    whole_map[2:4, 1:39] = 255
    _write_png(root / "annotations" / "train" / "n01440764_10029.png", part_map)
    _write_png(root / "annotations" / "train_whole" / "n01440764_10029.png", whole_map)
    car_map = np.full((HEIGHT, WIDTH), 40, dtype=np.uint8)
    car_map[15:28, 5:15] = 25
    _write_png(root / "annotations" / "train" / "n04285008_7.png", car_map)  # and no _whole map
    objects, reader = _objects(root, min_area_fraction=0, mask_source="png")
    fish = objects[FISH]
    assert [p.name for p in fish.parts] == ["head", "body"]
    assert np.array_equal(masks.decode(fish.parts[0].mask), part_map == 9)
    body = _box_mask(12, 5, 36, 25)
    body[:, 20] = False
    assert np.array_equal(masks.decode(fish.parts[1].mask), body)
    assert np.array_equal(masks.decode(fish.mask), _box_mask(1, 4, 39, 29))
    assert [p.name for p in objects[CAR].parts] == ["tire"]  # the mirror is not in the map
    assert np.array_equal(masks.decode(objects[CAR].mask), car_map == 25)
    assert reader.stats.counts["objects from the union of parts (no _whole label map)"] == 1


def test_short_polygons_dropped_or_padded(tmp_path):
    release = _release()
    release["annotations"][0]["segmentation"].append([3, 6, 4, 7])  # two points beside a good polygon
    release["annotations"][3]["segmentation"] = [[21, 6]]  # the mirror is nothing but one point
    root = _write(tmp_path, release)
    dropped, reader = _objects(root, min_area_fraction=0)
    assert reader.stats.counts["short polygons dropped"] == 2
    assert reader.stats.counts["part annotations without a usable polygon dropped"] == 1
    assert dropped[FISH].parts[0].mask == masks.from_polygons([_square(2, 5, 12, 25)], HEIGHT, WIDTH)
    assert [p.name for p in dropped[CAR].parts] == ["tire"]
    padded, reader = _objects(root, min_area_fraction=0, short_polygons="pad")
    assert reader.stats.counts["short polygons padded"] == 2
    assert padded[FISH].parts[0].mask == dropped[FISH].parts[0].mask
    # padded to a degenerate polygon: no pixels, so the empty-mask filter drops it, counted
    assert [p.name for p in padded[CAR].parts] == ["tire"]
    assert reader.stats.counts["empty part masks dropped"] == 1


def test_default_area_filter_drops_small_parts(tmp_path):
    objects, reader = _objects(_write(tmp_path))  # 2% of 40x30 is 24 px; every fixture part is larger
    assert len(objects[FISH].parts) == 2
    release = _release()
    release["annotations"][3]["segmentation"] = [_square(20, 5, 24, 10)]  # 20 px
    objects, reader = _objects(_write(tmp_path / "small", release))
    assert [p.name for p in objects[CAR].parts] == ["tire"]
    assert reader.stats.counts["part masks below min area dropped"] == 1


def test_rle_segmentation_accepted(tmp_path):
    release = _release()
    rle = masks.encode(_box_mask(2, 5, 12, 25))
    release["annotations"][0]["segmentation"] = rle
    objects, _ = _objects(_write(tmp_path, release), min_area_fraction=0)
    assert objects[FISH].parts[0].mask == rle


# ---------------------------------------------------------------------------------------------------
# bad input: SourceError naming the file and the record, and exit code 2 from the CLI


def _edit_part_file(edit):
    def apply(root: Path) -> None:
        path = root / "annotations" / "train" / "train.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return apply


def _set(path: str, value):
    """Edit ``data[a][i][b] = value`` for ``path`` "a.i.b"."""
    def edit(data):
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    return _edit_part_file(edit)


def _write_text(relative: str, text: str):
    def apply(root: Path) -> None:
        (root / relative).write_text(text)
    return apply


def _remove(relative: str):
    def apply(root: Path) -> None:
        (root / relative).unlink()
    return apply


def _drop_whole_image(root: Path) -> None:
    path = root / "annotations" / "train_whole" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["image_id"] = 99
    path.write_text(json.dumps(data))


PART_FILE = "annotations/train/train.json"
BAD_INPUTS = {
    # name: (how to break the fixture, file named, record named, words of the message)
    "missing split file": (_remove(PART_FILE), PART_FILE, None, "file not found"),
    "malformed JSON": (_write_text(PART_FILE, '{"images": ['), PART_FILE, None, "malformed JSON"),
    "unknown category_id": (_set("annotations.1.category_id", 57), PART_FILE, "annotations[1] (id 11)",
                            "unknown category_id 57"),
    "unknown image_id": (_set("annotations.2.image_id", 5), PART_FILE, "annotations[2] (id 20)",
                         "unknown image_id 5"),
    "image file missing": (_remove(f"images/train/{CAR}"), PART_FILE, f"images[1] (id 2, {CAR})",
                           "image file not found"),
    "file name without wnid": (_set("images.1.file_name", "car_7.JPEG"), PART_FILE, "images[1] (id 2, car_7.JPEG)",
                               "WordNet id"),
    "wnid not an ImageNet-1k class": (_set("images.1.file_name", "n00004475_7.JPEG"), PART_FILE,
                                      "images[1] (id 2, n00004475_7.JPEG)", "WordNet id"),
    "odd polygon": (_set("annotations.0.segmentation", [[1, 2, 3, 4, 5, 6, 7]]), PART_FILE,
                    "annotations[0] (id 10)", "odd number of coordinates"),
    "non-numeric polygon": (_set("annotations.0.segmentation", [["1", 2, 3, 4, 5, 6]]), PART_FILE,
                            "annotations[0] (id 10)", "finite numbers"),
    # JSON integers are unbounded; one past float range once raised OverflowError instead of this error
    "huge integer in a polygon": (_set("annotations.0.segmentation", [[10**400, 2, 3, 4, 5, 6]]), PART_FILE,
                                  "annotations[0] (id 10)", "finite numbers"),
    "segmentation not a list": (_set("annotations.0.segmentation", "oops"), PART_FILE, "annotations[0] (id 10)",
                                "list of polygons"),
    "RLE of another size": (_set("annotations.0.segmentation", masks.encode(np.zeros((5, 5), bool))), PART_FILE,
                            "annotations[0] (id 10)", "differs from the image"),
    "missing field": (_set("annotations.0", {"id": 10, "image_id": 1}), PART_FILE, "annotations[0]",
                      "missing field(s) category_id, segmentation"),
    "_whole annotation of unknown image": (_drop_whole_image, "annotations/train_whole/train.json",
                                           "annotations[0] (id 70)", "unknown image_id 99"),
}


def _assert_names(error: SourceError, root: Path, file: str, record: str | None, words: str) -> None:
    assert error.path == str(root / file)
    assert error.record == record
    assert words in error.message


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_source_error(tmp_path, case):
    breaker, file, record, words = BAD_INPUTS[case]
    root = _write(tmp_path)
    breaker(root)
    with pytest.raises(SourceError) as caught:
        list(PartImageNetReader(root).read("train"))
    _assert_names(caught.value, root, file, record, words)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_through_cli(tmp_path, capsys, case):
    breaker, file, record, words = BAD_INPUTS[case]
    root = _write(tmp_path)
    breaker(root)
    assert main(["inspect", "--partimagenet", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and str(root / file) in err and words in err
    assert record is None or record in err


def test_missing_root(tmp_path, capsys):
    with pytest.raises(SourceError) as caught:
        PartImageNetReader(tmp_path / "absent")
    assert caught.value.path == str(tmp_path / "absent")
    assert main(["inspect", "--partimagenet", str(tmp_path / "absent")]) == 2
    assert str(tmp_path / "absent") in capsys.readouterr().err


def test_missing_other_split_fails_only_when_read(tmp_path):
    reader = PartImageNetReader(_write(tmp_path))
    assert len(list(reader.read("train"))) == 2
    with pytest.raises(SourceError, match="file not found") as caught:
        list(reader.read("val"))
    assert caught.value.path == str(tmp_path / "annotations" / "val" / "val.json")


def _png_case(root: Path, labels: np.ndarray, whole: bool = False) -> None:
    folder = "train_whole" if whole else "train"
    _write_png(root / "annotations" / folder / "n01440764_10029.png", labels)


@pytest.mark.parametrize(("case", "prepare", "file", "words"), [
    ("part map missing", lambda root: None, "annotations/train/n01440764_10029.png", "not found"),
    ("part map of another size", lambda root: _png_case(root, np.full((HEIGHT + 1, WIDTH), 40)),
     "annotations/train/n01440764_10029.png", "is 40x31, the image record says 40x30"),
    ("whole map of another size",
     lambda root: (_png_case(root, np.full((HEIGHT, WIDTH), 40)), _png_case(root, np.full((5, 5), 158), True)),
     "annotations/train_whole/n01440764_10029.png", "is 5x5"),
    ("part map with an unknown value", lambda root: _png_case(root, np.full((HEIGHT, WIDTH), 77)),
     "annotations/train/n01440764_10029.png", "unexpected part label value(s) [77]"),
])
def test_bad_label_maps(tmp_path, case, prepare, file, words):
    root = _write(tmp_path)
    prepare(root)
    with pytest.raises(SourceError) as caught:
        list(PartImageNetReader(root, mask_source="png").read("train"))
    _assert_names(caught.value, root, file, f"images[0] (id 1, {FISH})", words)


def test_unknown_options_rejected(tmp_path):
    with pytest.raises(ValueError, match="short_polygons"):
        PartImageNetReader(_write(tmp_path), short_polygons="repair")
    with pytest.raises(ValueError, match="mask_source"):
        PartImageNetReader(tmp_path, mask_source="both")
