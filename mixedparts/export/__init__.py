"""Exports of MixedParts for other tools: COCO instances (:mod:`.coco`) and GLaMM's GCG files (:mod:`.gcg`)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_json(path: str | os.PathLike, payload: object) -> Path:
    """Write JSON atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as out:
        try:
            json.dump(payload, out, separators=(",", ":"))
        except BaseException:
            out.close()
            os.unlink(out.name)
            raise
    os.replace(out.name, path)
    return path


def unit_id(sample_id: str, image_index: int) -> str:
    """The id of one (sample, image) unit: ``<sample_id>_IMAGE<k>``, k 1-based (as GCG prediction files
    are named, see :data:`mixedparts.predictions.GCG_UNIT_ID`)."""
    return f"{sample_id}_IMAGE{image_index + 1}"
