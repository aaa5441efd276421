"""``mixedparts export-gt``: write one split of a built dataset as a ground-truth file (``mixedparts-gt/1``).

The file is what ``mixedparts-eval --gt`` and the leaderboard server (``mixedparts-leaderboard serve
--gt``) score against: JSON Lines, a header ``{"format": "mixedparts-gt/1", "split": ..., "samples": N}``
then one sample row per line, with only the columns scoring reads (no question or answer text).
"""

from __future__ import annotations

import argparse

HELP = "export one split of a built dataset as a ground-truth file for mixedparts-eval --gt and the leaderboard"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="a built dataset folder (default: the default build "
                        "location, $MIXEDPARTS_HOME/mixedparts)")
    parser.add_argument("--split", default="test", help="the split to export")
    parser.add_argument("--out", required=True, metavar="FILE", help="the ground-truth file to write (JSON Lines; "
                        "written atomically, an existing file is replaced)")


def run(args: argparse.Namespace) -> int:
    import hashlib
    from pathlib import Path

    from mixedparts.metrics.ground_truth import read_dataset_split, write_ground_truth
    from mixedparts.paths import default_dataset_dir

    data = args.data if args.data is not None else str(default_dataset_dir())
    rows = read_dataset_split(data, args.split)
    path = write_ground_truth(rows, Path(args.out), args.split)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {len(rows):,} samples of the {args.split} split of {data} to {path} (sha256 {digest[:16]})")
    return 0
