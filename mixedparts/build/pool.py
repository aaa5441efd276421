"""A compact index of the objects of one (source, split): what pairing needs, without touching masks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mixedparts.sources.records import ImageRecord


@dataclass
class Pool:
    source: str
    split: str
    images: list[ImageRecord] = field(default_factory=list)
    object_image: list[int] = field(default_factory=list)  # object -> index into images
    object_slot: list[int] = field(default_factory=list)  # object -> index into that image's objects
    object_category: list[int] = field(default_factory=list)  # object -> index into categories
    object_parts: list[frozenset] = field(default_factory=list)  # object -> ids of names with a surviving mask
    object_dropped: list[frozenset] = field(default_factory=list)  # object -> names present without a mask
    categories: list[str] = field(default_factory=list)
    part_names: list[str] = field(default_factory=list)
    part_presence: str = "all-annotations"
    _present: list | None = field(default=None, init=False, repr=False, compare=False)
    _names: list | None = field(default=None, init=False, repr=False, compare=False)
    _present_names: dict = field(default_factory=dict, init=False, repr=False, compare=False)
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
            self.object_dropped.append(obj.dropped_part_names if self.part_presence == "all-annotations"
                                       else frozenset())
        self._present = None
        self._present_names.clear()

    @property
    def object_present(self) -> list[frozenset]:
        """object -> ids of the names that count as present for uniqueness (see BuildOptions.part_presence).

        Names only ever present without a mask get ids after all others, so the ids of masked names,
        which order the seeded partner draws, are the same under both rules.
        """
        if self._present is None:
            ids = {name: i for i, name in enumerate(self.part_names)}
            extra = sorted({name for names in self.object_dropped for name in names} - ids.keys())
            ids.update((name, len(self.part_names) + i) for i, name in enumerate(extra))
            self._present = [parts | frozenset(ids[name] for name in dropped) if dropped else parts
                             for parts, dropped in zip(self.object_parts, self.object_dropped)]
            self._names = self.part_names + extra
        return self._present

    def present_part_names(self, obj: int) -> frozenset[str]:
        names = self._present_names.get(obj)
        if names is None:  # asked for once per unique-parts sample the object is in
            names = self._present_names[obj] = frozenset(self._names[i] for i in self.object_present[obj])
        return names

    def __len__(self) -> int:
        return len(self.object_image)

    def index(self) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        """Objects by category and by part-name id, in object order (lists: the pairing indexes them
        millions of times, and a numpy array's item costs a scalar object each time)."""
        by_category: dict[int, list[int]] = defaultdict(list)
        by_part: dict[int, list[int]] = defaultdict(list)
        for obj, (category, parts) in enumerate(zip(self.object_category, self.object_parts)):
            by_category[category].append(obj)
            for part in parts:
                by_part[part].append(obj)
        return dict(by_category), dict(by_part)


def build_pools(images, source: str, split_of, part_presence: str = "all-annotations") -> dict[str, Pool]:
    """Group ``images`` of one source into pools by canonical split (``split_of(image) -> split``)."""
    pools: dict[str, Pool] = {}
    names: dict[str, tuple[dict, dict]] = {}
    for image in images:
        if not image.objects:
            continue
        split = split_of(image)
        if split not in pools:
            pools[split] = Pool(source=source, split=split, part_presence=part_presence)
            names[split] = ({}, {})
        pools[split].add(image, *names[split])
    return pools
