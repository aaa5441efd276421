"""PACO-LVIS reader: ``paco_lvis_v1_{train,val,test}.json`` over the COCO 2017 images (docs/sources.md).

Objects and parts share one annotation list. An object annotation's ``obj_ann_id`` is its own id; a
part's names its object in the same image. Part categories are spelled ``object:part``
(``car_(automobile):steeringwheel``); the part name is what follows the colon.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mixedparts.errors import SourceError
from mixedparts.masks import Rle
from mixedparts.sources.base import SourceReader, load_json, require_dir, require_keys
from mixedparts.sources.coco import SHORT_POLYGON_POLICIES, is_int, segmentation_to_rle, well_formed_rle_strings
from mixedparts.sources.names import normalize, normalize_part
from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION, ImageRecord

SOURCE = "paco_lvis"
SPLIT_FILE = "paco_lvis_v1_{split}.json"
# PACO val was carved out of LVIS train, and PACO test is LVIS val: where a bare file name most
# likely lives. A file name with a folder is trusted as it is, since LVIS val also uses train2017 images.
IMAGE_FOLDER_OF_SPLIT = {"train": "train2017", "val": "train2017", "test": "val2017"}
IMAGE_FOLDERS = ("train2017", "val2017")

IMAGE_FIELDS = ("id", "file_name", "width", "height")
ANNOTATION_FIELDS = ("id", "image_id", "category_id", "obj_ann_id", "segmentation")
CATEGORY_FIELDS = ("id", "name")


@dataclass
class _ObjectGroup:
    annotation: dict
    parts: list[dict] = field(default_factory=list)


def _where(kind: str, record: object, index: int) -> str:
    """``annotation id 5002`` where the record has a usable id, else its position in the list."""
    if isinstance(record, dict) and is_int(record.get("id")):
        return f"{kind} id {record['id']}"
    return f"{kind}s[{index}]"


class PacoReader(SourceReader):
    source = SOURCE
    splits = ("train", "val", "test")

    def __init__(self, root: str | Path, *, coco_images: str | Path | None = None,
                 min_area_fraction: float = DEFAULT_MIN_AREA_FRACTION, check_images: bool = True,
                 short_polygons: str = "drop"):
        if short_polygons not in SHORT_POLYGON_POLICIES:
            raise ValueError(f"short_polygons must be one of {SHORT_POLYGON_POLICIES}, got {short_polygons!r}")
        super().__init__(root, min_area_fraction=min_area_fraction, check_images=check_images)
        self.short_polygons = short_polygons
        self.coco_images = Path(coco_images) if coco_images is not None else None
        if self.coco_images is not None and check_images:
            require_dir(self.coco_images, "COCO 2017 image root")

    def settings(self) -> dict:
        return {**super().settings(), "short_polygons": self.short_polygons}

    def image_root(self, split: str) -> Path | None:
        """The COCO 2017 root that file names are relative to (None when not given)."""
        return self.coco_images

    def annotation_file(self, split: str) -> Path:
        """The split's JSON, directly under the root or under ``annotations/`` as the zip unpacks."""
        name = SPLIT_FILE.format(split=split)
        for candidate in (self.root / name, self.root / "annotations" / name):
            if candidate.is_file():
                return candidate
        raise SourceError(self.root / "annotations" / name,
                          f"{split} annotations not found (looked in {self.root} and {self.root / 'annotations'})")

    # -- reading --------------------------------------------------------------------------------

    def _read(self, split: str) -> Iterator[ImageRecord]:
        path = self.annotation_file(split)
        data = load_json(path)
        require_keys(data, ("images", "annotations", "categories"), path, "top level")
        for key in ("images", "annotations", "categories"):
            if not isinstance(data[key], list):
                raise SourceError(path, f"'{key}' must be a list, got {type(data[key]).__name__}", "top level")
        object_names, part_names = self._categories(data["categories"], path)
        images = self._images(data["images"], path)
        groups = self._group(data["annotations"], images, object_names, part_names, path)
        del data  # the split's JSON can be large; only the grouped annotations are needed now
        well_formed = self._well_formed_rles(groups, images)

        for image_id, image in images.items():
            where = f"image id {image_id}"
            width, height = image["width"], image["height"]
            objects = []
            for group in groups.get(image_id, ()):
                annotation = group.annotation
                object_mask = self._mask(annotation, width, height, path, annotation["id"] in well_formed)
                part_masks = [(part_names[p["category_id"]], self._mask(p, width, height, path, p["id"] in well_formed))
                              for p in group.parts]
                if object_mask is None:
                    orphans = sum(m is not None for _, m in part_masks)
                    if orphans:
                        self.stats.add("parts of objects with empty segmentation dropped", orphans)
                    continue
                obj = self.make_object(str(annotation["id"]), object_names[annotation["category_id"]], object_mask,
                                       part_masks, width, height)
                if obj is not None:
                    objects.append(obj)
            file_name = self._file_name(image["file_name"], split, path, where)
            if self.coco_images is not None:
                self.check_image(self.coco_images / file_name, width, height, path, where)
            yield ImageRecord(source=SOURCE, split=split, image_id=f"{SOURCE}:{image_id}", file_name=file_name,
                              width=width, height=height, objects=tuple(objects))

    def _categories(self, categories: list, path: Path) -> tuple[dict[int, str], dict[int, str]]:
        """Normalized names by category id: objects, and parts (named after the ':' of ``object:part``)."""
        object_names: dict[int, str] = {}
        part_names: dict[int, str] = {}
        for index, category in enumerate(categories):
            where = _where("category", category, index)
            require_keys(category, CATEGORY_FIELDS, path, where)
            category_id, name = category["id"], category["name"]
            if not is_int(category_id):
                raise SourceError(path, f"category 'id' must be an integer, got {category_id!r}", where)
            if not isinstance(name, str) or not name.strip():
                raise SourceError(path, f"category 'name' must be a non-empty string, got {name!r}", where)
            if category_id in object_names or category_id in part_names:
                raise SourceError(path, "duplicate category id", where)
            # As the PACO eval API does: a ':' in the name makes it a part category.
            if ":" in name:
                object_name, part_name = name.split(":", 1)
                if not object_name.strip() or not part_name.strip():
                    raise SourceError(path, f"part category name {name!r} is not 'object:part'", where)
                part_names[category_id] = normalize_part(part_name)
            else:
                object_names[category_id] = normalize(name)
        return object_names, part_names

    def _images(self, images: list, path: Path) -> dict[int, dict]:
        """Image records by id, in file order."""
        by_id: dict[int, dict] = {}
        for index, image in enumerate(images):
            where = _where("image", image, index)
            require_keys(image, IMAGE_FIELDS, path, where)
            if not is_int(image["id"]):
                raise SourceError(path, f"image 'id' must be an integer, got {image['id']!r}", where)
            if image["id"] in by_id:
                raise SourceError(path, "duplicate image id", where)
            for key in ("width", "height"):
                if not is_int(image[key]) or image[key] <= 0:
                    raise SourceError(path, f"image '{key}' must be a positive integer, got {image[key]!r}", where)
            if not isinstance(image["file_name"], str) or not image["file_name"].strip():
                raise SourceError(path, f"image 'file_name' must be a non-empty string, got {image['file_name']!r}",
                                  where)
            by_id[image["id"]] = image
        return by_id

    def _group(self, annotations: list, images: dict[int, dict], object_names: dict[int, str],
               part_names: dict[int, str], path: Path) -> dict[int, list[_ObjectGroup]]:
        """Objects of each image in file order, each with its parts (linked through ``obj_ann_id``)."""
        objects: dict[int, _ObjectGroup] = {}
        parts: list[tuple[str, dict]] = []
        seen: set[int] = set()
        for index, annotation in enumerate(annotations):
            where = _where("annotation", annotation, index)
            require_keys(annotation, ANNOTATION_FIELDS, path, where)
            for key in ("id", "image_id", "category_id", "obj_ann_id"):
                if not is_int(annotation[key]):
                    raise SourceError(path, f"'{key}' must be an integer, got {annotation[key]!r}", where)
            if annotation["id"] in seen:
                raise SourceError(path, "duplicate annotation id", where)
            seen.add(annotation["id"])
            if annotation["image_id"] not in images:
                raise SourceError(path, f"image_id {annotation['image_id']} names no image of this file", where)
            category_id = annotation["category_id"]
            if category_id in object_names:
                if annotation["obj_ann_id"] != annotation["id"]:
                    raise SourceError(path, f"object annotation has obj_ann_id {annotation['obj_ann_id']}; an "
                                      "object's obj_ann_id must be its own id", where)
                objects[annotation["id"]] = _ObjectGroup(annotation)
            elif category_id in part_names:
                parts.append((where, annotation))
            else:
                raise SourceError(path, f"unknown category_id {category_id}", where)
        for where, part in parts:
            parent = objects.get(part["obj_ann_id"])
            if parent is None or parent.annotation["image_id"] != part["image_id"]:
                raise SourceError(path, f"part's obj_ann_id {part['obj_ann_id']} names no object annotation in "
                                  f"image {part['image_id']}", where)
            parent.parts.append(part)
        groups: dict[int, list[_ObjectGroup]] = {}
        for group in objects.values():
            groups.setdefault(group.annotation["image_id"], []).append(group)
        return groups

    def _well_formed_rles(self, groups: dict[int, list[_ObjectGroup]], images: dict[int, dict]) -> set[int]:
        """Ids of the annotations whose segmentation is a well-formed RLE string, checked all at once."""
        annotations = [(annotation, images[image_id]) for image_id, image_groups in groups.items()
                       for group in image_groups for annotation in (group.annotation, *group.parts)]
        checked = well_formed_rle_strings([(a["segmentation"], image["height"], image["width"])
                                           for a, image in annotations])
        return {a["id"] for (a, _), ok in zip(annotations, checked) if ok}

    def _mask(self, annotation: dict, width: int, height: int, path: Path, well_formed: bool = False) -> Rle | None:
        """The annotation's mask as compressed RLE, or None for the empty segmentation some records have
        (and for one left without polygons once the short ones are dropped)."""
        segmentation = annotation["segmentation"]
        where = f"annotation id {annotation['id']}"
        if isinstance(segmentation, list) and not segmentation:
            self.stats.add("empty segmentations skipped")
            return None
        try:
            # LVIS-style polygons with fewer than 3 points occur in real releases: one must not stop a build.
            mask, short = segmentation_to_rle(segmentation, height, width, short_polygons=self.short_polygons,
                                              well_formed=well_formed)
        except ValueError as error:
            raise SourceError(path, f"malformed segmentation: {error}", where) from None
        if short:
            self.stats.add(f"short polygons {'padded' if self.short_polygons == 'pad' else 'dropped'}", short)
        if mask is None:
            self.stats.add("annotations without a usable polygon dropped")
        return mask

    def _file_name(self, file_name: str, split: str, path: Path, where: str) -> str:
        """Relative to the COCO root; a bare name is looked up in train2017/ and val2017/."""
        if "/" in file_name:
            return file_name
        expected = IMAGE_FOLDER_OF_SPLIT[split]
        if self.coco_images is not None:
            for folder in (expected, *(f for f in IMAGE_FOLDERS if f != expected)):
                if (self.coco_images / folder / file_name).is_file():
                    self.stats.add("bare file names found in a COCO folder")
                    return f"{folder}/{file_name}"
            if self.check_images:
                raise SourceError(path, f"image file {file_name} is in neither {' nor '.join(IMAGE_FOLDERS)} under "
                                  f"{self.coco_images}", where)
        self.stats.add("bare file names given the split's COCO folder")
        return f"{expected}/{file_name}"
