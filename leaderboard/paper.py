"""The rows Calico's paper (arXiv 2412.19331, CVPR 2025) reports on MixedParts.

They are shown next to the scored submissions, marked "reported in the paper, not re-scored": they
come from the paper's tables, not from this server's ground truth, and Calico's own evaluation code
is not public, so their metric variant is unknown. Only Calico has published per-task rows.
"""

from __future__ import annotations

from mixedparts.schema import METRICS

PAPER_NOTE = "reported in the paper, not re-scored"
PAPER_URL = "https://arxiv.org/abs/2412.19331"
PAPER_SOURCE = "Calico paper"



def _row(*values: float) -> dict:
    return dict(zip(METRICS, values))


PAPER_ROWS = [
    {"model": "Calico", "scores": {
        "mean": _row(45.9, 63.7, 59.7, 82.7, 77.1),
        "common_object": _row(69.2, 75.2, 78.5, 93.7, 93.4),
        "common_parts": _row(38.4, 56.9, 51.9, 74.4, 64.4),
        "unique_parts": _row(30.2, 59.1, 48.8, 80.1, 73.4)}},
    {"model": "Multi-Image LISA", "scores": {"mean": _row(41.4, 59.7, 55.5, 78.7, 72.5)}},
    {"model": "Multi-Image GLaMM", "scores": {"mean": _row(42.9, 59.9, 54.9, 76.8, 71.2)}},
    {"model": "Multi-Image VLPart", "scores": {"mean": _row(13.4, 42.8, 34.6, 59.1, 46.5)}},
    {"model": "Multi-Image PartGLEE", "scores": {"mean": _row(1.2, 29.3, 9.7, 78.5, 63.3)}},
    {"model": "Cascade", "scores": {"mean": _row(5.7, 27.9, 19.0, 32.2, 14.8)}},
]


def paper_rows() -> list[dict]:
    """The published rows in the shape of :func:`leaderboard.store.scored_rows`, marked ``paper``."""
    return [{"id": None, "team": PAPER_SOURCE, "model": row["model"], "url": PAPER_URL, "scores": row["scores"],
             "variant": {}, "date": "2025", "paper": True, "note": PAPER_NOTE} for row in PAPER_ROWS]
