"""Errors the command line turns into one line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path


class MixedPartsError(Exception):
    """A problem with the user's input, reported without a traceback."""


class SourceError(MixedPartsError):
    """Bad or inconsistent data in a source release: names the file and the record."""

    def __init__(self, path: str | Path, message: str, record: str | None = None):
        self.path = str(path)
        self.record = record
        self.message = message
        where = f"{self.path}: {record}" if record else self.path
        super().__init__(f"{where}: {message}")
