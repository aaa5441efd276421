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
import os
import sys
from pathlib import Path

from mixedparts.argtypes import non_negative_int, positive_float, positive_int
from mixedparts.errors import run_guarded
from mixedparts.errors import MixedPartsError

DESCRIPTION = """\
The MixedParts leaderboard: submissions scored on a hidden ground truth with exactly the code and
default metric variant of mixedparts-eval. `serve` runs the web application (table, per-task views,
plot, JSON API, authenticated uploads) and its scoring workers on a database (an SQLite file by
default, or any SQLAlchemy URL such as postgresql://user:pass@host/db); `admin` creates team tokens;
`submit` and `table` are the client; `--local DB` scores and records offline, without a server.
A database is made only on request (`admin init`, or `serve --create`): every other command refuses
one that does not exist, so a mistyped --db cannot start an empty board. Operations guide:
docs/leaderboard.md."""


def _db_argument(parser, required_text="the database: an SQLite file path or a SQLAlchemy URL "
                 "(sqlite:///lb.db, postgresql://user:pass@host/db); default $MIXEDPARTS_LEADERBOARD_DB"):
    parser.add_argument("--db", metavar="URL", help=required_text)


def _worker_arguments(parser) -> None:
    parser.add_argument("--scoring-timeout", type=positive_float, default=1800, metavar="S",
                        help="seconds one submission may take to score before it is rejected (default: 1800)")
    parser.add_argument("--lease", type=positive_float, default=30, metavar="S",
                        help="seconds a worker's claim lasts unrenewed; a crashed worker's submission is taken over "
                        "after it (default: 30)")
    parser.add_argument("--poll", type=positive_float, default=1.0, metavar="S",
                        help="seconds between looks at an empty queue (default: 1)")
    parser.add_argument("--max-attempts", type=positive_int, default=3, metavar="N",
                        help="scoring attempts that never finish (crashes) before a submission is rejected "
                        "(default: 3)")
    parser.add_argument("--score-workers", type=positive_int, default=1, metavar="N",
                        help="processes scoring the units of one submission, as mixedparts-eval --workers "
                        "(default: 1)")
    parser.add_argument("--scorer-memory-mb", type=non_negative_int, default=8192, metavar="MB",
                        help="address-space limit of each scorer process; a file that needs more is rejected as "
                        "too large (default: 8192; 0: no limit; the loaded scorer itself maps about 2600)")
    parser.add_argument("--torch-threads", type=non_negative_int, default=1, metavar="N",
                        help="torch threads of each scorer's text model; 0: torch's default (default: 1, the "
                        "fastest for the short labels it embeds; run more workers for throughput)")


