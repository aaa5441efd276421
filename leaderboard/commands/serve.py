"""``mixedparts-leaderboard serve``: the web application, with its scoring workers beside it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from leaderboard.commands.common import (add_db_argument, add_worker_arguments, check_ground_truth,
                                         worker_command_line)
from mixedparts.argtypes import non_negative_int, positive_float

HELP = "run the web application and its scoring workers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="FILE", help="the hidden ground-truth file (mixedparts-gt/1, "
                        "written by `mixedparts export-gt`); never served")
    add_db_argument(parser)
    parser.add_argument("--create", action="store_true",
                        help="create the database if it does not exist (default: refuse, as a mistyped --db would "
                        "otherwise start an empty board)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--workers", type=non_negative_int, default=1,
                        help="scoring worker processes to run beside the server (default: 1; 0: run `worker` "
                        "yourself)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=200,
                        help="largest predictions file accepted, in MiB (default: 200)")
    parser.add_argument("--daily-quota", type=non_negative_int, default=5,
                        help="submissions per team per UTC day, rejected ones included (default: 5; 0: no "
                        "limit); a team's own quota (admin set-quota) overrides it")
    parser.add_argument("--title", default="MixedParts leaderboard",
                        help="the page title (default: MixedParts leaderboard)")
    add_worker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import signal

    import uvicorn

    from leaderboard.db import DB_ENV, Database, redacted
    from leaderboard.supervisor import WorkerSupervisor
    from leaderboard.web import AppConfig, create_app

    gt = str(Path(args.gt).resolve())
    info = check_ground_truth(gt)
    db = Database(args.db).create() if args.create else Database(args.db).open()
    config = AppConfig(db_url=db.url, ground_truth=info, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                       daily_quota=args.daily_quota or None, title=args.title)
    app = create_app(config, db)

    command = [sys.executable, "-m", "leaderboard", "worker", "--gt", gt, "--exit-with-parent",
               *worker_command_line(args)]
    environment = {**os.environ, DB_ENV: db.url}  # the URL (and its password) stays off the command line
    supervisor = WorkerSupervisor(command, environment, args.workers, db)
    supervisor.start()
    print(f"leaderboard on http://{args.host}:{args.port}/ — database {redacted(db.url)}; ground truth: split "
          f"{info['split']!r}, {info['samples']} samples, sha256 {info['sha256'][:16]}; {args.workers} scoring "
          f"worker(s)", file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}, reachable from other machines; put it behind HTTPS",
              file=sys.stderr, flush=True)

    def terminate(*_args):
        raise SystemExit(0)

    # uvicorn stops on SIGTERM, then raises it again: this handler turns that into a clean exit, so the
    # workers are stopped (and hand back what they were scoring) instead of being orphaned.
    signal.signal(signal.SIGTERM, terminate)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    finally:
        supervisor.stop()
        db.dispose()
    return 0
