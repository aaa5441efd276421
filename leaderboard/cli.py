"""``mixedparts-leaderboard``: run the leaderboard server and its workers, manage teams, submit, print the table.

    mixedparts-leaderboard admin --db URL init
    mixedparts-leaderboard serve --gt GT_FILE --db URL [--host 127.0.0.1 --port 8000]
    mixedparts-leaderboard admin --db URL create-team NAME
    mixedparts-leaderboard submit predictions.json --server URL --token T --model NAME [--url URL]
    mixedparts-leaderboard table --server URL [--format markdown|csv|json]
    mixedparts-leaderboard submit predictions.json --local DB --gt GT_FILE --model NAME   (offline)

Bad input (an unreadable ground truth, a rejected submission, a refused upload) prints one
``error:`` line on stderr and exits with code 2, like every ``mixedparts`` command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mixedparts.errors import parse_and_run

DESCRIPTION = """\
The MixedParts leaderboard: submissions scored on a hidden ground truth with exactly the code and
default metric variant of mixedparts-eval. `serve` runs the web application (table, per-task views,
plot, JSON API, authenticated uploads) and its scoring workers on a database (an SQLite file by
default, or any SQLAlchemy URL such as postgresql://user:pass@host/db); `admin` creates team tokens;
`submit` and `table` are the client; `--local DB` scores and records offline, without a server.
A database is made only on request (`admin init`, or `serve --create`): every other command refuses
one that does not exist, so a mistyped --db cannot start an empty board. Operations guide:
docs/leaderboard.md."""

# subcommand -> module (see leaderboard.commands); the order is the order of --help
COMMANDS = {
    "serve": "leaderboard.commands.serve",
    "worker": "leaderboard.commands.worker",
    "admin": "leaderboard.commands.admin",
    "submit": "leaderboard.commands.submit",
    "status": "leaderboard.commands.status",
    "table": "leaderboard.commands.table",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedparts-leaderboard", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.configure(commands.add_parser(name, help=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def run(args: argparse.Namespace) -> int:
        if args.command not in COMMANDS:
            parser.print_help()
            return 2
        return importlib.import_module(COMMANDS[args.command]).run(args)

    return parse_and_run(parser, argv, run)


if __name__ == "__main__":
    sys.exit(main())
