"""Writing a dataset folder: shards in parallel, resumable, then the card and the manifest.

Whatever produces the rows (the pairing builder, the import of the authors' bundle) gives a
``rows_between(split, start, end)`` function (rows as :class:`~mixedparts.build.columns.SampleFields`):
each shard is a pure function of its row range, so shard bytes never depend on the number of
workers. A shard is written under a temporary name and renamed when
complete; ``.build-state.json`` records each finished shard's sha256 so a rerun after a kill verifies
and keeps them. ``manifest.json`` is written last: its presence means the folder is complete.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import signal
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from mixedparts import __version__
from mixedparts.build.card import write_card, write_json_atomic
from mixedparts.build.columns import SampleFields, arrow_schema
from mixedparts.build.options import BUILDER_VERSION
from mixedparts.build.shards import sha256_of, shard_name, write_shard
from mixedparts.errors import MixedPartsError
from mixedparts.gc_pause import cyclic_gc_paused

STATE_FILE = ".build-state.json"
MANIFEST = "manifest.json"

# Set before forking the writer processes, which inherit it (copy-on-write) instead of pickling it.
_ROWS_BETWEEN: list[Callable[[str, int, int], list[SampleFields]]] = []


def _write_one(job: tuple[str, int, int, str]) -> tuple[str, str, int]:
    split, start, end, path = job
    with cyclic_gc_paused():  # see gc_pause: rows are many small acyclic containers
        rows = _ROWS_BETWEEN[0](split, start, end)
        digest = write_shard(rows, Path(path))
    return Path(path).name, digest, len(rows)


def check_output(out: Path, fingerprint: dict) -> None:
    """Refuse, before any work and without writing anything, a folder this build may not use."""
    if out.exists() and not out.is_dir():
        raise MixedPartsError(f"{out}: exists and is not a folder")
    state = _read_state(out)
    if state is not None:
        # A state without finished shards holds no work (e.g. an older run that failed on bad input).
        if state.get("fingerprint") != fingerprint and state.get("shards"):
            raise MixedPartsError(f"{out}: holds a build with other sources or options; use another --out, or "
                                  "delete the folder to rebuild")
        return
    if out.exists() and any(p for p in out.iterdir() if not _is_leftover(p)):
        raise MixedPartsError(f"{out}: folder exists, is not empty and holds no MixedParts build")


def prepare_output(out: Path, fingerprint: dict) -> dict:
    """Start or resume a build in ``out``; call it once the sources have been read (a run that fails on
    bad input must leave nothing behind that refuses the corrected command)."""
    check_output(out, fingerprint)
    state = _read_state(out)
    if state is not None and state.get("fingerprint") == fingerprint:
        _remove_leftovers(out)
        return state
    out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    state = {"fingerprint": fingerprint, "shards": {}}
    write_json_atomic(out / STATE_FILE, state)
    return state


def _read_state(out: Path) -> dict | None:
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MixedPartsError(f"{path}: unreadable build state ({error}); delete the folder to rebuild") from None


def _is_leftover(path: Path) -> bool:
    """Temporary files of a killed run: shards (``data/.NAME.tmp-PID``), state and manifest (``.NAME.XXXX``)."""
    return path.name.startswith((f".{STATE_FILE}.", f".{MANIFEST}."))


def _remove_leftovers(out: Path) -> None:
    for leftover in [*(out / "data").glob(".*.tmp-*"), *(p for p in out.iterdir() if _is_leftover(p))]:
        leftover.unlink(missing_ok=True)


def write_dataset(out: Path, state: dict, split_rows: dict[str, int],
                  rows_between: Callable[[str, int, int], list[SampleFields]],
                  shard_rows: int, workers: int, progress: bool) -> tuple[dict, int, int]:
    """Write every shard not already complete; returns (shards by name, written, kept)."""
    jobs, kept, names = [], 0, []
    for split, total in split_rows.items():
        count = max(1, math.ceil(total / shard_rows))
        for index in range(count):
            name = shard_name(split, index, count)
            names.append(name)
            path = out / "data" / name
            done = state["shards"].get(name)
            if done and path.is_file() and sha256_of(path) == done["sha256"]:
                kept += 1
                continue
            start = index * shard_rows
            jobs.append((split, start, min(total, start + shard_rows), str(path)))
    (out / "data").mkdir(parents=True, exist_ok=True)
    if jobs:  # incomplete again until this run finishes; a rerun that only verifies keeps the manifest
        (out / MANIFEST).unlink(missing_ok=True)

    _ROWS_BETWEEN[:] = [rows_between]
    if jobs:
        arrow_schema()  # imports datasets once here, which the forked writers inherit instead of each importing it
    try:
        with tqdm(total=sum(end - start for _, start, end, _ in jobs), desc="writing shards", unit=" samples",
                  disable=None if progress else True) as bar:
            if workers > 1 and len(jobs) > 1:
                with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)),
                                                              initializer=_leave_interrupts_to_parent) as pool:
                    for result in pool.imap_unordered(_write_one, jobs):
                        _record(out, state, result, bar)
            else:
                for job in jobs:
                    _record(out, state, _write_one(job), bar)
    finally:
        _ROWS_BETWEEN.clear()
    return {name: state["shards"][name] for name in names}, len(jobs), kept


def _leave_interrupts_to_parent() -> None:
    # Ctrl-C reaches every process of the group: without this each worker prints a traceback; the parent
    # stops the pool and says how to resume, and the next run removes the half-written temporary shards.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _record(out: Path, state: dict, result: tuple[str, str, int], bar) -> None:
    name, digest, rows = result
    state["shards"][name] = {"sha256": digest, "rows": rows}
    write_json_atomic(out / STATE_FILE, state)
    bar.update(rows)


def finish(out: Path, shards: dict, split_rows: dict, counts: dict, manifest: dict) -> None:
    """Card, then manifest (last, atomically: the folder is complete once it exists)."""
    write_card(out, counts, split_rows, title=f"MixedParts (mixedparts {__version__})", shards=shards)
    write_json_atomic(out / MANIFEST, {"format": "mixedparts-dataset/1", "builder_version": BUILDER_VERSION,
                                       "mixedparts_version": __version__, **manifest, "splits": split_rows,
                                       "counts": counts, "shards": shards})
