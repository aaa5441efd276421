"""From chosen objects to a self-contained Sample row: masks, question and answer."""

from __future__ import annotations

import hashlib

from mixedparts import masks
from mixedparts.build import language
from mixedparts.build.columns import SampleFields
from mixedparts.build.language import Label
from mixedparts.build.pairing import COMMON_OBJECT, COMMON_PARTS, UNIQUE_PARTS, unique_parts_by_object
from mixedparts.build.pool import Pool
from mixedparts.build.seeding import SampleStreams, WordingStream
from mixedparts.masks import Rle
from mixedparts.schema import TASKS
from mixedparts.sources.records import ImageRecord, ObjectRecord


def sample_key(source: str, split: str, task: int, images: list[ImageRecord], chosen: list[ObjectRecord],
               seed: int) -> bytes:
    """Stable identity of a sample: its source, split, task, images and objects, and the seed."""
    parts = [source, split, TASKS[task], str(seed)]
    parts += [f"{image.image_id}#{obj.annotation_id}" for image, obj in zip(images, chosen)]
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).digest()


def sample_rng(key: bytes) -> WordingStream:
    """The draws of a sample's wording: those of ``np.random.default_rng(list(key))``."""
    return SampleStreams([key]).stream(0)


def materialize(pool: Pool, task: int, objects: tuple[int, ...], seed: int) -> dict:
    """The row of a planned sample: the task's rule decides its part labels."""
    return materialize_rows([(pool, task, objects)], seed)[0].as_row()


def materialize_rows(planned: list[tuple[Pool, int, tuple[int, ...]]], seed: int) -> list[SampleFields]:
    """The rows of planned samples ``(pool, task, objects)``, their generators seeded together."""
    labelled = [chosen_labels(pool, task, objects) for pool, task, objects in planned]
    keys = [sample_key(pool.source, pool.split, task, images, chosen, seed)
            for (pool, task, _), (images, chosen, _, _) in zip(planned, labelled)]
    streams = SampleStreams(keys)
    rows = []
    for i, ((pool, task, objects), (images, chosen, common, unique_by_image)) in enumerate(zip(planned, labelled)):
        unions = pool.unions

        def mask_of(label: Label, image_index: int) -> Rle:
            key = (objects[image_index], None, task == COMMON_OBJECT) if label.kind == "object" else (
                objects[image_index], label.name)
            mask = unions.get(key)
            if mask is None:
                mask = unions[key] = label_mask(label, task, images[image_index], chosen[image_index])
            return mask

        rows.append(worded_sample(pool.source, pool.split, task, images, chosen, common, unique_by_image, keys[i],
                                  streams.stream(i), mask_of))
    return rows


def chosen_labels(pool: Pool, task: int, objects: tuple[int, ...]):
    """(images, objects, common part names, unique part names by image) of a planned sample."""
    images = [pool.images[pool.object_image[o]] for o in objects]
    chosen = [image.objects[pool.object_slot[o]] for image, o in zip(images, objects)]
    part_sets = [obj.part_names for obj in chosen]
    common = sorted(frozenset.intersection(*part_sets)) if task == COMMON_PARTS else []
    unique_by_image = []
    if task == UNIQUE_PARTS:
        present = [pool.present_part_names(o) for o in objects]
        unique_by_image = [sorted(names) for names in unique_parts_by_object(part_sets, present)]
    return images, chosen, common, unique_by_image


def union_inputs(pool: Pool, task: int, objects: tuple[int, ...]) -> list[list[Rle]]:
    """The instance masks behind each segment of the planned sample, one list per segment, in no order.

    What the row's masks cost no matter how the row is assembled: ``benchmarks/build.py`` merges
    these lists (each distinct one once, as the builder's cache does) as the floor of the writing stage.
    """
    images, chosen, common, unique_by_image = chosen_labels(pool, task, objects)
    k = len(images)
    if task == COMMON_OBJECT:
        label = Label(chosen[0].category, "object", tuple(range(k)))
        return [label_instances(label, task, image, obj) for image, obj in zip(images, chosen)]
    lists = [[obj.mask] for obj in chosen]
    names_by_image = [common] * k if task == COMMON_PARTS else unique_by_image
    for image, obj, names in zip(images, chosen, names_by_image):
        lists += [label_instances(Label(name, "part", ()), task, image, obj) for name in names]
    return lists


def sample_fields(source: str, split: str, task: int, images: list[ImageRecord], chosen: list[ObjectRecord],
                  seed: int, common: list[str], unique_by_image: list[list[str]]) -> SampleFields:
    """A Sample row. ``common`` / ``unique_by_image`` name the part labels (each must be on its objects)."""
    key = sample_key(source, split, task, images, chosen, seed)

    def mask_of(label: Label, image_index: int) -> Rle:
        return label_mask(label, task, images[image_index], chosen[image_index])

    return worded_sample(source, split, task, images, chosen, common, unique_by_image, key, sample_rng(key), mask_of)


def worded_sample(source: str, split: str, task: int, images: list[ImageRecord], chosen: list[ObjectRecord],
                  common: list[str], unique_by_image: list[list[str]], key: bytes, rng: WordingStream,
                  mask_of) -> SampleFields:
    """The row of a sample whose key and generator are known; ``mask_of(label, image_index)`` gives
    each segment's mask (:func:`label_mask`, or a cache of it)."""
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

    segments = [(label.name, label.kind, image_index, mask_of(label, image_index))
                for label in labels for image_index in label.image_indices]
    task_name = TASKS[task]
    return SampleFields(f"{source}-{split}-{task_name}-{key.hex()[:16]}", source, split, task_name, images,
                        categories, language.question(task_name, rng), answer, segments)


def label_mask(label: Label, task: int, image: ImageRecord, obj: ObjectRecord) -> Rle:
    """A label's mask in one image: the union of its instances (see the README's pairing rules)."""
    return masks.union(label_instances(label, task, image, obj))


def label_instances(label: Label, task: int, image: ImageRecord, obj: ObjectRecord) -> list[Rle]:
    if label.kind == "object":
        if task == COMMON_OBJECT:
            # "Which object do the images share?": every instance of that category in the image is right.
            return [o.mask for o in image.objects if o.category == label.name]
        return [obj.mask]
    return [p.mask for p in obj.parts if p.name == label.name]
