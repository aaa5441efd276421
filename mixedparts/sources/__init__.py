"""Readers for the part-dataset releases, one module per release, listed in :mod:`mixedparts.sources.registry`.

Each reader takes the release's root folder as downloaded and yields :class:`ImageRecord` objects
(see :mod:`mixedparts.sources.records`). The names below are imported on first use, so that the
registry (and every ``--help`` that lists its flags) loads no array library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["ImageRecord", "ObjectRecord", "PartRecord", "ReadStats", "SourceReader", "open_readers",
           "DEFAULT_MIN_AREA_FRACTION"]

_LAZY = {"ImageRecord": "records", "ObjectRecord": "records", "PartRecord": "records", "ReadStats": "records",
         "DEFAULT_MIN_AREA_FRACTION": "records", "SourceReader": "base"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_readers(*, min_area_fraction: float | None = None, check_images: bool = True,
                 reader_classes: Mapping[str, Callable] | None = None, **roots: str | Path | dict | None) -> list:
    """Readers for the releases given (any subset), in the registry's order.

    Each release's root goes under its keyword (the flag's name: ``paco=``, ``partimagenet=``,
    ``ade20k_part234=``), its further folders under theirs (``coco_images=``) and its own reader
    options as ``<keyword>_options={...}`` (``partimagenet_options={"mask_source": "png"}``);
    ``min_area_fraction`` and ``check_images`` go to every reader. ``reader_classes`` replaces a
    source's reader (``{source: class or factory}``, e.g. a subclass reading other annotation files).
    """
    from mixedparts.sources.records import DEFAULT_MIN_AREA_FRACTION
    from mixedparts.sources.registry import registered_sources

    specs = registered_sources()
    known = {key for spec in specs for key in (spec.keyword, f"{spec.keyword}_options",
                                                 *(o.dest for o in spec.folder_options))}
    unknown = sorted(set(roots) - known)
    if unknown:
        raise TypeError(f"open_readers() got unknown keyword(s) {', '.join(unknown)}; "
                        f"the sources take {', '.join(sorted(known))}")
    common = {"min_area_fraction": DEFAULT_MIN_AREA_FRACTION if min_area_fraction is None else min_area_fraction,
              "check_images": check_images}
    readers = []
    for spec in specs:
        root = roots.get(spec.keyword)
        if root is None:
            continue
        folders = {o.keyword: roots.get(o.dest) for o in spec.folder_options}
        make = (reader_classes or {}).get(spec.name) or spec.load_reader()
        reader = make(root, **folders, **(roots.get(f"{spec.keyword}_options") or {}), **common)
        if reader.source != spec.name or set(reader.splits) != set(spec.splits):
            raise TypeError(f"reader {spec.reader} of source {spec.name!r} has source {reader.source!r} and splits "
                            f"{reader.splits}; its spec says {spec.name!r} and {tuple(spec.splits)}")
        readers.append(reader)
    return readers
