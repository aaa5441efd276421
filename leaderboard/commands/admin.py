"""``mixedparts-leaderboard admin``: the database, teams, tokens, quotas and rows."""

from __future__ import annotations

import argparse
import sys

from leaderboard.commands.common import add_db_argument
from mixedparts.argtypes import non_negative_int
from mixedparts.errors import MixedPartsError

HELP = "manage teams, tokens and rows"


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("init", help="create the database and its tables (the other commands refuse a missing one)")
    create = actions.add_parser("create-team", help="create a team and print its token (shown once)")
    create.add_argument("name")
    create.add_argument("--daily-quota", type=non_negative_int, metavar="N",
                        help="this team's submissions per day (default: the server's; 0 blocks its uploads)")
    actions.add_parser("list-teams", help="list the teams")
    for name, text in (("disable-team", "refuse the team's token from now on"),
                       ("enable-team", "accept the team's token again"),
                       ("rotate-token", "replace the team's token with a new one (printed)")):
        actions.add_parser(name, help=text).add_argument("name")
    quota = actions.add_parser("set-quota", help="set a team's daily quota ('default': the server's)")
    quota.add_argument("name")
    quota.add_argument("quota")
    for name, text in (("hide", "take a submission's row off the table"), ("unhide", "put it back")):
        actions.add_parser(name, help=text).add_argument("submission_id", type=int)
    show = actions.add_parser("show", help="print a submission's status and its event log")
    show.add_argument("submission_id", type=int)


def run(args: argparse.Namespace) -> int:
    import json

    from leaderboard import store
    from leaderboard.db import Database

    action = args.action
    if not action:
        print("error: admin needs an action: init, create-team, list-teams, disable-team, enable-team, rotate-token, "
              "set-quota, hide, unhide or show (see mixedparts-leaderboard admin --help)", file=sys.stderr)
        return 2
    if action == "init":
        from leaderboard.db import redacted

        db = Database(args.db)
        existed = db.file is not None and db.file.is_file()
        db.create()
        print(f"{'checked' if existed else 'created'} the leaderboard database {redacted(db.url)}")
        return 0
    db = Database(args.db).open()
    if action == "create-team":
        token = store.create_team(db, args.name, args.daily_quota)
        print(f"created team {args.name!r}; its token (shown once, keep it secret):", file=sys.stderr)
        print(token)
    elif action == "rotate-token":
        token = store.rotate_token(db, args.name)
        print(f"new token for team {args.name!r} (the old one no longer works):", file=sys.stderr)
        print(token)
    elif action == "list-teams":
        teams = store.list_teams(db)
        print(f"{'team':30s} {'active':6s} {'quota':>5s} {'subs':>5s}  created")
        for team in teams:
            quota = "-" if team["daily_quota"] is None else str(team["daily_quota"])
            print(f"{team['name'][:30]:30s} {'yes' if team['active'] else 'no':6s} {quota:>5s} "
                  f"{team['submissions']:>5d}  {team['created_at']}")
    elif action in ("disable-team", "enable-team"):
        store.set_team_active(db, args.name, action == "enable-team")
        print(f"team {args.name!r} {'enabled' if action == 'enable-team' else 'disabled'}")
    elif action == "set-quota":
        if args.quota == "default":
            quota = None
        else:
            try:
                quota = non_negative_int(args.quota)
            except argparse.ArgumentTypeError as error:
                raise MixedPartsError(f"quota: {error}") from None
        store.set_team_quota(db, args.name, quota)
        print(f"team {args.name!r}: daily quota {'the server default' if quota is None else quota}")
    elif action in ("hide", "unhide"):
        store.set_hidden(db, args.submission_id, action == "hide")
        print(f"submission {args.submission_id} {'hidden' if action == 'hide' else 'shown'}")
    elif action == "show":
        status = store.submission_status(db, args.submission_id)
        print(json.dumps({**status, "events": store.events(db, args.submission_id)}, indent=1))
    return 0
