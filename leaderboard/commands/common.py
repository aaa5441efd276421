"""What several leaderboard subcommands share: the --db option, the scoring workers' options, the
ground-truth check and the team token."""

from __future__ import annotations

import argparse
import os

from mixedparts.argtypes import non_negative_int, positive_float, positive_int
from mixedparts.errors import MixedPartsError

DB_HELP = ("the database: an SQLite file path or a SQLAlchemy URL (sqlite:///lb.db, postgresql://user:pass@host/db); "
           "default $MIXEDPARTS_LEADERBOARD_DB")

# The scoring workers' options, as `serve` and `worker` take them: (flag, type, default, metavar, help).
# `serve` passes each on to the worker processes it starts.
WORKER_OPTIONS = (
    ("--scoring-timeout", positive_float, 1800, "S",
     "seconds one submission may take to score before it is rejected (default: 1800)"),
    ("--lease", positive_float, 30, "S",
     "seconds a worker's claim lasts unrenewed; a crashed worker's submission is taken over after it (default: 30)"),
    ("--poll", positive_float, 1.0, "S", "seconds between looks at an empty queue (default: 1)"),
    ("--max-attempts", positive_int, 3, "N",
     "scoring attempts that never finish (crashes) before a submission is rejected (default: 3)"),
    ("--score-workers", positive_int, 1, "N",
     "processes scoring the units of one submission, as mixedparts-eval --workers (default: 1)"),
    ("--scorer-memory-mb", non_negative_int, 8192, "MB",
     "address-space limit of each scorer process; a file that needs more is rejected as too large (default: "
     "8192; 0: no limit; the loaded scorer itself maps about 2600)"),
    ("--torch-threads", non_negative_int, 1, "N",
     "torch threads of each scorer's text model; 0: torch's default (default: 1, the fastest for the short "
     "labels it embeds; run more workers for throughput)"),
)


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help=DB_HELP)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kind, default, metavar, text in WORKER_OPTIONS:
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)


def worker_command_line(args: argparse.Namespace) -> list[str]:
    """The worker options of ``args`` as command-line arguments, for the workers ``serve`` starts."""
    line = []
    for flag, *_ in WORKER_OPTIONS:
        line += [flag, str(getattr(args, flag[2:].replace("-", "_")))]
    return line


def worker_settings(args: argparse.Namespace):
    from leaderboard.worker import WorkerSettings

    return WorkerSettings(scoring_timeout=args.scoring_timeout, lease=args.lease, poll=args.poll,
                          max_attempts=args.max_attempts, score_workers=args.score_workers,
                          torch_threads=args.torch_threads or None, memory_mb=args.scorer_memory_mb or None)


def check_ground_truth(path: str) -> dict:
    """The ground truth's fingerprint and sample count, after reading it in full once, so that a bad file
    stops the command now rather than every scoring later."""
    from leaderboard.scoring import gt_fingerprint
    from mixedparts.metrics.ground_truth import read_ground_truth

    info = gt_fingerprint(path)
    truth = read_ground_truth(path)
    info["samples"] = len(truth)
    return info


def team_token(args: argparse.Namespace) -> str:
    from leaderboard.client import TOKEN_ENV

    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise MixedPartsError(f"no token: pass --token or set {TOKEN_ENV}")
    return token
