"""The "look" stage of ``calico-train``: training rows re-asked as a question only their images can answer.

A small LLM learning from scratch gets most of the task's text loss from the answer's form and from the
prior of the names, none of which needs the images, so it learns to ignore its visual slots (docs/model.md,
"Round three"). LLaVA first trains on image-caption pairs, whose targets only the image can predict; this is
the same idea on the rows at hand: the same prompt template, the same images and image tags, and an answer
that names, image by image, the object and the parts the row's segments mark there, sorted, so that nothing
in the answer can be guessed from the text. With ``data.look_answer: objects`` only the objects are named.

The answer has no ``[SEG]`` (the row's masks stay out of it), so the stage trains the text side only and
costs no SAM pass. ``train.look_steps`` runs it before the task; ``data.look_mix`` keeps a share of these
rows among the task's afterwards.
"""

from __future__ import annotations

import random

import torch

LOOK_QUESTION = "Name the object in each image and the parts you can see on it."
LOOK_ANSWERS = ("objects", "objects_and_parts")


def look_answer(row: dict, with_parts: bool = True) -> str:
    """``IMAGE1 shows <p> stool </p> with <p> leg </p> and <p> seat </p>. IMAGE2 shows …`` for ``row``: each image's
    object category (``row["objects"]``) and, ``with_parts``, the sorted distinct labels of the row's part
    segments in that image. Names without articles: the task's articles are random, these must not be."""
    category = {int(o["image_index"]): o["category"] for o in row["objects"]}
    parts: dict[int, set[str]] = {}
    for segment in row["segments"]:
        if segment.get("kind") != "object":
            parts.setdefault(int(segment["image_index"]), set()).add(segment["label"])
    sentences = []
    for index in range(len(row["images"])):
        sentence = f"IMAGE{index + 1} shows <p> {category.get(index, 'object')} </p>"
        names = sorted(parts.get(index, ())) if with_parts else []
        if names:
            listed = [f"<p> {name} </p>" for name in names]
            sentence += " with " + (listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1])
        sentences.append(sentence + ".")
    return " ".join(sentences)


def look_row(row: dict, with_parts: bool = True) -> dict:
    """``row`` with the look question and answer and no segments (the answer has no ``[SEG]``)."""
    return {**row, "question": LOOK_QUESTION, "answer": look_answer(row, with_parts), "segments": []}


def look_rows(rows: list[dict], kind: str = "objects_and_parts") -> list[dict]:
    if kind not in LOOK_ANSWERS:
        raise ValueError(f"data.look_answer must be one of {', '.join(LOOK_ANSWERS)}, got {kind!r}")
    return [look_row(row, kind == "objects_and_parts") for row in rows]


class MixedDataset(torch.utils.data.Dataset):
    """The task dataset followed by ``round(rate × len(task))`` look samples drawn once (seeded) from ``look``:
    shuffled together by the loader, about ``rate`` look samples per task sample in every epoch."""

    def __init__(self, task, look, rate: float, seed: int = 0):
        if rate < 0:
            raise ValueError(f"data.look_mix must be >= 0, got {rate}")
        self.task, self.look = task, look
        count = round(rate * len(task))
        generator = random.Random(seed)
        self.look_indices = [generator.randrange(len(look)) for _ in range(count)] if len(look) else []

    def __len__(self) -> int:
        return len(self.task) + len(self.look_indices)

    def __getitem__(self, index: int) -> dict:
        if index < len(self.task):
            return self.task[index]
        return self.look[self.look_indices[index - len(self.task)]]
