"""``mixedparts synth``: the three releases in their on-disk formats, drawn procedurally.

Layout of the output folder (each release as a user unpacks it, plus the generator's record)::

    OUT/paco/annotations/paco_lvis_v1_{train,val,test}.json     PACO-LVIS annotations
    OUT/coco/{train2017,val2017}/*.jpg                          COCO 2017 images PACO points at
    OUT/PartImageNet/{images,annotations}/...                   PartImageNet Seg release
    OUT/ADE20KPart234/{images,annotations_detectron2_part}/...  ADE20K-Part-234 (OV-PARTS)
    OUT/drawn.json                                              what was drawn, with expected names
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

from mixedparts.errors import MixedPartsError
from mixedparts.synth.common import DRAWN_RECORD, SCALES, write_json

# source name -> (writer module, folder inside OUT)
WRITERS = {
    "paco_lvis": ("mixedparts.synth.paco", "paco"),
    "partimagenet": ("mixedparts.synth.partimagenet", "PartImageNet"),
    "ade20k_part234": ("mixedparts.synth.ade20k_part234", "ADE20KPart234"),
}
COCO_FOLDER = "coco"


def source_paths(out: str | Path) -> dict[str, Path]:
    """Where each synthetic release lives inside a synth folder (the roots to give the readers)."""
    out = Path(out)
    paths = {name: out / folder for name, (_, folder) in WRITERS.items()}
    paths["coco_images"] = out / COCO_FOLDER
    return paths


def synthesize(out: str | Path, scale: str = "tiny", seed: int = 0, images: bool = True,
               sources: tuple[str, ...] = tuple(WRITERS), progress: bool = False) -> dict[str, list[dict]]:
    """Write the synthetic releases into ``out`` (absent or empty) atomically; return the drawn record."""
    from mixedparts.synth import common

    common.SHOW_PROGRESS[:] = [progress]
    out = Path(out)
    if scale not in SCALES:
        raise MixedPartsError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    unknown = sorted(set(sources) - set(WRITERS))
    if unknown:
        raise MixedPartsError(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(WRITERS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MixedPartsError(f"{out}: output folder exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        record: dict[str, list[dict]] = {}
        for name in sources:
            module_name, folder = WRITERS[name]
            writer = importlib.import_module(module_name)
            record[name] = writer.write(staging / folder, staging / COCO_FOLDER, scale=scale, seed=seed,
                                        images=images)
        write_json(staging / DRAWN_RECORD, record)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record
