"""``mixedparts-leaderboard status``: a submission's status, from the server, as JSON."""

from __future__ import annotations

import argparse

from leaderboard.commands.common import team_token

HELP = "print a submission's status"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission_id", type=int)
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", help="the team token (default: $MIXEDPARTS_LEADERBOARD_TOKEN)")


def run(args: argparse.Namespace) -> int:
    import json

    from leaderboard import client

    print(json.dumps(client.status(args.server, team_token(args), args.submission_id), indent=1))
    return 0
