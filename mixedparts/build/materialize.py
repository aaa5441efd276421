"""From chosen objects to a self-contained Sample row: masks, question and answer."""

from __future__ import annotations

import hashlib

import numpy as np

from mixedparts import masks
from mixedparts.build import language
from mixedparts.build.language import Label
from mixedparts.build.pairing import COMMON_OBJECT, COMMON_PARTS, UNIQUE_PARTS, unique_parts_by_object
from mixedparts.build.pool import Pool
from mixedparts.schema import TASKS
from mixedparts.sources.records import ImageRecord, ObjectRecord


def sample_key(source: str, split: str, task: int, images: list[ImageRecord], chosen: list[ObjectRecord],
               seed: int) -> bytes:
    """Stable identity of a sample: its source, split, task, images and objects, and the seed."""
    parts = [source, split, TASKS[task], str(seed)]
    parts += [f"{image.image_id}#{obj.annotation_id}" for image, obj in zip(images, chosen)]
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).digest()


def materialize(pool: Pool, task: int, objects: tuple[int, ...], seed: int) -> dict:
    """The row of a planned sample: the task's rule decides its part labels."""
    images = [pool.images[pool.object_image[o]] for o in objects]
    chosen = [image.objects[pool.object_slot[o]] for image, o in zip(images, objects)]
    part_sets = [obj.part_names for obj in chosen]
    common = sorted(frozenset.intersection(*part_sets)) if task == COMMON_PARTS else []
    unique_by_image = []
    if task == UNIQUE_PARTS:
        present = [pool.present_part_names(o) for o in objects]
        unique_by_image = [sorted(names) for names in unique_parts_by_object(part_sets, present)]
    return sample_row(pool.source, pool.split, task, images, chosen, seed, common, unique_by_image)


def sample_row(source: str, split: str, task: int, images: list[ImageRecord], chosen: list[ObjectRecord],
               seed: int, common: list[str], unique_by_image: list[list[str]]) -> dict:
    """A Sample row. ``common`` / ``unique_by_image`` name the part labels (each must be on its objects)."""
    key = sample_key(source, split, task, images, chosen, seed)
    rng = np.random.default_rng(list(key))
    k = len(images)
    categories = [obj.category for obj in chosen]

    if task == COMMON_OBJECT:
        answer, labels = language.common_object_answer(categories[0], k, rng)
    else:
        answer, labels = language.object_sentence(categories, rng)
        if task == COMMON_PARTS:
            part_labels = [Label(common[i], "common_part", tuple(range(k))) for i in rng.permutation(len(common))]
            kind = "common_part"
        else:
            part_labels = []
            for image_index, names in enumerate(unique_by_image):
                part_labels += [Label(names[i], "unique_part", (image_index,)) for i in rng.permutation(len(names))]
            kind = "unique_part"
        answer = f"{answer} {language.parts_sentence(part_labels, kind, rng)}"
        labels = labels + part_labels

    segments = []
    for label in labels:
        for image_index in label.image_indices:
            segments.append({"label": label.name, "kind": label.kind, "image_index": image_index,
                             "mask": label_mask(label, task, images[image_index], chosen[image_index])})
    return {
        "sample_id": f"{source}-{split}-{TASKS[task]}-{key.hex()[:16]}",
        "source": source,
        "split": split,
        "task": TASKS[task],
        "images": [{"image_id": i.image_id, "file_name": i.file_name, "width": i.width, "height": i.height}
                   for i in images],
        "objects": [{"image_index": i, "category": c} for i, c in enumerate(categories)],
        "question": language.question(TASKS[task], rng),
        "answer": answer,
        "segments": segments,
    }


def label_mask(label: Label, task: int, image: ImageRecord, obj: ObjectRecord) -> dict:
    """A label's mask in one image: the union of its instances (see the README's pairing rules)."""
    if label.kind == "object":
        if task == COMMON_OBJECT:
            # "Which object do the images share?": every instance of that category in the image is right.
            return masks.union([o.mask for o in image.objects if o.category == label.name])
        return obj.mask
    return masks.union([p.mask for p in obj.parts if p.name == label.name])
