"""Chunks of work in forked processes that read the parent's memory: the inputs (parsed predictions,
units) are never pickled, only each chunk's result comes back. Where fork is unavailable, or there is
one core, or the process is daemonic, the chunks run in this process."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

_TASK: tuple[Callable, Any] | None = None  # (function, shared input), inherited by the forked workers


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def can_fork(workers: int) -> bool:
    # A daemonic process (the leaderboard's scorer is one) may not have children: it works alone.
    return (workers > 1 and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def chunk_bounds(n: int, chunks: int, smallest: int = 1) -> list[tuple[int, int]]:
    """[start, stop) of about ``chunks`` equal chunks of ``range(n)``, none under ``smallest`` items."""
    size = max(smallest, -(-n // max(chunks, 1)), 1)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _run(bounds: tuple[int, int]):
    function, shared = _TASK
    return function(shared, bounds)


def fork_map(function: Callable[[Any, tuple[int, int]], Any], shared: Any, bounds: Sequence[tuple[int, int]],
             workers: int) -> list:
    """``[function(shared, b) for b in bounds]``, over ``workers`` forked processes when it can fork."""
    global _TASK
    if not can_fork(workers) or len(bounds) < 2:
        return [function(shared, b) for b in bounds]
    _TASK = (function, shared)
    try:
        # Workers never touch torch (its thread pools do not survive a fork).
        with multiprocessing.get_context("fork").Pool(min(workers, len(bounds))) as pool:
            return pool.map(_run, bounds, chunksize=1)
    finally:
        _TASK = None
