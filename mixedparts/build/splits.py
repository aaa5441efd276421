"""From each release's own splits to MixedParts' train / val / test (an image is in exactly one)."""

from __future__ import annotations

import hashlib


def unit_interval(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a string, independent of Python's hash seed."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def canonical_split(source: str, release_split: str, image_id: str, ade_val_fraction: float) -> str:
    if source == "ade20k_part234":
        # The release has training/validation only; like the authors we test on validation, and we
        # carve val out of training by a hash of the image id, so the carve-out never moves.
        if release_split == "validation":
            return "test"
        return "val" if unit_interval(image_id) < ade_val_fraction else "train"
    return release_split
