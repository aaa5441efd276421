"""Writing a dataset folder: shards in parallel, resumable, then the card and the manifest.

Whatever produces the rows (the pairing builder, the import of the authors' bundle) gives a
``rows_of(split, start, end, payload)`` function (rows as :class:`~mixedparts.build.columns.SampleFields`):
each shard is a pure function of its row range (and of its payload, the part of the input made after
the writers were forked), so shard bytes never depend on the number of workers or on when a split was
added. A shard is written under a temporary name and renamed when complete; ``.build-state.json``
records each finished shard's sha256 so a rerun after a kill verifies and keeps them.
``manifest.json`` is written last: its presence means the folder is complete.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import signal
import threading
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
_ROWS_OF: list[Callable[[str, int, int, object], list[SampleFields]]] = []


def _write_one(job: tuple[str, int, int, str, object]) -> tuple[str, str, int]:
    split, start, end, path, payload = job
    with cyclic_gc_paused():  # see gc_pause: rows are many small acyclic containers
        rows = _ROWS_OF[0](split, start, end, payload)
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
    with ShardWriter(out, state, lambda split, start, end, _: rows_between(split, start, end), shard_rows,
                     workers, progress) as writer:
        for split, total in split_rows.items():
            writer.add(split, total)
        return writer.wait()


class ShardWriter:
    """Writes the shards of each split as soon as the split is added, while the caller goes on.

    ``rows_of(split, start, end, payload)`` makes a shard's rows; ``add(split, total, payload_of)``
    queues the split's unfinished shards, each with ``payload_of(start, end)`` (what the rows need that
    did not exist when the writers were forked: the builder passes the slice of a plan made later).
    The writer processes are forked at the first shard to write; with one worker each shard is
    written inside ``add``. Only this process records finished shards in the state file.
    """

    def __init__(self, out: Path, state: dict, rows_of: Callable[[str, int, int, object], list[SampleFields]],
                 shard_rows: int, workers: int, progress: bool):
        self.out, self.state, self.shard_rows, self.workers = out, state, shard_rows, workers
        self.names: list[str] = []
        self.written = self.kept = 0
        self._pending: list = []
        self._pool = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # results are recorded by the pool's result thread
        _ROWS_OF[:] = [rows_of]
        self._bar = tqdm(total=0, desc="writing shards", unit=" samples", disable=None if progress else True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        self._bar.close()
        _ROWS_OF.clear()

    def add(self, split: str, total: int, payload_of: Callable[[int, int], object] | None = None) -> None:
        jobs = []
        count = max(1, math.ceil(total / self.shard_rows))
        for index in range(count):
            name = shard_name(split, index, count)
            self.names.append(name)
            path = self.out / "data" / name
            done = self.state["shards"].get(name)
            if done and path.is_file() and sha256_of(path) == done["sha256"]:
                self.kept += 1
                continue
            start = index * self.shard_rows
            end = min(total, start + self.shard_rows)
            jobs.append((split, start, end, str(path), payload_of(start, end) if payload_of else None))
        if not jobs:
            return
        (self.out / "data").mkdir(parents=True, exist_ok=True)
        if not self.written and not self._pending:
            # Incomplete again until this run finishes; a rerun that only verifies keeps the manifest.
            (self.out / MANIFEST).unlink(missing_ok=True)
            arrow_schema()  # imports datasets once here, which the forked writers inherit instead of each importing it
        with self._lock:
            self._bar.total += sum(end - start for _, start, end, _, _ in jobs)
            self._bar.refresh()
        if self.workers <= 1:
            for job in jobs:
                self._record(_write_one(job))
            return
        if self._pool is None:
            self._pool = multiprocessing.get_context("fork").Pool(self.workers,
                                                                  initializer=_leave_interrupts_to_parent)
        self._pending += [self._pool.apply_async(_write_one, (job,), callback=self._record_from_pool)
                          for job in jobs]

    def wait(self) -> tuple[dict, int, int]:
        """Block until every added shard is written; returns (shards by name, written, kept)."""
        for result in self._pending:
            result.get()  # raises a writer's error here
            if self._error is not None:
                raise self._error
        self._pending = []
        return {name: self.state["shards"][name] for name in self.names}, self.written, self.kept

    def _record_from_pool(self, result: tuple[str, str, int]) -> None:
        # An exception escaping a pool callback would leave its result unfinished and ``wait`` blocked.
        try:
            self._record(result)
        except BaseException as error:  # noqa: BLE001 (re-raised by wait)
            self._error = error

    def _record(self, result: tuple[str, str, int]) -> None:
        name, digest, rows = result
        with self._lock:
            self.state["shards"][name] = {"sha256": digest, "rows": rows}
            write_json_atomic(self.out / STATE_FILE, self.state)
            self.written += 1
            self._bar.update(rows)


def _leave_interrupts_to_parent() -> None:
    # Ctrl-C reaches every process of the group: without this each worker prints a traceback; the parent
    # stops the pool and says how to resume, and the next run removes the half-written temporary shards.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def finish(out: Path, shards: dict, split_rows: dict, counts: dict, manifest: dict) -> None:
    """Card, then manifest (last, atomically: the folder is complete once it exists)."""
    write_card(out, counts, split_rows, title=f"MixedParts (mixedparts {__version__})", shards=shards)
    write_json_atomic(out / MANIFEST, {"format": "mixedparts-dataset/1", "builder_version": BUILDER_VERSION,
                                       "mixedparts_version": __version__, **manifest, "splits": split_rows,
                                       "counts": counts, "shards": shards})
