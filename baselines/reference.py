"""``oracle`` and ``simple``: the two weight-free reference predictors of ``mixedparts demo``.

Both are :mod:`mixedparts.reference_predictions` (reused, not copied): ``oracle`` returns the ground
truth (every metric 100, a check of the scoring path); ``simple`` is the object-box predictor (ground
truth labels and text, every mask the bounding box of the image's object).
"""

from __future__ import annotations

import argparse

from mixedparts.reference_predictions import predict

NEEDS_IMAGES = False


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def oracle(args: argparse.Namespace, rows: list[dict], images) -> list[dict]:
    return predict("oracle", rows)


def simple(args: argparse.Namespace, rows: list[dict], images) -> list[dict]:
    return predict("object-box", rows)
