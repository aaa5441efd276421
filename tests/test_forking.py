"""mixedparts.forking: chunked work in forked processes, results in chunk order."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from mixedparts import forking


def test_chunk_bounds_cover_the_range_in_order():
    assert forking.chunk_bounds(0, 4) == []
    assert forking.chunk_bounds(10, 3) == [(0, 4), (4, 8), (8, 10)]
    assert forking.chunk_bounds(10, 3, smallest=6) == [(0, 6), (6, 10)]
    assert forking.chunk_bounds(5, 1) == [(0, 5)]


def _span(shared, bounds):
    start, stop = bounds
    return os.getpid(), shared[start:stop]


@pytest.mark.skipif(not forking.can_fork(2), reason="needs fork")
def test_fork_map_runs_chunks_in_workers_and_keeps_their_order():
    shared = list(range(1000))  # read by the workers from the parent's memory, never pickled to them
    results = forking.fork_map(_span, shared, forking.chunk_bounds(1000, 6), 2)
    assert [x for _, part in results for x in part] == shared
    assert os.getpid() not in {pid for pid, _ in results}
    serial = forking.fork_map(_span, shared, forking.chunk_bounds(1000, 6), 1)
    assert {pid for pid, _ in serial} == {os.getpid()} and [p for _, p in serial] == [p for _, p in results]


def _fork_map_in_a_daemon(queue):
    results = forking.fork_map(_span, list(range(10)), forking.chunk_bounds(10, 4), 2)
    queue.put(({pid for pid, _ in results} == {os.getpid()}, [x for _, part in results for x in part]))


@pytest.mark.skipif(not forking.can_fork(2), reason="needs fork")
def test_a_daemonic_process_maps_alone_instead_of_failing():
    # multiprocessing refuses children to daemonic processes ("daemonic processes are not allowed to have children")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_fork_map_in_a_daemon, args=(queue,), daemon=True)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    alone, values = queue.get(timeout=10)
    assert alone and values == list(range(10))
