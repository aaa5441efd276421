"""Exports of MixedParts for other tools: COCO instances (:mod:`.coco`) and GLaMM's GCG files (:mod:`.gcg`)."""

from __future__ import annotations


def unit_id(sample_id: str, image_index: int) -> str:
    """The id of one (sample, image) unit: ``<sample_id>_IMAGE<k>``, k 1-based (as GCG prediction files
    are named, see :data:`mixedparts.predictions.GCG_UNIT_ID`)."""
    return f"{sample_id}_IMAGE{image_index + 1}"
