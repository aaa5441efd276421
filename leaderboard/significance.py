""""Significantly below the top entry": the paired bootstrap of mixedparts-compare, between leaderboard entries.

Scoring stores, with each submission's result, the per-sample sums of its scores on the hidden split
(``result["resampling"]``: numbers only, no label, mask or sample id). Two submissions scored on the
same ground truth can then be compared exactly as ``mixedparts-compare`` compares two files, without
the ground truth. For a table view (a task and a metric), each entry is tested against the top
entry; entries whose difference is significant (p < 0.05) get ``row["below_top"]``.

Results are immutable once scored, so parsed resamplers and pair summaries are cached per
(submission, finish time).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict

from leaderboard.table import DEFAULT_SORT, METRICS

REPLICATES = 1000
SEED = 0
CACHE_SIZE = 256

_lock = threading.Lock()
_resamplers: OrderedDict = OrderedDict()  # (id, finished) -> {task: TaskResampler} or None
_pairs: OrderedDict = OrderedDict()  # ((top id, finished), (id, finished), metric) -> summary
_values: OrderedDict = OrderedDict()  # ((id, finished), metric) -> replicates on the shared draws


def mark(db, table: dict) -> dict:
    """Add ``below_top`` to the submission rows of ``table`` (None where not significantly below) and
    ``table["significance"]`` describing the test; returns ``table``."""
    metric = table["sort"] if table["sort"] in METRICS else DEFAULT_SORT
    task = table["task"]
    rows = [r for r in table["rows"] if r["kind"] == "submission" and r.get("id") is not None]
    for row in rows:
        row["below_top"] = None
    ranked = [r for r in rows if r.get(metric) is not None]
    table["significance"] = None
    if len(ranked) < 2:
        return table
    top = max(ranked, key=lambda r: (r[metric], -int(r["id"])))
    stored = _stored(db, [int(r["id"]) for r in ranked])
    if stored.get(int(top["id"])) is None:
        return table
    top_key = stored[int(top["id"])]
    for row in ranked:
        key = stored.get(int(row["id"]))
        if row is top or key is None or key["gt_sha256"] != top_key["gt_sha256"]:
            continue
        entry = _pair(top_key, key, metric).get(task, {}).get(metric)
        if entry and entry["significant"] and entry["difference"] > 0:
            row["below_top"] = {"metric": metric, "difference": -entry["difference"], "p_value": entry["p_value"],
                                "ci95": [-entry["ci95"][1], -entry["ci95"][0]]}
    table["significance"] = {"top": int(top["id"]), "task": task, "metric": metric, "replicates": REPLICATES,
                             "seed": SEED, "alpha": 0.05, "test": "paired bootstrap over the hidden split's samples"}
    return table


def _stored(db, ids: list[int]) -> dict[int, dict | None]:
    """id -> {"key", "gt_sha256", "scores", "resamplers"} for the submissions that stored resampling arrays."""
    from sqlalchemy import select

    from leaderboard.models import Submission
    from mixedparts.metrics.resampling import TaskResampler

    with db.read() as session:
        stamps = session.execute(select(Submission.id, Submission.finished_at, Submission.gt_sha256)
                                 .where(Submission.id.in_(ids))).all()
        out, missing = {}, []
        with _lock:
            for sid, finished, gt in stamps:
                key = (sid, str(finished))
                if key in _resamplers:
                    _resamplers.move_to_end(key)
                    out[sid] = _resamplers[key]
                else:
                    missing.append((sid, key, gt))
        for sid, key, gt in missing:
            result = session.scalar(select(Submission.result).where(Submission.id == sid)) or {}
            arrays = result.get("resampling")
            value = None
            if arrays:
                value = {"key": key, "gt_sha256": gt, "scores": result.get("scores") or {},
                         "resamplers": {task: TaskResampler.from_arrays(a) for task, a in arrays.items()}}
            with _lock:
                _resamplers[key] = value
                while len(_resamplers) > CACHE_SIZE:
                    _resamplers.popitem(last=False)
            out[sid] = value
    return out


def _pair(top: dict, other: dict, metric: str) -> dict:
    """The paired test of one metric (every task and the mean) between two stored submissions.

    Every submission is scored once on the same shared draws (cached), so a pair costs a subtraction;
    AP50's replicates cost far more than the other metrics', hence one metric at a time."""
    from mixedparts.analysis.paired import summarize

    key = (top["key"], other["key"], metric)
    with _lock:
        if key in _pairs:
            _pairs.move_to_end(key)
            return _pairs[key]
    summary = {}
    first, second = _replicates(top, metric), _replicates(other, metric)
    if first is not None and second is not None and list(first) == list(second):
        replicas = {task: {metric: first[task][metric] - second[task][metric]} for task in first}
        observed = {task: {metric: _difference(top["scores"].get(task, {}).get(metric),
                                               other["scores"].get(task, {}).get(metric))} for task in replicas}
        summary = summarize(observed, replicas)
    with _lock:
        _pairs[key] = summary
        while len(_pairs) > CACHE_SIZE:
            _pairs.popitem(last=False)
    return summary


def _replicates(entry: dict, metric: str) -> dict | None:
    from mixedparts.analysis.paired import replicate_values

    key = (entry["key"], metric)
    with _lock:
        if key in _values:
            return _values[key]
    samples = tuple((task, r.samples) for task, r in entry["resamplers"].items())
    draws = _draws(samples)
    values = replicate_values(entry["resamplers"], draws, (metric,))
    with _lock:
        _values[key] = values
        while len(_values) > CACHE_SIZE:
            _values.popitem(last=False)
    return values


@functools.lru_cache(maxsize=2)
def _draws(samples: tuple) -> dict:
    from mixedparts.analysis.paired import shared_draws

    return shared_draws(dict(samples), REPLICATES, SEED)


def _difference(x, y):
    return None if x is None or y is None else float(x) - float(y)
