"""Reader for ADE20K-Part-234 as unpacked from OV-PARTS (``ADE20KPart234.tar.gz``).

The release has object instances but no part instances::

    ROOT/images/{training,validation}/<stem>.jpg
    ROOT/annotations_detectron2_part/{training,validation}/<stem>.png   pixel = part id 0-233, 65535 = none
    ROOT/ade20k_instance_{train,val}.json                               COCO objects, category_id 0-43

so a part of an object is the object's mask AND the PNG pixels holding that part's id, as in
OV-PARTS' oracle-object evaluation and the authors' loader. Only the ids of the object's own class
count: ids of other classes inside an instance are pixels of a neighbour (a person sitting on a
chair) and are ignored, counted in :attr:`stats`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from mixedparts import masks
from mixedparts.errors import SourceError
from mixedparts.masks import Rle
from mixedparts.sources.base import SourceReader, load_json, require_keys
from mixedparts.sources.coco import empty_mask, is_int, segmentation_to_rle, validated_images, well_formed_rle_strings
from mixedparts.sources.names import normalize, normalize_part
from mixedparts.sources.records import ImageRecord

SOURCE = "ade20k_part234"
SPLIT_FILE_SUFFIX = {"training": "train", "validation": "val"}
PART_MAP_FOLDER = "annotations_detectron2_part"
NO_PART_16BIT = 65535  # OV-PARTS' ignore_label
NO_PART_8BIT = 255  # in case a map was saved 8-bit: part ids stop at 233, so 255 cannot be a part
RELEASE_FOLDER_NAMES = ("ADE20KPart234", "ADE20K-Part-234")  # the code's and the README's spelling

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_EIGHT_BIT_MODES = {"L", "P"}


@dataclass(frozen=True)
class ClassLists:
    """OV-PARTS' class lists: object names by category id, part names by PNG value."""

    objects: tuple[str, ...]  # 44 names, index = category_id
    parts: tuple[str, ...]  # 234 names "<object>'s <part>", index = PNG value

    @functools.cached_property
    def part_ids_by_object(self) -> dict[str, dict[int, str]]:
        """object name -> {part id: normalized part name}, the ids an instance of that class may own."""
        owned: dict[str, dict[int, str]] = {name: {} for name in self.objects}
        for part_id, full_name in enumerate(self.parts):
            object_name, part_name = split_part_name(full_name)
            owned[object_name][part_id] = normalize_part(part_name)
        return owned


def split_part_name(full_name: str) -> tuple[str, str]:
    """``"chest of drawers's apron"`` -> ``("chest of drawers", "apron")``."""
    object_name, separator, part_name = full_name.partition("'s ")
    if not separator:
        raise ValueError(f"ADE20K-Part-234 part name without \"'s \": {full_name!r}")
    return object_name, part_name


@functools.cache
def class_lists() -> ClassLists:
    text = resources.files("mixedparts.sources").joinpath("data/ade20k_part234.json").read_text("utf-8")
    data = json.loads(text)
    return ClassLists(objects=tuple(data["objects"]), parts=tuple(data["parts"]))


def _release_root(root: Path) -> Path:
    """``root`` itself, or its ADE20KPart234 child when the user points at the folder holding it."""
    if any(root.glob("ade20k_instance_*.json")):
        return root
    for name in RELEASE_FOLDER_NAMES:
        if any((root / name).glob("ade20k_instance_*.json")):
            return root / name
    return root


@dataclass(frozen=True)
class _Image:
    id: int | str
    file_name: str
    width: int
    height: int
    where: str


@dataclass(frozen=True)
class _Annotation:
    id: int | str
    category: str
    segmentation: object
    where: str


