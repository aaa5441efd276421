"""Tiny hand-built ground truth for the metric, predictions and mixedparts-eval tests.

The builder is not needed: rows follow schema.SAMPLE_FEATURES, masks are small numpy arrays encoded
with mixedparts.masks.encode. Sample ``s{i}`` has images of 20x30 and 25x15 (height x width); the
malformed-predictions corpus relies on these ids and sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixedparts.masks import encode
from mixedparts.schema import SAMPLE_FEATURES, TASKS

SIZES = ((20, 30), (25, 15))
PARTS = ("leg", "seat", "back", "arm")


def box(size, top, left, bottom, right) -> dict:
    mask = np.zeros(size, dtype=bool)
    mask[top:bottom, left:right] = True
    return encode(mask)


def empty_rle(size) -> dict:
    return encode(np.zeros(size, dtype=bool))


def random_box(rng, size) -> dict:
    h, w = size
    top, left = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
    return box(size, top, left, int(rng.integers(top + 1, h + 1)), int(rng.integers(left + 1, w + 1)))


def make_rows(samples_per_task: int = 3, seed: int = 0, split: str = "test") -> list[dict]:
    """Rows s0, s1, ... cycling through the tasks; objects are chairs or tables, parts from PARTS."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(samples_per_task * len(TASKS)):
        task = TASKS[number % len(TASKS)]
        category = ("chair", "table")[number % 2]
        segments = []
        for k, size in enumerate(SIZES):
            segments.append({"label": category, "kind": "object", "image_index": k, "mask": random_box(rng, size)})
        if task == "common_parts":
            for part in PARTS[:2]:
                for k, size in enumerate(SIZES):
                    segments.append({"label": part, "kind": "common_part", "image_index": k,
                                     "mask": random_box(rng, size)})
        elif task == "unique_parts":
            for k, part in enumerate(PARTS[2:]):
                segments.append({"label": part, "kind": "unique_part", "image_index": k,
                                 "mask": random_box(rng, SIZES[k])})
        rows.append({
            "sample_id": f"s{number}", "source": ("synthetic", "paco_lvis")[number % 2], "split": split,
            "task": task,
            "images": [{"image_id": f"img{number}-{k}", "file_name": f"{number}-{k}.png", "width": w, "height": h}
                       for k, (h, w) in enumerate(SIZES)],
            "objects": [{"image_index": k, "category": category} for k in range(len(SIZES))],
            "question": "Can you segment the common parts of the objects in these images?",
            "answer": "", "segments": segments,
        })
    return rows


def oracle_predictions(rows: list[dict], article: bool = True) -> list[dict]:
    """Ground-truth masks with the phrases an answer would carry ("the leg")."""
    return [{"sample_id": row["sample_id"], "text": "",
             "segments": [{"label": f"the {s['label']}" if article else s["label"], "image_index": s["image_index"],
                           "mask": s["mask"]} for s in row["segments"]]}
            for row in rows]


def write_parquet_dataset(rows: list[dict], folder: Path, split: str = "test") -> Path:
    """A dataset folder as the builder lays it out: data/{split}-00000-of-00001.parquet."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SAMPLE_FEATURES.arrow_schema)
    pq.write_table(table, folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2, loaded once per test session (text_models caches it for the process)."""
    from mixedparts.metrics.text_models import MiniLM

    model = MiniLM()
    model.embed(["warm up"])
    return model
