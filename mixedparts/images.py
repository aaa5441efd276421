"""Finding a sample's image files: rows reference images relative to their source's image root."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from mixedparts.errors import MixedPartsError


def manifest_image_roots(dataset_dir: str | Path) -> dict:
    """``{source: {split: root}}`` recorded by the builder in ``manifest.json`` (empty if there is none)."""
    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.is_file():
        return {}
    return json.loads(manifest.read_text()).get("image_roots", {})


def image_path(row: dict, index: int, image_roots: dict) -> Path:
    """The file of image ``index`` of ``row``; ``image_roots`` maps source -> root or source -> {split: root}."""
    source, split = row["source"], row["split"]
    file_name = row["images"][index]["file_name"]
    root = image_roots.get(source)
    if isinstance(root, dict):
        root = root.get(split)
    if root is None:
        raise MixedPartsError(f"no image root for source {source!r} (split {split}); pass image_roots="
                              f"{{{source!r}: '/path/to/images'}} (or --image-root {source}=PATH)")
    path = Path(root) / file_name
    if not path.is_file():
        raise MixedPartsError(f"image file not found: {path} (image root of {source}/{split}: {root}, file "
                              f"{file_name}); pass image_roots={{{source!r}: ...}} if the images moved")
    return path


def open_image(row: dict, index: int, image_roots: dict) -> Image.Image:
    with Image.open(image_path(row, index, image_roots)) as image:
        return image.convert("RGB")
