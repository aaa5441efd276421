"""RLE validation: the numpy shortcut never changes a verdict or a message of the exact decoder."""

from __future__ import annotations

import numpy as np

from mixedparts import masks


def exact_verdict(rle: dict) -> str | None:
    """validation_error as written before the shortcut: every string through ``run_lengths``."""
    size, counts = rle["size"], rle["counts"]
    try:
        runs = masks.run_lengths(counts)
    except ValueError as error:
        return f"mask 'counts' is not valid RLE: {error}"
    if any(r < 0 for r in runs):
        return "mask 'counts' has a negative run length"
    if sum(runs) != size[0] * size[1]:
        return f"mask 'counts' covers {sum(runs)} pixels, but size {size[0]}x{size[1]} has {size[0] * size[1]}"
    return None


def test_validation_matches_the_exact_decoder_on_valid_and_damaged_strings():
    rng = np.random.default_rng(0)
    valid = 0
    for trial in range(2000):
        h, w = int(rng.integers(1, 80)), int(rng.integers(1, 80))
        counts = masks.encode(rng.random((h, w)) < rng.random())["counts"]
        damage = trial % 5
        if damage == 1:  # one character replaced, in or out of the alphabet
            i = int(rng.integers(len(counts)))
            counts = counts[:i] + chr(int(rng.integers(40, 115))) + counts[i + 1:]
        elif damage == 2:
            counts = counts[:int(rng.integers(len(counts)))]
        elif damage == 3:
            counts += chr(int(rng.integers(48, 112)))
        elif damage == 4:
            counts = "é" + counts if trial % 2 else counts.replace(counts[0], "~" * 9, 1)
        rle = {"size": [h, w], "counts": counts}
        assert masks.validation_error(rle) == exact_verdict(rle), rle
        valid += exact_verdict(rle) is None
    assert 400 < valid < 1900  # both verdicts were exercised


def test_large_masks_validate_and_wrong_sizes_are_named():
    mask = np.zeros((1200, 1600), dtype=bool)
    mask[100:1100, 200:1500] = True
    rle = masks.encode(mask)
    assert masks.validation_error(rle) is None
    assert masks.validation_error({"size": [1200, 1599], "counts": rle["counts"]}) == (
        "mask 'counts' covers 1920000 pixels, but size 1200x1599 has 1918800")
