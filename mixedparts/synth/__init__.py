"""``mixedparts synth``: the releases in their on-disk formats, drawn procedurally.

Each registered source with a ``writer`` (:mod:`mixedparts.sources.registry`) is drawn into its
``synth_folder``. Layout of the output folder for the built-in three (each release as a user
unpacks it, plus the generator's record)::

    OUT/paco/annotations/paco_lvis_v1_{train,val,test}.json     PACO-LVIS annotations
    OUT/coco/{train2017,val2017}/*.jpg                          COCO 2017 images PACO points at
    OUT/PartImageNet/{images,annotations}/...                   PartImageNet Seg release
    OUT/ADE20KPart234/{images,annotations_detectron2_part}/...  ADE20K-Part-234 (OV-PARTS)
    OUT/drawn.json                                              what was drawn, with expected names
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mixedparts.errors import MixedPartsError
from mixedparts.sources.registry import registered_sources
from mixedparts.synth.common import DRAWN_RECORD, SCALES, write_json


def _writable() -> dict:
    """Sources with a synthetic writer, in the registry's order."""
    return {spec.name: spec for spec in registered_sources() if spec.writer is not None}


def source_paths(out: str | Path) -> dict[str, Path]:
    """Where each synthetic release lives inside a synth folder (the roots to give the readers).

    Keys are source names, then the folder options' names (``coco_images``).
    """
    out = Path(out)
    specs = _writable().values()
    paths = {spec.name: out / spec.synth_folder for spec in specs}
    paths.update({option.dest: out / option.synth_folder for spec in specs for option in spec.folder_options
                  if option.synth_folder})
    return paths


def reader_roots(out: str | Path, sources: tuple[str, ...] | None = None) -> dict[str, Path]:
    """``open_readers`` keywords for the synthetic releases in ``out`` (all, or ``sources``)."""
    out = Path(out)
    roots: dict[str, Path] = {}
    for name, spec in _writable().items():
        if sources is None or name in sources:
            roots[spec.keyword] = out / spec.synth_folder
            roots.update({o.dest: out / o.synth_folder for o in spec.folder_options if o.synth_folder})
    return roots


def synthesize(out: str | Path, scale: str = "tiny", seed: int = 0, images: bool = True,
               sources: tuple[str, ...] | None = None, progress: bool = False) -> dict[str, list[dict]]:
    """Write the synthetic releases (all, or ``sources``) into ``out`` (absent or empty) atomically.

    Returns the drawn record, which is also written to ``out/drawn.json``.
    """
    from mixedparts.synth import common

    common.SHOW_PROGRESS[:] = [progress]
    out = Path(out)
    writable = _writable()
    sources = tuple(writable) if sources is None else tuple(sources)
    if scale not in SCALES:
        raise MixedPartsError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    unknown = sorted(set(sources) - set(writable))
    if unknown:
        raise MixedPartsError(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(writable)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MixedPartsError(f"{out}: output folder exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        record: dict[str, list[dict]] = {}
        for name in sources:
            spec = writable[name]
            folders = {o.keyword: staging / o.synth_folder for o in spec.folder_options if o.synth_folder}
            record[name] = spec.load_writer()(staging / spec.synth_folder, scale=scale, seed=seed, images=images,
                                              **folders)
        write_json(staging / DRAWN_RECORD, record)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record
