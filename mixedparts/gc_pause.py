"""Work on many small objects without the cyclic garbage collector's passes.

Building and scoring create millions of small acyclic containers: the JSON of each release or
predictions file, the records read from it, the plan, a shard's rows, the ground truth's rows.
Reference counting frees all of them; the cyclic collector only walks them, again and again as
they grow (a full pass each time the tracked objects grow by a quarter): ~40% of assembling a
shard's rows, and a good share of reading JSON or a split's rows.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
