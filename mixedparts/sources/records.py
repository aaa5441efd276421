"""Normalized records every source reader yields: an image, its objects, each object's parts.

Masks are COCO compressed RLE at the image's full resolution (see :mod:`mixedparts.masks`).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from mixedparts.masks import Rle

DEFAULT_MIN_AREA_FRACTION = 0.02  # as the authors' loader (AREA_THRESHOLD); masks below it are dropped


@dataclass(frozen=True)
class PartRecord:
    name: str  # normalized part name: lowercase, singular, spaces ("leg", "back cover", "tire")
    mask: Rle
    area: int


@dataclass(frozen=True)
class ObjectRecord:
    annotation_id: str  # id of the object annotation in its release, for error messages and provenance
    category: str  # normalized object name ("car", "chihuahua", "chest of drawers")
    mask: Rle
    area: int
    parts: tuple[PartRecord, ...] = ()  # several instances of one part name may occur
    dropped_part_names: frozenset[str] = frozenset()
    """Part names annotated on the object none of whose masks survived (below the area filter, empty or
    unusable). The object still has such a part, so it is never *unique* to another object."""

    @functools.cached_property  # writes the instance __dict__, so the dataclass stays frozen; read per sample
    def part_names(self) -> frozenset[str]:
        """Names with at least one mask that survived the filters: what a label's mask can be made of."""
        return frozenset(p.name for p in self.parts)

    @property
    def annotated_part_names(self) -> frozenset[str]:
        """Every part name the release annotates on the object, before any filter."""
        return self.part_names | self.dropped_part_names


@dataclass(frozen=True)
class ImageRecord:
    source: str  # one of mixedparts.schema.SOURCES
    split: str  # the release's own split name ("train", "validation", ...)
    image_id: str  # source-qualified, e.g. "paco_lvis:101"
    file_name: str  # relative to the image root of this source and split
    width: int
    height: int
    objects: tuple[ObjectRecord, ...] = ()


@dataclass
class ReadStats:
    """What a reader skipped or repaired, so known dirt in real releases is counted, never silent."""

    counts: Counter = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) or "nothing skipped"
