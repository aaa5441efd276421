"""A compact index of the objects of one (source, split): what pairing needs, without touching masks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from mixedparts.sources.records import ImageRecord


@dataclass
class Pool:
    source: str
    split: str
    images: list[ImageRecord] = field(default_factory=list)
    object_image: list[int] = field(default_factory=list)  # object -> index into images
    object_slot: list[int] = field(default_factory=list)  # object -> index into that image's objects
    object_category: list[int] = field(default_factory=list)  # object -> index into categories
    object_parts: list[frozenset] = field(default_factory=list)  # object -> part-name ids
    categories: list[str] = field(default_factory=list)
    part_names: list[str] = field(default_factory=list)
    # Segment masks already merged, by (object, part name) or (object, None, common-object task): an
    # object serves in many samples, and each union is a pycocotools merge. Filled while writing.
    unions: dict = field(default_factory=dict, repr=False)

    def add(self, image: ImageRecord, category_ids: dict, part_ids: dict) -> None:
        image_index = len(self.images)
        self.images.append(image)
        for slot, obj in enumerate(image.objects):
            if obj.category not in category_ids:
                category_ids[obj.category] = len(self.categories)
                self.categories.append(obj.category)
            ids = []
            for name in sorted(obj.part_names):
                if name not in part_ids:
                    part_ids[name] = len(self.part_names)
                    self.part_names.append(name)
                ids.append(part_ids[name])
            self.object_image.append(image_index)
            self.object_slot.append(slot)
            self.object_category.append(category_ids[obj.category])
            self.object_parts.append(frozenset(ids))

    def __len__(self) -> int:
        return len(self.object_image)

    def index(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Objects by category and by part-name id, in object order."""
        by_category: dict[int, list[int]] = defaultdict(list)
        by_part: dict[int, list[int]] = defaultdict(list)
        for obj, (category, parts) in enumerate(zip(self.object_category, self.object_parts)):
            by_category[category].append(obj)
            for part in parts:
                by_part[part].append(obj)
        as_arrays = lambda d: {k: np.asarray(v, dtype=np.int64) for k, v in d.items()}  # noqa: E731
        return as_arrays(by_category), as_arrays(by_part)


def build_pools(images, source: str, split_of) -> dict[str, Pool]:
    """Group ``images`` of one source into pools by canonical split (``split_of(image) -> split``)."""
    pools: dict[str, Pool] = {}
    names: dict[str, tuple[dict, dict]] = {}
    for image in images:
        if not image.objects:
            continue
        split = split_of(image)
        if split not in pools:
            pools[split] = Pool(source=source, split=split)
            names[split] = ({}, {})
        pools[split].add(image, *names[split])
    return pools
