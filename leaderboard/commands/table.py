"""``mixedparts-leaderboard table``: the leaderboard table from a server or a local database."""

from __future__ import annotations

import argparse
import sys

HELP = "print the leaderboard table"


def configure(parser: argparse.ArgumentParser) -> None:
    from leaderboard.table import DEFAULT_SORT, FORMATS, SORT_KEYS, TASK_VIEWS

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", help="the leaderboard's URL")
    source.add_argument("--local", metavar="DB", help="read this database instead of a server")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default: markdown)")
    parser.add_argument("--task", choices=TASK_VIEWS, default="mean",
                        help="the view: the macro mean (default) or one task")
    parser.add_argument("--sort", choices=SORT_KEYS, default=DEFAULT_SORT, help=f"sort key (default: {DEFAULT_SORT})")
    parser.add_argument("--order", choices=("asc", "desc"), default="desc")
    parser.add_argument("--no-paper", action="store_true", help="leave out the paper's reported rows")
    parser.add_argument("--all", action="store_true",
                        help="every scored submission (default: each team's best submission per model)")


def run(args: argparse.Namespace) -> int:
    from leaderboard import client
    from leaderboard.table import build_table, format_table

    if args.server:
        table = client.fetch_table(args.server, args.task, args.sort, args.order, not args.no_paper, args.all)
    else:
        from leaderboard import store
        from leaderboard.db import Database

        db = Database(args.local).open()
        table = build_table(store.scored_rows(db), args.task, args.sort, args.order, not args.no_paper,
                            best_per_model=not args.all)
    sys.stdout.write(format_table(table, args.format))
    return 0
