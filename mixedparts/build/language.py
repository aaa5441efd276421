"""Questions and answers in the authors' format, with our own wording.

Articles follow the authors' data (see ``docs/building.md``): the object sentence
always uses "a"/"an"; part phrases use "the" or "a"/"an" chosen per sample; singular unique-part
templates use only "the". Labels in ``segments`` stay bare; only the answer text carries articles.
"""

from __future__ import annotations

from typing import NamedTuple

from mixedparts.build.seeding import WordingStream
from mixedparts.markup import grounded

COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}

QUESTIONS = {
    "common_object": (
        "What object do these images have in common? Please segment it in each image.",
        "Which object appears in all of these images? Segment it.",
        "Can you find and segment the common object in these images?",
        "Identify the object shared by the images and output its mask in each of them.",
    ),
    "common_parts": (
        "Can you segment the common parts of the objects in these images?",
        "Which parts do the objects in these images share? Please segment them.",
        "Find the parts that the objects in these images have in common, and segment them in every image.",
        "What parts are shared between the objects shown? Segment each of them.",
    ),
    "unique_parts": (
        "Can you segment the unique parts of the objects in these images?",
        "Which parts does only one of the objects have? Please segment them.",
        "Find the parts that appear on just one of the objects in these images, and segment them.",
        "What parts set the objects in these images apart? Segment each one where it appears.",
    ),
}

COMMON_OBJECT_ANSWERS = (
    "The common object is {object}.",
    "The object shared by the images is {object}.",
    "All images show {object}.",
)
SAME_OBJECT_SENTENCES = ("Both images show {object}.", "The images include {object}.")
MANY_SAME_OBJECT_SENTENCES = ("All {count} images show {object}.", "The images include {object}.")
MIXED_OBJECT_SENTENCES = ("The images show {objects}.", "The objects in the images are {objects}.")
COMMON_PART_SENTENCES = {
    "singular": ("The common part between the objects is {parts}.", "The shared part is {parts}.",
                 "The detected common part is {parts}."),
    "plural": ("The common parts between the objects are {parts}.", "The shared parts are {parts}.",
               "The detected common parts are {parts}."),
}
UNIQUE_PART_SENTENCES = {
    "singular": ("The unique part is {parts}.", "The part found on only one object is {parts}."),
    "plural": ("The unique parts are {parts}.", "The unique parts identified are {parts}.",
               "The parts found on only one object are {parts}."),
}


def indefinite(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def with_article(name: str, article: str) -> str:
    return indefinite(name) if article == "a" else f"the {name}"


def join_list(items: list[str]) -> str:
    """"X", "X and Y", "X, Y, and Z"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


class Label(NamedTuple):
    """One grounded label of an answer: its bare name, kind and the images its masks are in (a
    NamedTuple: a row makes ~5, and a frozen dataclass's ``__init__`` cost 3x as much)."""

    name: str
    kind: str  # "object" | "common_part" | "unique_part"
    image_indices: tuple[int, ...]


def object_sentence(categories: list[str], rng: WordingStream) -> tuple[str, list[Label]]:
    """The object sentence that opens every part answer; always "a"/"an"."""
    k = len(categories)
    if len(set(categories)) == 1:
        label = Label(categories[0], "object", tuple(range(k)))
        templates = SAME_OBJECT_SENTENCES if k == 2 else MANY_SAME_OBJECT_SENTENCES
        template = templates[rng.integers(len(templates))]
        phrase = grounded(indefinite(categories[0]), label.image_indices)
        return template.format(object=phrase, count=COUNT_WORDS.get(k, str(k))), [label]
    labels = [Label(c, "object", (i,)) for i, c in enumerate(categories)]
    template = MIXED_OBJECT_SENTENCES[rng.integers(len(MIXED_OBJECT_SENTENCES))]
    phrases = [grounded(indefinite(label.name), label.image_indices) for label in labels]
    return template.format(objects=join_list(phrases)), labels


def common_object_answer(category: str, k: int, rng: WordingStream) -> tuple[str, list[Label]]:
    label = Label(category, "object", tuple(range(k)))
    article = "the" if rng.random() < 0.5 else "a"
    template = COMMON_OBJECT_ANSWERS[rng.integers(len(COMMON_OBJECT_ANSWERS))]
    return template.format(object=grounded(with_article(category, article), label.image_indices)), [label]


def parts_sentence(labels: list[Label], kind: str, rng: WordingStream) -> str:
    number = "singular" if len(labels) == 1 else "plural"
    templates = (COMMON_PART_SENTENCES if kind == "common_part" else UNIQUE_PART_SENTENCES)[number]
    template = templates[rng.integers(len(templates))]
    # The authors' singular unique-part templates only ever say "the".
    article = "the" if (kind == "unique_part" and number == "singular") or rng.random() < 0.5 else "a"
    phrases = [grounded(with_article(label.name, article), label.image_indices) for label in labels]
    return template.format(parts=join_list(phrases))


def question(task: str, rng: WordingStream) -> str:
    templates = QUESTIONS[task]
    return templates[rng.integers(len(templates))]
