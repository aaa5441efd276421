"""A fourth, test-only source release, "Toy Parts": its reader, its synthetic writer and its spec.

The whole plug-in a maintainer writes for a new release (docs/extending.md, "Add a source
release"): a ``SourceReader`` subclass, a writer drawing a copy of the release on disk, and the
``SourceSpec`` that names them. The release format is made up for the test and deliberately
unlike the built-in three: its splits are called fit / dev / eval, objects and parts are boxes.

    ROOT/annotations/{fit,dev,eval}.json   {"images": [{"id", "file_name", "width", "height",
                                             "objects": [{"id", "category", "box", "parts": [{"name", "box"}]}]}]}
    ROOT/images/{fit,dev,eval}/*.png
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mixedparts import masks
from mixedparts.errors import SourceError
from mixedparts.sources.base import SourceReader, load_json, require_keys
from mixedparts.sources.records import ImageRecord
from mixedparts.sources.registry import SourceSpec
from mixedparts.synth.common import SCALES, write_json

NAME = "toy_parts"
RELEASE_SPLITS = ("fit", "dev", "eval")
WIDTH, HEIGHT = 96, 64
IMAGES_PER_SPLIT = {"tiny": 8, "small": 40, "medium": 80, "full": 200}
# Two categories sharing "leg": common parts across categories, and unique parts ("top", "shade").
DESIGNS = {
    "table": (("top", (0.0, 0.0, 1.0, 0.3)), ("leg", (0.0, 0.3, 0.3, 1.0)), ("leg", (0.7, 0.3, 1.0, 1.0))),
    "lamp": (("shade", (0.1, 0.0, 0.9, 0.45)), ("leg", (0.35, 0.45, 0.65, 1.0))),
}
COLOURS = {"top": (200, 40, 40), "leg": (40, 160, 40), "shade": (40, 40, 200)}


def box_mask(box, width: int, height: int) -> masks.Rle:
    x0, y0, x1, y1 = box
    return masks.from_polygons([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width)


class ToyPartsReader(SourceReader):
    source = NAME
    splits = RELEASE_SPLITS

    def image_root(self, split: str) -> Path:
        return self.root / "images" / split

    def _read(self, split: str) -> Iterator[ImageRecord]:
        path = self.root / "annotations" / f"{split}.json"
        data = load_json(path)
        require_keys(data, ("images",), path, "top level")
        for index, image in enumerate(data["images"]):
            where = f"images[{index}]"
            require_keys(image, ("id", "file_name", "width", "height", "objects"), path, where)
            width, height = image["width"], image["height"]
            self.check_image(self.image_root(split) / image["file_name"], width, height, path, where)
            objects = []
            for obj in image["objects"]:
                require_keys(obj, ("id", "category", "box", "parts"), path, where)
                if obj["category"] not in DESIGNS:
                    raise SourceError(path, f"unknown category {obj['category']!r}", where)
                parts = [(part["name"], box_mask(part["box"], width, height)) for part in obj["parts"]]
                made = self.make_object(str(obj["id"]), obj["category"], box_mask(obj["box"], width, height),
                                        parts, width, height)
                if made is not None:
                    objects.append(made)
            yield ImageRecord(source=NAME, split=split, image_id=f"{NAME}:{image['id']}",
                              file_name=image["file_name"], width=width, height=height, objects=tuple(objects))


def _place(rng: np.random.Generator, slot: tuple[float, float]) -> tuple[int, int, int, int]:
    """An object box inside the horizontal slot [x0, x1) of the image (fractions of the width)."""
    left, right = (int(f * WIDTH) for f in slot)
    w = int(rng.integers(28, right - left - 2))
    h = int(rng.integers(40, HEIGHT - 4))
    x0 = left + int(rng.integers(0, right - left - w))
    y0 = int(rng.integers(0, HEIGHT - h))
    return x0, y0, x0 + w, y0 + h


def write(root: Path, *, scale: str, seed: int, images: bool) -> list[dict]:
    """Draw the release under ``root``; return the drawn record (what the reader must yield)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}")
    record = []
    next_id = 1
    for split_index, split in enumerate(RELEASE_SPLITS):
        rng = np.random.default_rng([seed, split_index])
        entries = []
        for index in range(IMAGES_PER_SPLIT[scale]):
            file_name = f"{split}_{index:04d}.png"
            picture = Image.new("RGB", (WIDTH, HEIGHT), (235, 235, 225))
            draw = ImageDraw.Draw(picture)
            # Every other image holds two objects side by side, the rest one object.
            slots = ((0.0, 0.5), (0.5, 1.0)) if index % 2 else ((0.15, 0.85),)
            objects = []
            for slot_index, slot in enumerate(slots):
                category = sorted(DESIGNS)[(index + slot_index + split_index) % len(DESIGNS)]
                x0, y0, x1, y1 = _place(rng, slot)
                parts = []
                for name, (fx0, fy0, fx1, fy1) in DESIGNS[category]:
                    box = [x0 + fx0 * (x1 - x0), y0 + fy0 * (y1 - y0), x0 + fx1 * (x1 - x0), y0 + fy1 * (y1 - y0)]
                    draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=COLOURS[name])
                    parts.append({"name": name, "box": box})
                objects.append({"id": next_id, "category": category, "box": [x0, y0, x1, y1], "parts": parts})
                next_id += 1
            if images:
                (root / "images" / split).mkdir(parents=True, exist_ok=True)
                picture.save(root / "images" / split / file_name, format="PNG")
            entries.append({"id": f"{split}-{index}", "file_name": file_name, "width": WIDTH, "height": HEIGHT,
                            "objects": objects})
        write_json(root / "annotations" / f"{split}.json", {"images": entries})
        record += [{"split": split, **entry} for entry in entries]
    return record


SPEC = SourceSpec(
    name=NAME, title="Toy Parts", flag="--toy-parts",
    help="Toy Parts release root (holds annotations/{fit,dev,eval}.json and images/<split>/)",
    reader=f"{__name__}:ToyPartsReader",
    splits={"fit": "train", "dev": "val", "eval": "test"},
    image_folders={"train": ("images/fit",), "val": ("images/dev",), "test": ("images/eval",)},
    annotation_files=("annotations/{split}.json",),
    root_hint="the Toy Parts folder (holding images/{fit,dev,eval}/) or one of those", example_root="/data/ToyParts",
    writer=f"{__name__}:write", synth_folder="ToyParts",
)
