"""What the benchmark scripts measure the same way (imported as ``measure``: a script's folder is on its path)."""

from __future__ import annotations

import resource


def cpu_seconds() -> float:
    """User + system seconds of this process and of its children that have ended (writer or scoring workers):
    unlike wall time, it barely moves when other jobs share the cores, so CPU ratios compare across runs."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
