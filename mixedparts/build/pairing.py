"""Seeded, balanced, capped choice of which objects form each sample (no masks touched here).

For every anchor object (in a seeded random order) and every task, up to ``partners_per_anchor[task]``
partner draws are made (each: k-1 objects from other images of the same source and split). A draw is
kept if it satisfies the task's rule, respects the per-object and per-category-pair caps, and has not
been drawn before for that task (as an unordered set of objects):

- common_object: all k objects share a category;
- common_parts: every object has parts and at least one part name is on all k objects;
- unique_parts: every object has parts and at least one object has a part name that no other object
  has at all. "Has at all" counts every annotation of the part, also those whose masks the area
  filter drops (``BuildOptions.part_presence``): a part that is merely small on the other object is
  not unique to this one. Masks, and so labels, still come only from masks that survive the filter;
  common parts need a surviving mask on every object.

Part-task partners come from the anchor's category with probability ``same_category_fraction``,
otherwise from objects that share a random part name with the anchor (comparable objects of other
categories, such as a snake and a dog sharing head and body).
"""

from __future__ import annotations

from array import array
from collections import Counter

import numpy as np

from mixedparts.build.options import BuildOptions
from mixedparts.build.pool import Pool
from mixedparts.schema import TASKS

COMMON_OBJECT, COMMON_PARTS, UNIQUE_PARTS = range(3)
TRIES_PER_WANTED = 3


class UniformStream:
    """Uniform floats drawn in blocks: a Python-level draw per call is the pairing's hot path."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16):
        self.rng, self.block = rng, block
        self.values, self.position = rng.random(block).tolist(), 0

    def __call__(self) -> float:
        if self.position == self.block:
            self.values, self.position = self.rng.random(self.block).tolist(), 0
        value = self.values[self.position]
        self.position += 1
        return value

    def pick(self, sequence):
        """An item of ``sequence``: a list, as indexing a numpy array costs a scalar object per draw."""
        return sequence[int(self() * len(sequence))]


def shuffled(items: tuple, uniform: UniformStream) -> tuple:
    """Fisher-Yates with the block stream, so the anchor is not always the first image."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = int(uniform() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return tuple(items)


def unique_parts_by_object(part_sets: list[frozenset], present_sets: list[frozenset]) -> list[frozenset]:
    """Per object: the names it has a surviving mask of (``part_sets``) that no other object has at all
    (``present_sets``, a superset of ``part_sets`` per object)."""
    if len(part_sets) == 2:  # the pairing's hot path
        return [part_sets[0] - present_sets[1], part_sets[1] - present_sets[0]]
    return [parts - frozenset().union(*(p for j, p in enumerate(present_sets) if j != i))
            for i, parts in enumerate(part_sets)]


def satisfies(task: int, categories: list[int], part_sets: list[frozenset],
              present_sets: list[frozenset] | None = None) -> bool:
    if task == COMMON_OBJECT:
        return len(set(categories)) == 1
    if not all(part_sets):
        return False
    if task == COMMON_PARTS:
        return bool(frozenset.intersection(*part_sets))
    return any(unique_parts_by_object(part_sets, present_sets if present_sets is not None else part_sets))


