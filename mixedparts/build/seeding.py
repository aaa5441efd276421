"""The generators of many samples' wording at once: ``np.random.default_rng(list(key))`` for every key.

Creating one generator per row (SeedSequence, then PCG64 seeded from it) cost ~30 us, mostly
numpy's Python-level ``SeedSequence.generate_state``. Here numpy's SeedSequence hashing runs over
the keys of a whole shard together as uint32 columns, PCG64's seeding step is done on Python
integers, and one Generator is re-pointed at each row's state: the same streams, a few us a row.
The constants and steps are numpy's (``numpy/random/bit_generator.pyx`` and ``pcg64.c``); a test
compares every state with ``default_rng``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POOL_SIZE = 4  # SeedSequence's DEFAULT_POOL_SIZE
INIT_A, MULT_A = 0x43B0D7E5, 0x931E8875
INIT_B, MULT_B = 0x8B51F9DD, 0x58F38DED
MIX_MULT_L, MIX_MULT_R = 0xCA01F9DD, 0x4973F715
XSHIFT = 16
WORD = 0xFFFFFFFF
PCG_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645  # PCG_DEFAULT_MULTIPLIER_128
STATE = (1 << 128) - 1


class _HashConstant:
    """SeedSequence's running hash constant: the same for every key, so plain Python integers."""

    def __init__(self, value: int, multiplier: int):
        self.value, self.multiplier = value, multiplier

    def hash(self, words: np.ndarray) -> np.ndarray:
        """``hashmix`` / one ``generate_state`` step on a column of uint32 words (wrapping like C's)."""
        words = words ^ np.uint32(self.value)
        self.value = (self.value * self.multiplier) & WORD
        words = words * np.uint32(self.value)
        return words ^ (words >> np.uint32(XSHIFT))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(MIX_MULT_L) * x - np.uint32(MIX_MULT_R) * y
    return result ^ (result >> np.uint32(XSHIFT))


def pcg64_seeds(entropy: np.ndarray) -> np.ndarray:
    """SeedSequence(row).generate_state(4, uint64) for every row of ``entropy`` (n × words, uint32)."""
    n, words = entropy.shape
    constant = _HashConstant(INIT_A, MULT_A)
    zeros = np.zeros(n, dtype=np.uint32)
    pool = [constant.hash(entropy[:, i] if i < words else zeros) for i in range(POOL_SIZE)]
    for source in range(POOL_SIZE):
        for target in range(POOL_SIZE):
            if source != target:
                pool[target] = _mix(pool[target], constant.hash(pool[source]))
    for source in range(POOL_SIZE, words):
        for target in range(POOL_SIZE):
            pool[target] = _mix(pool[target], constant.hash(entropy[:, source]))
    constant = _HashConstant(INIT_B, MULT_B)
    state = np.stack([constant.hash(pool[i % POOL_SIZE]) for i in range(8)], axis=1)
    # generate_state reads pairs of uint32 words as little-endian uint64.
    return state.astype("<u4").view("<u8").astype(np.uint64)


def pcg64_state(seed: Sequence[int]) -> dict:
    """PCG64's state after ``pcg64_set_seed(seed[0:2], seed[2:4])`` (high word first), as its ``state``."""
    initial = (int(seed[0]) << 64) | int(seed[1])
    increment = (((int(seed[2]) << 64) | int(seed[3])) << 1 | 1) & STATE
    state = ((increment + initial) * PCG_MULTIPLIER + increment) & STATE
    return {"bit_generator": "PCG64", "state": {"state": state, "inc": increment}, "has_uint32": 0, "uinteger": 0}


class SampleStreams:
    """Row i's generator is ``np.random.default_rng(list(keys[i]))``, handed out one at a time.

    All rows share one Generator, re-pointed at row i's state by ``stream(i)``: finish drawing for a
    row before asking for the next.
    """

    def __init__(self, keys: Sequence[bytes]):
        width = len(keys[0]) if keys else 0
        if any(len(key) != width for key in keys):
            raise ValueError("all keys must have the same length")
        entropy = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width).astype(np.uint32)
        self._seeds = pcg64_seeds(entropy).tolist() if keys else []
        self._generator = np.random.Generator(np.random.PCG64())

    def stream(self, i: int) -> np.random.Generator:
        self._generator.bit_generator.state = pcg64_state(self._seeds[i])
        return self._generator