class Ade20kPart234Reader(SourceReader):
    source = SOURCE
    splits = ("training", "validation")

    def __init__(self, root: str | Path, **options):
        super().__init__(root, **options)
        self.root = _release_root(self.root)

    def image_root(self, split: str) -> Path:
        return self.root / "images" / split

    def annotation_file(self, split: str) -> Path:
        return self.root / f"ade20k_instance_{SPLIT_FILE_SUFFIX[split]}.json"

    def part_map_file(self, split: str, file_name: str) -> Path:
        return self.root / PART_MAP_FOLDER / split / Path(file_name).with_suffix(".png")

    # -- reading ----------------------------------------------------------------------------------

    def _read(self, split: str) -> Iterator[ImageRecord]:
        path = self.annotation_file(split)
        data = load_json(path)
        require_keys(data, ("images", "annotations"), path, "top level")
        category_names = self._category_names(data.get("categories"), path)
        images = self._images(data["images"], path)
        annotations = self._annotations(data["annotations"], images, category_names, path)
        well_formed = self._well_formed_rles(annotations, images)
        for image in images.values():
            yield self._image_record(split, image, annotations.get(image.id, []), path, well_formed.get(image.id, []))

    @staticmethod
    def _well_formed_rles(annotations: dict[int | str, list[_Annotation]],
                          images: dict[int | str, _Image]) -> dict[int | str, list[bool]]:
        """Per image, for each of its annotations: whether its segmentation is a well-formed RLE string
        (all checked at once; see ``well_formed_rle_strings``)."""
        flags = iter(well_formed_rle_strings([(a.segmentation, images[image_id].height, images[image_id].width)
                                              for image_id, group in annotations.items() for a in group]))
        return {image_id: [next(flags) for _ in group] for image_id, group in annotations.items()}

    def _category_names(self, block: object, path: Path) -> dict[int, str]:
        """category_id -> object name: the file's own ``categories`` block if it has one, else the id order.

        Converters name the categories differently: our 44 short names are used as they are; any other
        names (such as ADE's full "person, individual, someone, ...") are matched to the 44 objects by
        ascending id, which is the order every converter writes them in, and that is counted in the stats.
        """
        known = class_lists().objects
        if not block:
            return dict(enumerate(known))
        if not isinstance(block, list):
            raise SourceError(path, f"'categories' must be a list, got {type(block).__name__}", "categories")
        names: dict[int, str] = {}
        unknown = None
        for index, category in enumerate(block):
            where = f"categories[{index}]"
            require_keys(category, ("id", "name"), path, where)
            if not is_int(category["id"]):
                raise SourceError(path, f"category id must be an integer, got {category['id']!r}", where)
            if category["id"] in names:
                raise SourceError(path, f"duplicate category id {category['id']}", where)
            name = normalize(str(category["name"]))
            if name not in known and unknown is None:
                unknown = (where, category["name"])
            names[category["id"]] = name
        if unknown is None:
            return names
        if len(names) != len(known):
            raise SourceError(path, f"category name {unknown[1]!r} is not one of the {len(known)} ADE20K-Part-234 "
                              f"objects, and the block has {len(names)} categories, so they cannot be matched by "
                              f"id order either", unknown[0])
        self.stats.add(f"{path.name}: categories matched to the {len(known)} objects by id order "
                       f"(names such as {unknown[1]!r} are not ours)")
        return {category_id: known[rank] for rank, category_id in enumerate(sorted(names))}

    def _images(self, records: object, path: Path) -> dict[int | str, _Image]:
        return {image_id: _Image(image_id, file_name, width, height, where)
                for image_id, file_name, width, height, where in validated_images(records, path)}

    def _annotations(self, records: object, images: dict, category_names: dict[int, str],
                     path: Path) -> dict[int | str, list[_Annotation]]:
        if not isinstance(records, list):
            raise SourceError(path, f"'annotations' must be a list, got {type(records).__name__}", "annotations")
        by_image: dict[int | str, list[_Annotation]] = {}
        for index, record in enumerate(records):
            where = f"annotations[{index}]"
            require_keys(record, ("id", "image_id", "category_id", "segmentation"), path, where)
            where = f"annotations[{index}] (id {record['id']!r})"
            image_id, category_id = record["image_id"], record["category_id"]
            if not isinstance(image_id, (int, str)) or isinstance(image_id, bool) or image_id not in images:
                raise SourceError(path, f"annotation refers to unknown image_id {image_id!r}", where)
            if not is_int(category_id) or category_id not in category_names:
                raise SourceError(path, f"unknown category_id {category_id!r} (expected one of the "
                                  f"{len(category_names)} object categories)", where)
            if record.get("iscrowd"):
                # Kept: converters differ on whether RLE-coded instances are flagged as crowds.
                self.stats.add("crowd annotations kept as objects")
            by_image.setdefault(image_id, []).append(
                _Annotation(record["id"], category_names[category_id], record["segmentation"], where))
        return by_image

    def _image_record(self, split: str, image: _Image, annotations: list[_Annotation], path: Path,
                      well_formed: list[bool]) -> ImageRecord:
        self.check_image(self.image_root(split) / image.file_name, image.width, image.height, path, image.where)
        objects = []
        if annotations:
            part_map, no_part = self._read_part_map(self.part_map_file(split, image.file_name), image)
            for annotation, rle_checked in zip(annotations, well_formed):
                object_mask = self._object_mask(annotation, image, path, rle_checked)
                parts = self._parts_of(annotation.category, object_mask, part_map, no_part)
                obj = self.make_object(str(annotation.id), annotation.category, object_mask, parts,
                                       image.width, image.height)
                if obj is not None:
                    objects.append(obj)
        return ImageRecord(source=SOURCE, split=split, image_id=f"{SOURCE}:{split}:{image.id}",
                           file_name=image.file_name, width=image.width, height=image.height,
                           objects=tuple(objects))

    def _read_part_map(self, png_path: Path, image: _Image) -> tuple[np.ndarray, int]:
        """The label map with its dtype kept, and the value that means "no part" in it."""
        if not png_path.is_file():
            raise SourceError(png_path, "part label map not found", image.where)
        try:
            with Image.open(png_path) as png:
                png.load()
                mode, size = png.mode, png.size
                labels = np.asarray(png)
        except (OSError, SyntaxError, ValueError) as error:
            raise SourceError(png_path, f"unreadable part label map ({error})", image.where) from None
        if size != (image.width, image.height):
            raise SourceError(png_path, f"part label map is {size[0]}x{size[1]}, the image record says "
                              f"{image.width}x{image.height}", image.where)
        if mode in _SIXTEEN_BIT_MODES:
            return labels, NO_PART_16BIT
        if mode in _EIGHT_BIT_MODES:
            return labels, NO_PART_8BIT
        raise SourceError(png_path, f"part label map must be single-channel 8- or 16-bit, got PIL mode {mode}",
                          image.where)

    def _object_mask(self, annotation: _Annotation, image: _Image, path: Path, well_formed: bool) -> Rle:
        try:
            mask, short = segmentation_to_rle(annotation.segmentation, image.height, image.width, "drop",
                                              well_formed=well_formed)
        except ValueError as error:
            raise SourceError(path, f"malformed segmentation: {error}", annotation.where) from None
        if short:
            self.stats.add("short polygons dropped", short)
        # No polygon left: an empty mask, which the area filter drops and counts.
        return mask if mask is not None else empty_mask(image.height, image.width)

    def _parts_of(self, category: str, object_mask: Rle, part_map: np.ndarray, no_part: int) -> list[tuple[str, Rle]]:
        """(part name, mask) for each of the class's own part ids found inside the object, by part id."""
        owned = class_lists().part_ids_by_object[category]
        # Only the object's bounding box can hold its parts: comparing and masking there, not over the
        # whole label map for every part, was most of reading ADE20K.
        x, y, width, height = masks.bbox(object_mask)
        inside = masks.decode(object_mask)[y:y + height, x:x + width]
        window = part_map[y:y + height, x:x + width]
        parts = []
        for value in np.unique(window[inside]).tolist():
            if value == no_part:
                continue
            if value in owned:
                part = np.zeros(part_map.shape, dtype=bool, order="F")
                part[y:y + height, x:x + width] = inside & (window == value)
                parts.append((owned[value], masks.encode(part)))
            elif value < len(class_lists().parts):
                self.stats.add("part labels of other objects inside an instance ignored")
            else:
                self.stats.add("unknown part values inside an instance ignored")
        return parts