class Plan:
    """The samples of one split, as compact arrays: task id and the k object indices of a pool."""

    def __init__(self, k: int):
        self.k = k
        self.pool_index = array("i")
        self.task = array("b")
        self.objects = array("i")

    def append(self, pool_index: int, task: int, objects: tuple[int, ...]) -> None:
        self.pool_index.append(pool_index)
        self.task.append(task)
        self.objects.extend(objects)

    def __len__(self) -> int:
        return len(self.task)

    def row(self, i: int) -> tuple[int, int, tuple[int, ...]]:
        return self.pool_index[i], self.task[i], tuple(self.objects[i * self.k:(i + 1) * self.k])

    def rows(self, start: int, end: int) -> list[tuple[int, int, tuple[int, ...]]]:
        """``[self.row(i) for i in range(start, end)]``, sliced once."""
        k = self.k
        objects = self.objects[start * k:end * k].tolist()
        return list(zip(self.pool_index[start:end].tolist(), self.task[start:end].tolist(),
                        zip(*[iter(objects)] * k)))

    def between(self, start: int, end: int) -> Plan:
        """Rows ``start`` to ``end`` as a plan of their own (compact to pickle: three arrays)."""
        part = Plan(self.k)
        part.pool_index, part.task = self.pool_index[start:end], self.task[start:end]
        part.objects = self.objects[start * self.k:end * self.k]
        return part

    def subset(self, rows) -> Plan:
        """The plan of ``rows`` (indices, in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        chosen = Plan(self.k)
        # memoryview: numpy reads the arrays' own item types.
        chosen.pool_index.frombytes(np.asarray(memoryview(self.pool_index))[rows].tobytes())
        chosen.task.frombytes(np.asarray(memoryview(self.task))[rows].tobytes())
        chosen.objects.frombytes(np.asarray(memoryview(self.objects)).reshape(-1, self.k)[rows].tobytes())
        return chosen


def plan_pool(pool: Pool, pool_index: int, options: BuildOptions, rng: np.random.Generator, plan: Plan,
              progress=None) -> Counter:
    """Append the samples of ``pool`` to ``plan``; returns counts per task."""
    k = options.images_per_sample
    by_category, by_part = pool.index()
    category_of, parts_of, image_of = pool.object_category, pool.object_parts, pool.object_image
    present_of = pool.object_present
    usage = [0] * len(pool)
    cap_per_object, cap_per_pair = options.cap_per_object, options.cap_per_category_pair
    same_category_fraction = options.same_category_fraction
    pair_counts: dict = {}  # a dict's get: Counter's lookup of a missing key is a Python-level call
    seen: set = set()
    counts: Counter = Counter()
    uniform = UniformStream(rng)
    pick = uniform.pick

    sorted_parts = [sorted(parts) for parts in parts_of]  # what is common before the first partner

    def draw_partners(anchor: int, task: int) -> tuple[int, ...] | None:
        chosen = [anchor]
        images = {image_of[anchor]}
        running_common = None  # parts_of[anchor] until a partner is added, kept sorted in sorted_parts
        same = task == COMMON_OBJECT or uniform() < same_category_fraction
        for step in range(1, k):
            if same:
                candidates = by_category[category_of[anchor]]
            else:
                common = sorted_parts[anchor] if running_common is None else sorted(running_common)
                if not common:
                    return None
                # Partners that share a part with what is common so far stay comparable objects.
                candidates = by_part[pick(common)]
            partner = pick(candidates)
            if image_of[partner] in images or usage[partner] >= cap_per_object:
                return None
            chosen.append(partner)
            if step < k - 1:  # the last partner's intersection would go unused
                images.add(image_of[partner])
                running_common = (parts_of[anchor] if running_common is None else running_common) & parts_of[partner]
        return tuple(chosen)

    for anchor in rng.permutation(len(pool)).tolist():
        if progress is not None:
            progress.update(1)
        for task in range(len(TASKS)):
            if task != COMMON_OBJECT and not parts_of[anchor]:
                continue
            if task == COMMON_OBJECT and len(by_category[category_of[anchor]]) < k:
                continue
            wanted = options.partners_per_anchor[TASKS[task]]
            got = 0
            for _ in range(wanted * TRIES_PER_WANTED):
                if got == wanted or usage[anchor] >= cap_per_object:
                    break
                objects = draw_partners(anchor, task)
                if objects is None:
                    continue
                key = (task, *sorted(objects))
                if key in seen:
                    continue
                categories = [category_of[o] for o in objects]
                pair = (task, *sorted(categories))
                if pair_counts.get(pair, 0) >= cap_per_pair:
                    continue
                if not satisfies(task, categories, [parts_of[o] for o in objects],
                                 [present_of[o] for o in objects]):
                    continue
                seen.add(key)
                pair_counts[pair] = pair_counts.get(pair, 0) + 1
                for obj in objects:
                    usage[obj] += 1
                plan.append(pool_index, task, shuffled(objects, uniform))
                counts[TASKS[task]] += 1
                got += 1
    return counts
