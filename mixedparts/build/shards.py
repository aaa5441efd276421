"""Parquet shards written atomically (temporary name, then rename) and verified by checksum."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mixedparts.build.columns import SampleFields, table_of

ROW_GROUP_ROWS = 2000  # small row groups keep streaming reads cheap


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_table(table: pa.Table, path: Path) -> None:
    """The shards' Parquet settings (also what ``benchmarks/build.py`` times as the floor of a write)."""
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=False)


def write_shard(rows: list[SampleFields], path: Path) -> str:
    """Write ``rows`` to ``path`` via a temporary file; returns the file's sha256."""
    table = table_of(rows)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write_table(table, temporary)
    digest = sha256_of(temporary)
    os.replace(temporary, path)
    return digest
