"""Shared by the synthetic release writers: scales, file writing, and the record of what was drawn."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
from PIL import Image

from mixedparts.synth.draw import DrawnImage

# medium: ten times small's training images with small's very val and test images (an image is drawn from its
# (seed, source, split, index) alone), so a model trained on it is scored on the same held-out images as on small
SCALES = ("tiny", "small", "medium", "full")
SHOW_PROGRESS: list[bool] = [False]  # set by synthesize(progress=True); full scale takes minutes
DRAWN_RECORD = "drawn.json"  # written next to the release folders, never inside them


def image_rng(seed: int, source: str, split: str, index: int) -> np.random.Generator:
    """Independent stream per image, so any image can be regenerated alone and order never matters."""
    key = [seed, *source.encode(), *split.encode(), index]
    return np.random.default_rng(key)


def write_jpeg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_png(path: Path, array: np.ndarray) -> None:
    """uint8 -> 8-bit PNG, uint16 -> 16-bit PNG (PIL mode ``I;16``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"unsupported label map dtype {array.dtype}")
    Image.fromarray(array).save(path, format="PNG")  # PIL picks "L" or "I;16" from the dtype


def drawing(items, total: int, what: str):
    """``items`` (the drawn images of one split), with a progress bar when synthesize asked for one."""
    if not SHOW_PROGRESS[0]:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=f"drawing {what}", unit=" images", disable=None)  # off when not a TTY


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # json.dumps uses the C encoder; json.dump streams through the pure-Python one (3x slower here).
    path.write_text(json.dumps(payload, separators=(",", ":")))


def _shallow(instance) -> dict:
    """``dataclasses.asdict`` without its deep copies (nothing else holds these lists; 25% of synth time)."""
    return {f.name: getattr(instance, f.name) for f in fields(instance)}


def drawn_entry(split: str, file_name: str, drawn: DrawnImage, **extra) -> dict:
    """One image of the drawn record: what the generator put there, with the names readers must produce."""
    objects = [{**_shallow(obj), "parts": [_shallow(part) for part in obj.parts]} for obj in drawn.objects]
    return {"split": split, "file_name": file_name, **extra, "width": drawn.width, "height": drawn.height,
            "objects": objects}
