"""``mixedparts-leaderboard worker``: one scoring worker on the queue (``serve`` starts them for you)."""

from __future__ import annotations

import argparse

from leaderboard.commands.common import add_db_argument, add_worker_arguments, check_ground_truth, worker_settings

HELP = "run one scoring worker (serve starts them for you)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="FILE", help="the hidden ground-truth file")
    add_db_argument(parser)
    parser.add_argument("--once", action="store_true", help="stop when the queue is empty")
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    add_worker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from leaderboard.db import Database
    from leaderboard.worker import Worker

    check_ground_truth(args.gt)
    db = Database(args.db).open()
    worker = Worker(db, args.gt, worker_settings(args))
    if args.exit_with_parent:  # started by `serve`: a server that dies (even by SIGKILL) takes its workers along
        from leaderboard.supervisor import stop_with_parent

        stop_with_parent(worker.stop, worker.stopping)
    worker.run(once=args.once)
    return 0
