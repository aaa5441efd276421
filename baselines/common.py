"""What every baseline shares: reading a split, opening its images, and writing one prediction.

A prediction is built from *groups*: a label and its mask in one or more images. :func:`compose`
turns the groups of a sample into the answer text (the markup of ``docs/formats.md``) and the
``segments`` list in ``[SEG]`` order, so text and masks always agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mixedparts import markup, masks


@dataclass
class Group:
    """One label and its mask in each image it was found in (0-based image index -> bool HxW or RLE)."""

    label: str
    masks: dict[int, object] = field(default_factory=dict)
    score: float = 1.0


def indefinite(noun: str) -> str:
    from mixedparts.build.language import indefinite as article

    return article(noun)


def _rle(mask) -> dict:
    if isinstance(mask, Mapping):
        return dict(mask)
    return masks.encode(np.asarray(mask, dtype=bool))


def _phrases(groups: list[Group], article) -> tuple[list[str], list[dict]]:
    phrases, segments = [], []
    for group in groups:
        order = sorted(i for i, m in group.masks.items() if m is not None and masks.area(_rle(m)) > 0)
        if not order:
            continue
        phrases.append(markup.grounded(article(group.label), order))
        for i in order:
            segments.append({"label": group.label, "image_index": i, "mask": _rle(group.masks[i]),
                             "score": float(group.score)})
    return phrases, segments


def _join(phrases: list[str]) -> str:
    if len(phrases) <= 2:
        return " and ".join(phrases)
    return ", ".join(phrases[:-1]) + ", and " + phrases[-1]


def compose(sample_id: str, task: str, objects: list[Group], parts: list[Group] = ()) -> dict:
    """The prediction of one sample: answer text in the dataset's style plus its segments in [SEG] order.

    ``objects``: the object sentence (common_object: the common object(s); part tasks: each image's
    object). ``parts``: the common or unique parts (ignored for common_object). Empty masks are dropped.
    """
    object_phrases, segments = _phrases(list(objects), indefinite)
    sentences = []
    if task == "common_object":
        sentences.append(f"The common object is {_join(object_phrases)}." if object_phrases
                         else "I cannot find a common object.")
    else:
        if object_phrases:
            sentences.append(f"The objects in the images are {_join(object_phrases)}.")
        part_phrases, part_segments = _phrases(list(parts), lambda label: f"the {label}")
        segments += part_segments
        kind = "common parts between the objects" if task == "common_parts" else "unique parts"
        sentences.append(f"The {kind} are {_join(part_phrases)}." if part_phrases else f"I find no {kind}.")
    return {"sample_id": sample_id, "text": " ".join(sentences), "segments": segments}


class Images:
    """Opens the images of dataset rows: roots from the dataset's manifest, overridden by ``--image-root``."""

    def __init__(self, data: str | os.PathLike | None, roots: list[str] | None = None):
        from mixedparts.images import parse_root_options
        from mixedparts.loader import image_resolver

        self.resolver = image_resolver(data, parse_root_options(roots or []))

    def open(self, row: dict, index: int):
        return self.resolver.open(row["source"], row["split"], row["images"][index])

    def open_all(self, row: dict) -> list:
        return self.resolver.open_all(row["source"], row["split"], row["images"])


def load_rows(data: str | os.PathLike, split: str) -> list[dict]:
    from mixedparts.metrics.ground_truth import read_dataset_split
    from mixedparts.schema import SAMPLE_FIELDS

    return read_dataset_split(data, split, columns=SAMPLE_FIELDS)
