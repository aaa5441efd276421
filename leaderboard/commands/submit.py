"""``mixedparts-leaderboard submit``: upload a predictions file and wait for its score, or score it offline
into a local database (``--local``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderboard.commands.common import check_ground_truth, team_token
from mixedparts.argtypes import positive_float
from mixedparts.errors import MixedPartsError

HELP = "upload a predictions file and wait for its score"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", help="the predictions file (JSON or JSON Lines, mixedparts-predictions/1)")
    parser.add_argument("--model", required=True, help="the model's name, as the table shows it")
    parser.add_argument("--url", help="a link to the paper or code (http or https)")
    parser.add_argument("--server", help="the leaderboard's URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", help="the team token (default: $MIXEDPARTS_LEADERBOARD_TOKEN)")
    parser.add_argument("--wait", type=positive_float, default=3600, metavar="S",
                        help="seconds to wait for the score (default: 3600)")
    parser.add_argument("--no-wait", action="store_true", help="upload and return without waiting")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the local check of the file's format before uploading")
    parser.add_argument("--local", metavar="DB", help="offline: score here and record in this database instead of "
                        "uploading (needs --gt)")
    parser.add_argument("--gt", metavar="FILE", help="with --local: the ground-truth file to score on")
    parser.add_argument("--team", default="local", help="with --local: the team to record the row under")


def run(args: argparse.Namespace) -> int:
    from leaderboard import client, store

    path = Path(args.predictions)
    if args.local:
        return _submit_local(args, path)
    if not args.server:
        raise MixedPartsError("pass --server URL (or --local DB --gt FILE to score offline)")
    token = team_token(args)
    store.check_model_name(args.model)
    store.check_url(args.url)
    if not path.is_file():
        raise MixedPartsError(f"{path}: no such file")
    limits = client.health(args.server).get("limits", {})
    size = path.stat().st_size
    if limits.get("max_upload_bytes") and size > limits["max_upload_bytes"]:
        raise MixedPartsError(f"{path}: {size:,} bytes is over the server's upload limit of "
                              f"{limits['max_upload_bytes']:,} bytes")
    if not args.no_check:
        from mixedparts.predictions import read_predictions

        print(f"checking {path} ...", file=sys.stderr, flush=True)
        read_predictions(path)  # format problems are found here, before they cost a submission
    sent = client.upload(args.server, token, path, args.model, args.url)
    note = "" if sent.get("created", True) else " (already uploaded)"
    print(f"uploaded {path.name} as submission {sent['id']}{note}", file=sys.stderr, flush=True)
    if args.no_wait:
        print(sent["id"])
        return 0
    final = client.wait(args.server, token, sent["id"], timeout=args.wait, progress=client.Progress())
    return _print_outcome(final, args.server.rstrip("/"))


def _print_outcome(final: dict, server: str | None) -> int:
    from leaderboard import client

    if final["status"] == "rejected":
        raise MixedPartsError(f"submission {final['id']} rejected: {final.get('message')}")
    print(f"{final['model']} — team {final['team']}, submission {final['id']}, scored {final.get('finished_at')}")
    print(client.format_scores(final))
    for warning in final.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    if server:
        print(f"page: {server}/submissions/{final['id']}")
    return 0


def _submit_local(args: argparse.Namespace, path: Path) -> int:
    from leaderboard import store
    from leaderboard.db import Database
    from leaderboard.scoring import InProcessScorer
    from leaderboard.worker import Worker

    if not args.gt:
        raise MixedPartsError("--local needs --gt FILE, the ground truth to score on")
    if not path.is_file():
        raise MixedPartsError(f"{path}: no such file")
    check_ground_truth(args.gt)
    db = Database(args.local).create()
    team = store.ensure_team(db, args.team)
    upload = store.Upload.from_bytes(path.name, path.read_bytes())
    submission_id, _ = store.create_submission(db, team, args.model, args.url, upload)
    worker = Worker(db, args.gt, scorer=InProcessScorer(args.gt, workers=None), log=lambda message: None)
    worker.score_one(submission_id)
    return _print_outcome(store.submission_status(db, submission_id), None)