def build_parser() -> argparse.ArgumentParser:
    from leaderboard.table import DEFAULT_SORT, FORMATS, SORT_KEYS, TASK_VIEWS

    parser = argparse.ArgumentParser(prog="mixedparts-leaderboard", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web application and its scoring workers")
    serve.add_argument("--gt", required=True, metavar="FILE", help="the hidden ground-truth file (mixedparts-gt/1, "
                       "written by `mixedparts export-gt`); never served")
    _db_argument(serve)
    serve.add_argument("--create", action="store_true",
                       help="create the database if it does not exist (default: refuse, as a mistyped --db would "
                       "otherwise start an empty board)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument("--workers", type=non_negative_int, default=1,
                       help="scoring worker processes to run beside the server (default: 1; 0: run `worker` "
                       "yourself)")
    serve.add_argument("--max-upload-mb", type=positive_float, default=200,
                       help="largest predictions file accepted, in MiB (default: 200)")
    serve.add_argument("--daily-quota", type=non_negative_int, default=5,
                       help="submissions per team per UTC day, rejected ones included (default: 5; 0: no "
                       "limit); a team's own quota (admin set-quota) overrides it")
    serve.add_argument("--title", default="MixedParts leaderboard", help="the page title (default: MixedParts leaderboard)")
    _worker_arguments(serve)

    worker = commands.add_parser("worker", help="run one scoring worker (serve starts them for you)")
    worker.add_argument("--gt", required=True, metavar="FILE", help="the hidden ground-truth file")
    _db_argument(worker)
    worker.add_argument("--once", action="store_true", help="stop when the queue is empty")
    worker.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    _worker_arguments(worker)

    admin = commands.add_parser("admin", help="manage teams, tokens and rows")
    _db_argument(admin)
    actions = admin.add_subparsers(dest="action", metavar="ACTION")
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

    submit = commands.add_parser("submit", help="upload a predictions file and wait for its score")
    submit.add_argument("predictions", help="the predictions file (JSON or JSON Lines, mixedparts-predictions/1)")
    submit.add_argument("--model", required=True, help="the model's name, as the table shows it")
    submit.add_argument("--url", help="a link to the paper or code (http or https)")
    submit.add_argument("--server", help="the leaderboard's URL, e.g. http://127.0.0.1:8000")
    submit.add_argument("--token", help="the team token (default: $MIXEDPARTS_LEADERBOARD_TOKEN)")
    submit.add_argument("--wait", type=positive_float, default=3600, metavar="S",
                        help="seconds to wait for the score (default: 3600)")
    submit.add_argument("--no-wait", action="store_true", help="upload and return without waiting")
    submit.add_argument("--no-check", action="store_true",
                        help="skip the local check of the file's format before uploading")
    submit.add_argument("--local", metavar="DB", help="offline: score here and record in this database instead of "
                        "uploading (needs --gt)")
    submit.add_argument("--gt", metavar="FILE", help="with --local: the ground-truth file to score on")
    submit.add_argument("--team", default="local", help="with --local: the team to record the row under")

    status = commands.add_parser("status", help="print a submission's status")
    status.add_argument("submission_id", type=int)
    status.add_argument("--server", required=True)
    status.add_argument("--token", help="the team token (default: $MIXEDPARTS_LEADERBOARD_TOKEN)")

    table = commands.add_parser("table", help="print the leaderboard table")
    source = table.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", help="the leaderboard's URL")
    source.add_argument("--local", metavar="DB", help="read this database instead of a server")
    table.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default: markdown)")
    table.add_argument("--task", choices=TASK_VIEWS, default="mean",
                       help="the view: the macro mean (default) or one task")
    table.add_argument("--sort", choices=SORT_KEYS, default=DEFAULT_SORT, help=f"sort key (default: {DEFAULT_SORT})")
    table.add_argument("--order", choices=("asc", "desc"), default="desc")
    table.add_argument("--no-paper", action="store_true", help="leave out the paper's reported rows")
    table.add_argument("--all", action="store_true",
                       help="every scored submission (default: each team's best submission per model)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    handlers = {"serve": _serve, "worker": _worker, "admin": _admin, "submit": _submit, "status": _status,
                "table": _table}
    if args.command not in handlers:
        parser.print_help()
        return 2
    if args.command == "admin" and not args.action:
        print("error: admin needs an action: init, create-team, list-teams, disable-team, enable-team, rotate-token, "
              "set-quota, hide, unhide or show (see mixedparts-leaderboard admin --help)", file=sys.stderr)
        return 2
    return run_guarded(handlers[args.command], args)


# ---------------------------------------------------------------- serve and worker


def _worker_settings(args):
    from leaderboard.worker import WorkerSettings

    return WorkerSettings(scoring_timeout=args.scoring_timeout, lease=args.lease, poll=args.poll,
                          max_attempts=args.max_attempts, score_workers=args.score_workers,
                          torch_threads=args.torch_threads or None, memory_mb=args.scorer_memory_mb or None)


def _check_gt(path: str) -> dict:
    from leaderboard.scoring import gt_fingerprint
    from mixedparts.metrics.ground_truth import read_ground_truth

    info = gt_fingerprint(path)
    truth = read_ground_truth(path)  # the full check, once, so that a bad file stops the server now
    info["samples"] = len(truth.rows)
    return info


def _worker(args) -> int:
    from leaderboard.db import Database
    from leaderboard.worker import Worker

    _check_gt(args.gt)
    db = Database(args.db).open()
    worker = Worker(db, args.gt, _worker_settings(args))
    if args.exit_with_parent:  # started by `serve`: a server that dies (even by SIGKILL) takes its workers along
        import threading
        import time

        parent = os.getppid()

        def watch():
            while not worker.stopping.is_set():
                if os.getppid() != parent:
                    worker.stop()
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    worker.run(once=args.once)
    return 0


