"""What every reader shares: strict JSON loading, image checks and the area filter."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image

from mixedparts import masks
from mixedparts.errors import SourceError
from mixedparts.masks import Rle
from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION, ImageRecord, ObjectRecord, PartRecord, ReadStats

IMAGES_WITHOUT_OBJECTS = "images without surviving objects (yielded without objects)"


def load_json(path: Path) -> object:
    if not path.is_file():
        raise SourceError(path, "file not found")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise SourceError(path, f"malformed JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except UnicodeDecodeError as error:
        raise SourceError(path, f"not UTF-8 JSON ({error.reason})") from None


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SourceError(path, f"{what} folder not found")
    return path


def require_keys(record: dict, keys: Iterable[str], path: Path, where: str) -> None:
    if not isinstance(record, dict):
        raise SourceError(path, f"expected an object, got {type(record).__name__}", where)
    missing = [k for k in keys if k not in record]
    if missing:
        raise SourceError(path, f"missing field(s) {', '.join(missing)}", where)


class SourceReader:
    """Base of every reader: ``read(split)`` yields :class:`ImageRecord` in file order.

    Subclasses set ``source`` and ``splits`` and implement ``image_root`` and ``_read``.
    """

    source: str = ""
    splits: tuple[str, ...] = ()

    def __init__(self, root: str | Path, *, min_area_fraction: float = DEFAULT_MIN_AREA_FRACTION,
                 check_images: bool = True):
        self.root = require_dir(Path(root), f"{self.source} release root")
        self.min_area_fraction = float(min_area_fraction)
        self.check_images = check_images
        self.stats = ReadStats()

    def image_root(self, split: str) -> Path | None:
        """Folder that the split's file names are relative to (None when the user gave none)."""
        raise NotImplementedError

    def settings(self) -> dict:
        """The options that change what the reader yields (recorded in dataset manifests)."""
        return {"min_area_fraction": self.min_area_fraction}

    def read(self, split: str) -> Iterator[ImageRecord]:
        """Every image of the split's annotation file, in file order.

        One rule for all releases: an image none of whose objects survive the filters is still
        yielded, with no objects, and counted; the builder skips it when it pools objects.
        """
        if split not in self.splits:
            raise SourceError(self.root, f"unknown split {split!r}; {self.source} has {', '.join(self.splits)}")
        for image in self._read(split):
            if not image.objects:
                self.stats.add(IMAGES_WITHOUT_OBJECTS)
            yield image

    def read_all(self) -> Iterator[ImageRecord]:
        for split in self.splits:
            yield from self.read(split)

    def _read(self, split: str) -> Iterator[ImageRecord]:
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------------

    def min_area(self, width: int, height: int) -> float:
        return self.min_area_fraction * width * height

    def keep_mask(self, mask: Rle, width: int, height: int, what: str) -> int | None:
        """Area of ``mask`` if it passes the empty and minimum-area filters, else None (counted)."""
        mask_area = masks.area(mask)
        if mask_area == 0:
            self.stats.add(f"empty {what} masks dropped")
            return None
        if mask_area < self.min_area(width, height):
            self.stats.add(f"{what} masks below min area dropped")
            return None
        return mask_area

    def make_object(self, annotation_id: str, category: str, mask: Rle,
                    parts: Iterable[tuple[str, Rle | None]], width: int, height: int) -> ObjectRecord | None:
        """An object with its surviving parts, or None if the object mask itself is filtered out.

        ``parts`` lists every part annotation of the object; a mask of None is an annotation without a
        usable mask. The names whose every mask is dropped are kept as ``dropped_part_names``: the
        pairing needs to know the object has them (presence is decided before the area filter).
        """
        object_area = self.keep_mask(mask, width, height, "object")
        if object_area is None:
            return None
        kept = []
        annotated = set()
        for name, part_mask in parts:
            annotated.add(name)
            part_area = None if part_mask is None else self.keep_mask(part_mask, width, height, "part")
            if part_area is not None:
                kept.append(PartRecord(name=name, mask=part_mask, area=part_area))
        if not kept:
            self.stats.add("objects without parts (kept for object questions)")
        return ObjectRecord(annotation_id=annotation_id, category=category, mask=mask, area=object_area,
                            parts=tuple(kept), dropped_part_names=frozenset(annotated - {p.name for p in kept}))

    def check_image(self, image_path: Path, width: int, height: int, annotation_file: Path, where: str) -> None:
        """The image exists and has the annotated size (reads the header only)."""
        if not self.check_images:
            return
        if not image_path.is_file():
            raise SourceError(annotation_file, f"image file not found: {image_path}", where)
        with Image.open(image_path) as image:
            if image.size != (width, height):
                raise SourceError(annotation_file, f"image {image_path} is {image.size[0]}x{image.size[1]}, "
                                  f"annotation says {width}x{height}", where)
