"""The generators of many samples' wording at once: the streams of ``np.random.default_rng(list(key))``.

Creating one numpy generator per row (SeedSequence, then PCG64 seeded from it) cost ~30 us, mostly
numpy's Python-level ``SeedSequence.generate_state``; and each of a row's 4–6 draws through
``Generator`` cost 1.8–2.3 us of call overhead. Here numpy's SeedSequence hashing runs over the keys
of a whole shard together as uint32 columns, PCG64's seeding step is done on Python integers, and
each row's draws come from :class:`WordingStream`, PCG64 and numpy's draw algorithms on Python
integers: the same values, about a quarter of the cost. The constants and steps are numpy's
(``numpy/random/bit_generator.pyx``, ``pcg64.h``, ``distributions.c``); tests compare every state
and every kind of draw with ``default_rng``'s. Having them here also keeps the wording, and so the
shards' bytes, fixed should a later numpy change how ``Generator`` turns bits into draws.
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


def pcg64_state(seed: Sequence[int]) -> tuple[int, int]:
    """PCG64's (state, increment) after ``pcg64_set_seed(seed[0:2], seed[2:4])`` (high word first)."""
    initial = (int(seed[0]) << 64) | int(seed[1])
    increment = (((int(seed[2]) << 64) | int(seed[3])) << 1 | 1) & STATE
    return ((increment + initial) * PCG_MULTIPLIER + increment) & STATE, increment


WORD64 = (1 << 64) - 1
DOUBLE_UNIT = 1.0 / 9007199254740992.0  # 2**-53


class WordingStream:
    """The draws the wording makes, as ``np.random.Generator(PCG64)`` makes them from the same state.

    PCG64 is the XSL-RR output of a 128-bit LCG that steps before each output. Like numpy's, a 32-bit
    draw uses the low half of a 64-bit output and keeps the high half for the next 32-bit draw;
    64-bit draws (``random``) leave that half waiting.
    """

    __slots__ = ("state", "increment", "has_high", "high")

    def __init__(self, state: int, increment: int):
        self.state, self.increment, self.has_high, self.high = state, increment, False, 0

    def _next64(self) -> int:
        state = self.state = (self.state * PCG_MULTIPLIER + self.increment) & STATE
        word = ((state >> 64) ^ state) & WORD64
        rotation = state >> 122
        return ((word >> rotation) | (word << (-rotation & 63))) & WORD64

    def _next32(self) -> int:
        if self.has_high:
            self.has_high = False
            return self.high
        value = self._next64()
        self.has_high, self.high = True, value >> 32
        return value & WORD

    def random(self) -> float:
        """``Generator.random()``: a double in [0, 1) from the top 53 bits."""
        return (self._next64() >> 11) * DOUBLE_UNIT

    def integers(self, high: int) -> int:
        """``Generator.integers(high)`` for 1 <= high <= 2**32: Lemire's multiply-shift on 32-bit draws,
        rejecting the biased low products; ``high == 1`` draws nothing."""
        if not 1 <= high <= 1 << 32:
            raise ValueError(f"integers: high must be in [1, 2**32], got {high}")
        if high == 1:
            return 0
        if high == 1 << 32:
            return self._next32()
        product = self._next32() * high
        if (product & WORD) < high:
            threshold = (WORD - (high - 1)) % high
            while (product & WORD) < threshold:
                product = self._next32() * high
        return product >> 32

    def permutation(self, n: int) -> list[int]:
        """``Generator.permutation(n).tolist()`` for n < 2**32: Fisher-Yates from the end, each index drawn
        by masking a 32-bit draw to the bits of its bound and rejecting values above it."""
        if not 0 <= n <= 1 << 32:
            raise ValueError(f"permutation: n must be in [0, 2**32], got {n}")
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            mask = (1 << i.bit_length()) - 1
            j = self._next32() & mask
            while j > i:
                j = self._next32() & mask
            order[i], order[j] = order[j], order[i]
        return order


class SampleStreams:
    """Row i's draws are those of ``np.random.default_rng(list(keys[i]))``; ``stream(i)`` starts them."""

    def __init__(self, keys: Sequence[bytes]):
        width = len(keys[0]) if keys else 0
        if any(len(key) != width for key in keys):
            raise ValueError("all keys must have the same length")
        entropy = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width).astype(np.uint32)
        self._seeds = pcg64_seeds(entropy).tolist() if keys else []

    def stream(self, i: int) -> WordingStream:
        return WordingStream(*pcg64_state(self._seeds[i]))
