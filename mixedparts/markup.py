"""The answer markup: ``<p> phrase </p> [SEG] (IMAGE1) [SEG] (IMAGE2)`` (see ``docs/formats.md``).

The i-th ``[SEG]`` of an answer is the i-th segment; its ``(IMAGEk)`` tag (1-based) names its image.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

SEG_TOKEN = "[SEG]"
PHRASE_PATTERN = re.compile(r"<p>\s*(.*?)\s*</p>((?:\s*\[SEG\]\s*\(IMAGE\d+\))*)")
SEG_PATTERN = re.compile(r"\[SEG\]\s*\(IMAGE(\d+)\)")


@dataclass(frozen=True)
class GroundedPhrase:
    phrase: str
    image_indices: tuple[int, ...]  # 0-based, one per [SEG] that follows the phrase


def image_tag(image_index: int) -> str:
    return f"(IMAGE{image_index + 1})"


def grounded(phrase: str, image_indices: list[int] | tuple[int, ...]) -> str:
    """``<p> phrase </p> [SEG] (IMAGEk) ...`` for the given 0-based image indices."""
    return _grounded(phrase, tuple(image_indices))


@functools.lru_cache(maxsize=1 << 16)
def _grounded(phrase: str, image_indices: tuple[int, ...]) -> str:
    # The builder writes millions of answers from a few thousand distinct phrases.
    segs = " ".join(f"{SEG_TOKEN} {image_tag(i)}" for i in image_indices)
    return f"<p> {phrase} </p> {segs}".rstrip()


def parse(text: str) -> list[GroundedPhrase]:
    """The grounded phrases of an answer, in order."""
    return [
        GroundedPhrase(m.group(1), tuple(int(k) - 1 for k in SEG_PATTERN.findall(m.group(2))))
        for m in PHRASE_PATTERN.finditer(text)
    ]


def seg_count(text: str) -> int:
    return text.count(SEG_TOKEN)


def seg_image_indices(text: str) -> list[int]:
    """0-based image index of every tagged ``[SEG]`` in order."""
    return [int(k) - 1 for k in SEG_PATTERN.findall(text)]
