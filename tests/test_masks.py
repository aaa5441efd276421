"""The RLE codec: its vectorised parser against a transliteration of pycocotools' own decoder."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mixedparts import masks


def rle_from_string(counts: str) -> list[int]:
    """pycocotools' ``rleFrString`` (common/maskApi.c) one character at a time, with Python integers,
    raising where the C code would read past the string or take a character outside its alphabet."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, k, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("truncated RLE counts")
            c = ord(counts[position]) - 48
            if not 0 <= c <= 63:
                raise ValueError(f"invalid RLE character {counts[position]!r}")
            value |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            position += 1
            k += 1
            if not more and c & 0x10:
                value |= -1 << (5 * k)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def reference_verdict(rle: dict) -> str | None:
    size, counts = rle["size"], rle["counts"]
    try:
        runs = rle_from_string(counts)
    except ValueError as error:
        return f"mask 'counts' is not valid RLE: {error}"
    if any(r < 0 for r in runs):
        return "mask 'counts' has a negative run length"
    if sum(runs) != size[0] * size[1]:
        return f"mask 'counts' covers {sum(runs)} pixels, but size {size[0]}x{size[1]} has {size[0] * size[1]}"
    return None


def damaged_rles(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for trial in range(count):
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
        out.append({"size": [h, w], "counts": counts})
    return out


def test_validation_matches_the_reference_decoder_on_valid_and_damaged_strings():
    rles = damaged_rles(2000)
    verdicts = [reference_verdict(rle) for rle in rles]
    assert [masks.validation_error(rle) for rle in rles] == verdicts
    assert 400 < verdicts.count(None) < 1900  # both verdicts were exercised
    for rle, verdict in zip(rles, verdicts):
        if verdict is None or "covers" in verdict or "negative" in verdict:
            assert masks.run_lengths(rle["counts"]) == rle_from_string(rle["counts"])


def test_bulk_verdicts_match_one_by_one():
    rles = damaged_rles(600, seed=1)
    problems = masks.counts_problems([r["counts"] for r in rles], [r["size"][0] * r["size"][1] for r in rles])
    assert [p == masks.FINE for p in problems] == [reference_verdict(r) is None for r in rles]
    first_bad = next(i for i, r in enumerate(rles) if reference_verdict(r) is not None)
    assert masks.first_invalid(rles) == first_bad
    assert masks.first_invalid([r for r in rles if reference_verdict(r) is None]) is None


def test_bulk_runs_equal_the_reference_decoder_string_by_string():
    # One batch parses all its strings at once, so strings of every length and parity sit side by side
    # (each string's delta rule must restart at its own start), with empty strings, bytes and str mixed.
    rles = damaged_rles(800, seed=2)
    strings = []
    for i, rle in enumerate(rles):
        try:
            rle_from_string(rle["counts"])
        except ValueError:
            continue
        counts = rle["counts"]
        strings.append(counts.encode("ascii") if i % 3 == 0 else counts)
        if i % 7 == 0:
            strings.append("" if i % 2 else b"")
    assert len(strings) > 400
    for batch in (strings, [s for s in strings if isinstance(s, str)], strings[1:2], ["", strings[5]]):
        parsed = masks.parse_counts(batch)
        for i, counts in enumerate(batch):
            runs = rle_from_string(counts if isinstance(counts, str) else counts.decode("ascii"))
            assert parsed.runs[parsed.first[i]:parsed.first[i + 1]].tolist() == runs
            assert parsed.problem[i] == (masks.NEGATIVE_RUN if min(runs, default=0) < 0 else masks.FINE)


def test_many_masks_are_checked_in_workers_with_the_same_answer(monkeypatch):
    rles = damaged_rles(900, seed=4)
    valid = [r for r in rles if reference_verdict(r) is None]
    bad_positions = [i for i, r in enumerate(rles) if reference_verdict(r) is not None]
    serial = [masks.first_invalid(rles, workers=1), masks.first_invalid(valid, workers=1),
              masks.first_invalid(valid + rles[bad_positions[0]:bad_positions[0] + 1], workers=1)]
    assert serial == [bad_positions[0], None, len(valid)]
    monkeypatch.setattr(masks, "PARALLEL_FROM", 0)
    forks = []
    real_fork_map = masks.fork_map
    monkeypatch.setattr(masks, "fork_map", lambda *args: forks.append(len(args[2])) or real_fork_map(*args))
    # the bad mask last, in the last worker's chunk: a worker's answer must come back, in order
    assert [masks.first_invalid(rles, workers=2), masks.first_invalid(valid, workers=2),
            masks.first_invalid(valid + rles[bad_positions[0]:bad_positions[0] + 1], workers=2)] == serial
    assert forks == [4, 4, 4]


def test_values_beyond_the_fast_path_are_decoded_exactly():
    # "P" is a chunk of 0 bits with "more" set: a zero run written with 9 chunks is valid (pycocotools
    # never writes it), and 8 chunks of value bits hold a 40-bit run no int64 shortcut may round.
    padded = "P" * 8 + "0"
    rle = {"size": [2, 3], "counts": padded + "6"}  # runs 0, 6
    assert rle_from_string(rle["counts"]) == [0, 6]
    assert masks.validation_error(rle) is None
    assert masks.first_invalid([masks.encode(np.ones((2, 3), bool)), rle]) is None
    (decoded,) = masks.decode_all([rle])
    assert decoded.all() and decoded.shape == (2, 3)
    huge = "o" * 7 + "1"  # 0x3F seven times, then 1: 2**35 + (2**35 - 1)
    assert masks.run_lengths(huge) == rle_from_string(huge) == [2**36 - 1]
    assert masks.validation_error({"size": [4, 4], "counts": huge}) == (
        f"mask 'counts' covers {2**36 - 1} pixels, but size 4x4 has 16")


def test_decode_all_equals_pycocotools_and_names_the_first_bad_mask():
    rng = np.random.default_rng(3)
    arrays = [rng.random((int(rng.integers(1, 50)), int(rng.integers(1, 50)))) < p for p in (0, 0.2, 0.9, 1)]
    rles = [masks.encode(a) for a in arrays]
    rles.append({"size": rles[1]["size"], "counts": rles[1]["counts"].encode("ascii")})  # pycocotools' bytes
    for rle, decoded in zip(rles, masks.decode_all(rles)):
        coco = {"size": rle["size"], "counts": rle["counts"] if isinstance(rle["counts"], bytes)
                else rle["counts"].encode("ascii")}
        assert np.array_equal(decoded, mask_utils.decode(coco).astype(bool))
    broken = rles[:2] + [{"size": [3, 3], "counts": "3"}] + rles[2:]
    with pytest.raises(masks.InvalidMask) as caught:
        masks.decode_all(broken)
    assert caught.value.index == 2
    assert caught.value.reason == "mask 'counts' covers 3 pixels, but size 3x3 has 9"
    assert masks.decode_all([]) == []


def test_large_masks_validate_and_wrong_sizes_are_named():
    mask = np.zeros((1200, 1600), dtype=bool)
    mask[100:1100, 200:1500] = True
    rle = masks.encode(mask)
    assert masks.validation_error(rle) is None
    assert masks.validation_error({"size": [1200, 1599], "counts": rle["counts"]}) == (
        "mask 'counts' covers 1920000 pixels, but size 1200x1599 has 1918800")


def test_well_formed_vouches_only_for_what_validation_accepts_at_the_size_asked():
    rles = damaged_rles(600, seed=5)
    vouched = masks.well_formed(rles)
    assert vouched.any() and not vouched.all()
    assert all(masks.validation_error(r) is None for r, ok in zip(rles, vouched) if ok)
    good = next(r for r, ok in zip(rles, vouched) if ok)
    h, w = good["size"]
    others = [{"size": (h, w), "counts": good["counts"]},  # a tuple size is still [h, w]
              {"size": [True, w], "counts": good["counts"]}, {"size": [h, w], "counts": good["counts"].encode()},
              {"size": [h, w], "counts": good["counts"], "extra": 1}, [good]]
    assert masks.well_formed(others).tolist() == [True, False, False, False, False]
    # at a given size (a release's image): the same string at another size is not vouched for
    assert masks.well_formed([good, good], [(h, w), (w + 1, h)]).tolist() == [True, False]
