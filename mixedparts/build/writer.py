"""Writing a dataset folder: shards in parallel, resumable, then the card and the manifest.

Whatever produces the rows (the pairing builder, the import of the authors' bundle) gives a
``row_at(split, i)`` function: each shard is a pure function of its row range, so shard bytes never
depend on the number of workers. A shard is written under a temporary name and renamed when
complete; ``.build-state.json`` records each finished shard's sha256 so a rerun after a kill verifies
and keeps them. ``manifest.json`` is written last: its presence means the folder is complete.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from mixedparts import __version__
from mixedparts.build.card import write_card, write_json_atomic
from mixedparts.build.options import BUILDER_VERSION
from mixedparts.build.shards import sha256_of, shard_name, write_shard
from mixedparts.errors import MixedPartsError

STATE_FILE = ".build-state.json"
MANIFEST = "manifest.json"

# Set before forking the writer processes, which inherit it (copy-on-write) instead of pickling it.
_ROW_AT: list[Callable[[str, int], dict]] = []


def _write_one(job: tuple[str, int, int, str]) -> tuple[str, str, int]:
    split, start, end, path = job
    row_at = _ROW_AT[0]
    rows = [row_at(split, i) for i in range(start, end)]
    return Path(path).name, write_shard(rows, Path(path)), len(rows)


def prepare_output(out: Path, fingerprint: dict) -> dict:
    """Start or resume a build in ``out``; refuse to mix builds of different inputs or options."""
    state_path = out / STATE_FILE
    if out.exists() and not out.is_dir():
        raise MixedPartsError(f"{out}: exists and is not a folder")
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != fingerprint:
            raise MixedPartsError(f"{out}: holds a build with other sources or options; use another --out, or "
                                  "delete the folder to rebuild")
        (out / MANIFEST).unlink(missing_ok=True)  # incomplete again until this run finishes
        for leftover in (out / "data").glob(".*.tmp-*"):  # from a writer killed mid-shard
            leftover.unlink()
        return state
    if out.exists() and any(out.iterdir()):
        raise MixedPartsError(f"{out}: folder exists, is not empty and holds no MixedParts build")
    out.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": fingerprint, "shards": {}}
    write_json_atomic(state_path, state)
    return state


def write_dataset(out: Path, state: dict, split_rows: dict[str, int], row_at: Callable[[str, int], dict],
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

    _ROW_AT[:] = [row_at]
    try:
        with tqdm(total=sum(end - start for _, start, end, _ in jobs), desc="writing shards", unit=" samples",
                  disable=None if progress else True) as bar:
            if workers > 1 and len(jobs) > 1:
                with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                    for result in pool.imap_unordered(_write_one, jobs):
                        _record(out, state, result, bar)
            else:
                for job in jobs:
                    _record(out, state, _write_one(job), bar)
    finally:
        _ROW_AT.clear()
    return {name: state["shards"][name] for name in names}, len(jobs), kept


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
