"""Name normalization shared by the readers: lowercase, spaces, LVIS disambiguators stripped."""

from __future__ import annotations

import re

_LVIS_SUFFIX = re.compile(r"_\([^)]*\)$")
_SPACES = re.compile(r"\s+")

# Spelling fixes applied to every part name; real release names otherwise stay as they are
# ("steeringwheel", "colied tube"), as the authors' loader keeps them.
PART_SPELLING = {"tier": "tire"}


def normalize(name: str) -> str:
    """``car_(automobile)`` -> ``car``; ``back_cover`` -> ``back cover``; ``Side Mirror`` -> ``side mirror``."""
    name = _LVIS_SUFFIX.sub("", name.strip())
    return _SPACES.sub(" ", name.replace("_", " ")).strip().lower()


def normalize_part(name: str) -> str:
    name = normalize(name)
    return PART_SPELLING.get(name, name)
