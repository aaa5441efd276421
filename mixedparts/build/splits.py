"""From each release's own splits to MixedParts' train / val / test (an image is in exactly one).

The mapping of each release is its spec's (:mod:`mixedparts.sources.registry`): ``splits`` names
the MixedParts split of every release split, and ``val_from`` a release split that val is carved
out of by a hash of the image id, so the carve-out never moves.
"""

from __future__ import annotations

import hashlib

from mixedparts.errors import MixedPartsError
from mixedparts.schema import SPLITS
from mixedparts.sources.registry import SourceSpec, get_source


def unit_interval(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a string, independent of Python's hash seed."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def _split_of(spec: SourceSpec, release_split: str) -> str:
    try:
        return spec.splits[release_split]
    except KeyError:
        raise MixedPartsError(f"source {spec.name!r} has no release split {release_split!r}; "
                              f"its splits are {', '.join(spec.splits)}") from None


def canonical_split(source: str, release_split: str, image_id: str, ade_val_fraction: float) -> str:
    """The split of one image; ``ade_val_fraction`` is the share carved out of a ``val_from`` split."""
    spec = get_source(source)
    split = _split_of(spec, release_split)
    if release_split == spec.val_from and unit_interval(image_id) < ade_val_fraction:
        return "val"
    return split


def splits_fed_by(source: str, release_split: str) -> tuple[str, ...]:
    """Every MixedParts split that images of ``release_split`` may go to, in ``SPLITS`` order."""
    spec = get_source(source)
    fed = {_split_of(spec, release_split)} | ({"val"} if release_split == spec.val_from else set())
    return tuple(split for split in SPLITS if split in fed)