def _serve(args) -> int:
    import signal
    import subprocess
    import threading
    import time

    import uvicorn

    from leaderboard.db import DB_ENV, Database, redacted
    from leaderboard.web import AppConfig, create_app

    gt = str(Path(args.gt).resolve())
    info = _check_gt(gt)
    db = Database(args.db).create() if args.create else Database(args.db).open()
    config = AppConfig(db_url=db.url, ground_truth=info, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                       daily_quota=args.daily_quota or None, title=args.title)
    app = create_app(config, db)

    command = [sys.executable, "-m", "leaderboard", "worker", "--gt", gt, "--exit-with-parent",
               "--scoring-timeout", str(args.scoring_timeout), "--lease", str(args.lease), "--poll", str(args.poll),
               "--max-attempts", str(args.max_attempts), "--score-workers", str(args.score_workers),
               "--torch-threads", str(args.torch_threads), "--scorer-memory-mb", str(args.scorer_memory_mb)]
    environment = {**os.environ, DB_ENV: db.url}  # the URL (and its password) stays off the command line
    workers: list = [None] * args.workers
    stopping = threading.Event()

    def supervise():
        """Start the workers, and start again any that exits while the server runs; say loudly when the
        database file is gone (uploads are refused with 503 from then on)."""
        from leaderboard.db import DatabaseGone

        told = False
        while not stopping.is_set():
            try:
                db.check_present()
            except DatabaseGone as error:
                if not told:
                    print(f"error: {error}; scoring workers are not restarted", file=sys.stderr, flush=True)
                told = True
            for i, process in enumerate(workers):  # (none with --workers 0)
                if (process is None or process.poll() is not None) and not told:
                    if process is not None:
                        print(f"worker {i} exited with code {process.returncode}; starting it again",
                              file=sys.stderr, flush=True)
                    workers[i] = subprocess.Popen(command, env=environment)
            stopping.wait(2.0)

    supervisor = threading.Thread(target=supervise, daemon=True, name="worker-supervisor")
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
    # workers below are stopped (and hand back what they were scoring) instead of being orphaned.
    signal.signal(signal.SIGTERM, terminate)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    finally:
        stopping.set()
        if supervisor.is_alive():
            supervisor.join(5)
        for process in workers:
            if process is not None and process.poll() is None:
                process.terminate()  # SIGTERM: the worker hands its submission back to the queue
        deadline = time.monotonic() + 15
        for process in workers:
            if process is not None:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
        db.dispose()
    return 0


# ---------------------------------------------------------------- admin


def _admin(args) -> int:
    import json

    from leaderboard import store
    from leaderboard.db import Database

    action = args.action
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


# ---------------------------------------------------------------- client


def _token(args) -> str:
    from leaderboard.client import TOKEN_ENV

    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise MixedPartsError(f"no token: pass --token or set {TOKEN_ENV}")
    return token


def _submit(args) -> int:
    from leaderboard import client, store

    path = Path(args.predictions)
    if args.local:
        return _submit_local(args, path)
    if not args.server:
        raise MixedPartsError("pass --server URL (or --local DB --gt FILE to score offline)")
    token = _token(args)
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


def _submit_local(args, path: Path) -> int:
    from leaderboard import store
    from leaderboard.db import Database
    from leaderboard.scoring import InProcessScorer
    from leaderboard.worker import Worker

    if not args.gt:
        raise MixedPartsError("--local needs --gt FILE, the ground truth to score on")
    if not path.is_file():
        raise MixedPartsError(f"{path}: no such file")
    _check_gt(args.gt)
    db = Database(args.local).create()
    team = store.ensure_team(db, args.team)
    upload = store.Upload.from_bytes(path.name, path.read_bytes())
    submission_id, _ = store.create_submission(db, team, args.model, args.url, upload)
    worker = Worker(db, args.gt, scorer=InProcessScorer(args.gt, workers=None), log=lambda message: None)
    worker.score_one(submission_id)
    return _print_outcome(store.submission_status(db, submission_id), None)


def _status(args) -> int:
    import json

    from leaderboard import client

    print(json.dumps(client.status(args.server, _token(args), args.submission_id), indent=1))
    return 0


def _table(args) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
