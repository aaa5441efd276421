"""Where things live by default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_NAME = "mixedparts"


def home() -> Path:
    """``$MIXEDPARTS_HOME``, else ``$XDG_CACHE_HOME/mixedparts``, else ``~/.cache/mixedparts``."""
    if os.environ.get("MIXEDPARTS_HOME"):
        return Path(os.environ["MIXEDPARTS_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mixedparts"


def default_dataset_dir(name: str = DEFAULT_NAME) -> Path:
    return home() / name
