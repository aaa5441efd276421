"""Readers for the three real part-dataset releases, one module per release.

Each reader takes the release's root folder as downloaded and yields :class:`ImageRecord` objects
(see :mod:`mixedparts.sources.records`).
"""

from __future__ import annotations

from pathlib import Path

from mixedparts.sources.base import SourceReader
from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION, ImageRecord, ObjectRecord, PartRecord, ReadStats

__all__ = ["ImageRecord", "ObjectRecord", "PartRecord", "ReadStats", "SourceReader", "open_readers",
           "DEFAULT_MIN_AREA_FRACTION"]


def open_readers(paco: str | Path | None = None, coco_images: str | Path | None = None,
                 partimagenet: str | Path | None = None, ade20k_part234: str | Path | None = None,
                 partimagenet_options: dict | None = None, paco_options: dict | None = None,
                 **options) -> list[SourceReader]:
    """Readers for the releases given (any subset). ``options`` go to every reader."""
    readers: list[SourceReader] = []
    if paco is not None:
        from mixedparts.sources.paco import PacoReader

        readers.append(PacoReader(paco, coco_images=coco_images, **(paco_options or {}), **options))
    if partimagenet is not None:
        from mixedparts.sources.partimagenet import PartImageNetReader

        readers.append(PartImageNetReader(partimagenet, **(partimagenet_options or {}), **options))
    if ade20k_part234 is not None:
        from mixedparts.sources.ade20k_part234 import Ade20kPart234Reader

        readers.append(Ade20kPart234Reader(ade20k_part234, **options))
    return readers
