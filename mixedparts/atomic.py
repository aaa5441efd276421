"""Files that appear whole or not at all: written under a temporary name, renamed into place."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _process_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread writes files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A text file handle whose content replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False)
    try:
        with handle:
            yield handle
        # NamedTemporaryFile creates 0600; give the file the mode any other file written here would get.
        os.chmod(handle.name, 0o666 & ~_UMASK)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, payload: object, *, indent: int | None = None) -> Path:
    """JSON, atomically; compact unless ``indent`` is given; NaN refused (it is not JSON)."""
    with atomic_output(path) as out:
        if indent is None:
            json.dump(payload, out, separators=(",", ":"), allow_nan=False)
        else:
            json.dump(payload, out, indent=indent, allow_nan=False)
            out.write("\n")
    return Path(path)
