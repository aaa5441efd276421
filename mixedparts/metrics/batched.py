"""The per-unit pairings of :mod:`matching` and :mod:`ap50` over many units at once, on arrays.

A unit holds a few masks, so pairing them one unit at a time was mostly numpy's and Python's per-call
cost, about as much as pycocotools' IoUs themselves. Here the IoU matrices of a chunk of units are
flattened into one set of entries, and each greedy loop advances every unit by one step per round:
a few array operations per round, and as many rounds as the largest unit needs.

Every function picks what its per-unit counterpart picks, in the same order (tests compare them on
random units with ties and values at the thresholds). NaN is not handled: pycocotools' IoUs are never
NaN, and callers pair a chunk holding one unit by unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Entries:
    """The entries of one matrix per unit (rows: predictions in the matrix's order, columns: GT masks)."""

    value: np.ndarray  # float64, row-major within each unit, unit after unit
    unit: np.ndarray  # index of the entry's matrix
    row: np.ndarray
    column: np.ndarray
    row_slot: np.ndarray  # the row's index among all matrices' rows
    column_slot: np.ndarray  # the column's index among all matrices' columns
    rows: np.ndarray  # per matrix
    columns: np.ndarray  # per matrix
    units: int

    @classmethod
    def of(cls, matrices: Sequence[np.ndarray]) -> Entries:
        n = len(matrices)
        shape = np.array([m.shape for m in matrices], dtype=np.int64).reshape(n, 2)
        rows, columns = shape[:, 0], shape[:, 1]
        sizes = rows * columns
        value = (np.concatenate([np.asarray(m, dtype=float).ravel() for m in matrices]) if n
                 else np.zeros(0))
        unit = np.repeat(np.arange(n, dtype=np.int64), sizes)
        position = np.arange(len(value), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        width = columns[unit]
        row, column = np.divmod(position, np.maximum(width, 1))
        row_slot = (np.cumsum(rows) - rows)[unit] + row
        column_slot = (np.cumsum(columns) - columns)[unit] + column
        return cls(value, unit, row, column, row_slot, column_slot, rows, columns, n)


def greedy(entries: Entries, threshold: float, strict: bool, transposed: bool = False,
           gate: Callable[[np.ndarray], np.ndarray] | None = None,
           stop_at_first_failure: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every unit's greedy pairs: the largest entry left pairs its row and column while it is above
    (``strict``) or at least ``threshold``; equal entries go in row-major order of the matrix, or of
    its transpose (``transposed``, as :func:`matching.recall_matches` sees GT x predictions).

    ``gate(indices)`` says which of those entries pass the text gate; one that fails ends its unit
    (``stop_at_first_failure``) or is passed over. Returns the indices of the paired entries, unit
    after unit, each unit's in the order taken, and each one's rank within its unit.

    Taking the largest entry left, again and again, is one pass over a unit's entries sorted by value
    that passes over those whose row or column is taken (see ``matching._greedy_small``). Round k
    takes, in every unit at once, the first entry of that pass whose row and column are still free.
    """
    value = entries.value
    candidates = np.flatnonzero(value > threshold if strict else value >= threshold)
    tie = (entries.column * entries.rows[entries.unit] + entries.row if transposed
           else entries.row * entries.columns[entries.unit] + entries.column)
    candidates = candidates[np.lexsort((tie[candidates], -value[candidates], entries.unit[candidates]))]
    row_taken = np.zeros(int(entries.rows.sum()), dtype=bool)
    column_taken = np.zeros(int(entries.columns.sum()), dtype=bool)
    unit_done = np.zeros(entries.units, dtype=bool)
    taken, rounds = [], []
    step = 0
    while len(candidates):
        units = entries.unit[candidates]
        first = np.flatnonzero(np.concatenate(([True], units[1:] != units[:-1])))
        chosen = candidates[first]
        if gate is not None:
            passes = gate(chosen)
            failed = first[~passes]
            first, chosen = first[passes], chosen[passes]
        taken.append(chosen)
        rounds.append(np.full(len(chosen), step, dtype=np.int64))
        step += 1
        row_taken[entries.row_slot[chosen]] = True
        column_taken[entries.column_slot[chosen]] = True
        keep = ~(row_taken[entries.row_slot[candidates]] | column_taken[entries.column_slot[candidates]])
        if gate is not None and len(failed):
            if stop_at_first_failure:
                unit_done[units[failed]] = True
                keep &= ~unit_done[units]
            else:
                keep[failed] = False
        candidates = candidates[keep]
    if not taken:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    taken, rank = np.concatenate(taken), np.concatenate(rounds)
    order = np.argsort(entries.unit[taken], kind="stable")  # rounds are in order already
    return taken[order], rank[order]


def coco_matched(entries: Entries, threshold: float) -> np.ndarray:
    """Per row (detections in rank order, all units' rows in turn): whether it took a GT mask, as
    :func:`ap50.match_detections` decides: each detection in turn takes the free GT mask of highest
    IoU if that is at least ``threshold``, the last of equal ones."""
    matched = np.zeros(int(entries.rows.sum()), dtype=bool)
    column_taken = np.zeros(int(entries.columns.sum()), dtype=bool)
    by_row = np.argsort(entries.row, kind="stable")  # within a row: unit, then column order
    bounds = np.searchsorted(entries.row[by_row], np.arange(int(entries.rows.max(initial=0)) + 1))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = by_row[start:stop]
        index = index[(entries.value[index] >= threshold) & ~column_taken[entries.column_slot[index]]]
        if not len(index):
            continue
        # The largest value of each unit, the last column among equal ones: the last of the sort.
        index = index[np.lexsort((entries.column[index], entries.value[index], entries.unit[index]))]
        units = entries.unit[index]
        last = np.concatenate((units[1:] != units[:-1], [True]))
        best = index[last]
        matched[entries.row_slot[best]] = True
        column_taken[entries.column_slot[best]] = True
    return matched
