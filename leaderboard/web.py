"""The leaderboard web application (FastAPI): pages, the plot, the JSON API and the upload route.

The application is built from an :class:`AppConfig` that holds the ground truth's *fingerprint*
(split, sample count, SHA-256) and never its path: no route can return the ground-truth file,
because the web process does not know where it is. There is no static-file route either; the
script and stylesheet are constants.

Routes:

- ``GET /`` — the table (``?task=mean|common_object|common_parts|unique_parts&sort=mIoU&order=desc&paper=0``;
  ``&all=1``: every submission, not only each team's best per model), and the upload form
- ``GET /submissions/{id}`` — one scored submission's per-task scores, variant and counts
- ``GET /plot.svg`` — the top entries of a view as a bar chart
- ``GET /api/table`` — the table as JSON (same parameters)
- ``GET /api/health`` — ground-truth fingerprint, limits, queue sizes; 503 unless the database takes writes
- ``POST /api/submissions`` — upload (bearer token; multipart fields ``file``, ``model``, ``url``)
- ``GET /api/submissions`` (``?limit=&before=``, paged), ``GET /api/submissions/{id}`` — the team's
  submissions, their status and the team's remaining quota

An upload is authorised from its headers alone (token, team, quota) before a byte of its body is
read: a request that will be refused costs the server nothing but its headers. Every error answer
carries its reason, as JSON (``{"detail": ...}``; an HTML page for a browser on a page route), with
the same security headers as every other answer, 500s included.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from leaderboard import pages, significance, store
from leaderboard.db import Database, DatabaseGone
from leaderboard.plot import plot_svg
from leaderboard.store import StoreError
from leaderboard.table import DEFAULT_SORT, build_table

UPLOAD_PATH = "/api/submissions"
FORM_OVERHEAD = 64 * 1024
OTHER_BODY_LIMIT = 64 * 1024
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


@dataclass
class AppConfig:
    db_url: str
    ground_truth: dict = field(default_factory=dict)
    """{"split", "samples", "sha256"} of the hidden ground truth; never its path."""
    max_upload_bytes: int = 200 * 1024 * 1024
    daily_quota: int | None = 5
    title: str = "MixedParts leaderboard"


class _BodyLimit:
    """Refuse request bodies over the limit before and while they stream in (413), for every route."""

    def __init__(self, app, upload_limit: int):
        self.app = app
        self.upload_limit = upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit + FORM_OVERHEAD if scope["path"] == UPLOAD_PATH else OTHER_BODY_LIMIT
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_large = int(length) > limit
            except ValueError:
                too_large = True
            if too_large:
                return await _send_json(send, 413, {"detail": f"the request body is larger than the limit of "
                                                              f"{limit:,} bytes"})
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"the request body is larger than the limit of {limit:,} bytes")
            return message

        return await self.app(scope, limited_receive, send)


class _Guard:
    """The outermost layer of our own: security headers on every answer, and an unexpected exception
    answered as a JSON 500 with those headers (Starlette's own 500 is plain text, outside all middleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode("latin-1").lower()
                           not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            return await self.app(scope, receive, with_headers)
        except Exception:  # noqa: BLE001 - logged; the client gets a reason, not a traceback
            traceback.print_exc(file=sys.stderr)
            if not started:
                await _send_json(with_headers, 500, {"detail": "internal server error (logged on the server)"})


async def _send_json(send, status: int, content: dict):
    body = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def create_app(config: AppConfig, db: Database | None = None) -> FastAPI:
    db = db or Database(config.db_url).open()
    app = FastAPI(title=config.title, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.db = db
    app.state.config = config

    def wants_html(request: Request) -> bool:
        """A browser on a page route gets an HTML error page; everyone else, JSON."""
        page = not request.url.path.startswith(("/api/", "/static/")) and request.url.path != "/plot.svg"
        return page and "text/html" in request.headers.get("accept", "")

    def error_response(request: Request, status: int, detail: str, headers: dict | None = None):
        if wants_html(request):
            return HTMLResponse(pages.error_page(status, detail, config.title), status, headers=headers)
        return JSONResponse({"detail": detail}, status, headers=headers)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError):
        return error_response(request, error.status, str(error), error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        detail = error.detail if isinstance(error.detail, str) else "error"
        if error.status_code == 404:
            detail = "not found"
        return error_response(request, error.status_code, detail, getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item.get("loc", ())[1:]) or "request"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return error_response(request, 400, "; ".join(problems) or "invalid request")

    @app.exception_handler(DatabaseGone)
    async def database_gone(request: Request, error: DatabaseGone):
        print(f"error: {error}", file=sys.stderr, flush=True)  # the path is for the operator, not the public
        return error_response(request, 503, "the leaderboard's database disappeared while in use; nothing was "
                                            "recorded (the operator has been told)")

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError):
        reason = str(getattr(error, "orig", None) or error).splitlines()[0][:300]
        print(f"database error: {reason}", file=sys.stderr, flush=True)
        return error_response(request, 503, f"the leaderboard's database cannot be used right now ({reason}); "
                                            f"nothing was recorded, try again later", {"Retry-After": "30"})

    def view(task: str, sort: str, order: str, paper: int, every: int = 0) -> dict:
        table = build_table(store.scored_rows(db), task, sort, order, include_paper=bool(paper),
                            ground_truth=config.ground_truth, best_per_model=not every)
        return significance.mark(db, table)

    # ---------------------------------------------------------------- pages

    @app.get("/", response_class=HTMLResponse)
    def index(task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc", paper: int = 1,
              all: int = 0):  # noqa: A002 - the query parameter's name
        table = view(task, sort, order, paper, all)
        return HTMLResponse(pages.table_page(table, config.title, config.ground_truth, bool(paper),
                                             max_upload_bytes=config.max_upload_bytes))

    @app.get("/submissions/{submission_id}", response_class=HTMLResponse)
    def submission_page(submission_id: int):
        submission = store.submission_status(db, submission_id)
        if submission["status"] != store.SCORED or submission["hidden"]:
            raise StoreError(f"no scored submission {submission_id}", 404)
        return HTMLResponse(pages.submission_page(submission, config.title))

    @app.get("/plot.svg")
    def plot(task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc", paper: int = 1, top: int = 6,
             all: int = 0):  # noqa: A002
        table = view(task, sort, order, paper, all)
        return Response(plot_svg(table, max(1, min(top, 8))), media_type="image/svg+xml",
                        headers={"cache-control": "no-cache"})

    @app.get("/static/leaderboard.js")
    def script():
        return Response(pages.JS, media_type="text/javascript")

    @app.get("/static/leaderboard.css")
    def stylesheet():
        return Response(pages.CSS, media_type="text/css")

    # ---------------------------------------------------------------- JSON API

    @app.get("/api/health")
    def health():
        body = {"status": "ok", "ground_truth": config.ground_truth,
                "limits": {"max_upload_bytes": config.max_upload_bytes, "daily_quota": config.daily_quota}}
        try:
            db.check_writable()  # a board that cannot record an upload is not healthy, whatever it can still show
        except DatabaseGone as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return JSONResponse({**body, "status": "unavailable", "detail": "the database disappeared while in use"},
                                503)
        except DBAPIError as error:
            reason = str(error.orig or error).splitlines()[0][:300]
            return JSONResponse({**body, "status": "unavailable", "detail": f"the database cannot be written "
                                 f"({reason})"}, 503)
        return {**body, "queue": store.queue_counts(db)}

    @app.get("/api/table")
    def api_table(task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc", paper: int = 1,
                  all: int = 0):  # noqa: A002
        return view(task, sort, order, paper, all)

    def authorize_upload(authorization: str | None) -> store.TeamRef:
        """Token, team and quota, from the headers alone: a refused upload's body is never read."""
        team = store.authenticate(db, _bearer(authorization))
        quota = store.quota_status(db, team, config.daily_quota)
        if quota["remaining"] == 0:
            raise store.quota_error(team, quota)
        return team

    @app.post(UPLOAD_PATH, status_code=202)
    async def upload(request: Request):
        team = await run_in_threadpool(authorize_upload, request.headers.get("authorization"))
        form = await request.form(max_files=1, max_fields=8, max_part_size=FORM_OVERHEAD)
        try:
            file, model, url = form.get("file"), form.get("model"), form.get("url")
            if not isinstance(file, UploadFile):
                raise StoreError("file: a predictions file is required (multipart field 'file')")
            if not isinstance(model, str):
                raise StoreError("model: the model name is required (multipart field 'model')")
            if url is not None and not isinstance(url, str):
                raise StoreError("url: must be text")
            store.check_model_name(model)
            store.check_url(url)

            def receive_and_record():
                def chunks():
                    while True:
                        chunk = file.file.read(1 << 20)
                        if not chunk:
                            return
                        yield chunk

                received = store.Upload.from_chunks(file.filename, chunks(), config.max_upload_bytes)
                return store.create_submission(db, team, model, url, received, daily_quota=config.daily_quota,
                                               client_key=request.headers.get("idempotency-key"))

            submission_id, created = await run_in_threadpool(receive_and_record)
        finally:
            await form.close()
        status = await run_in_threadpool(store.submission_status, db, submission_id, team)
        quota = await run_in_threadpool(store.quota_status, db, team, config.daily_quota)
        return JSONResponse({**status, "created": created, "status_url": f"{UPLOAD_PATH}/{submission_id}",
                             "page_url": f"/submissions/{submission_id}", "quota": quota}, 202 if created else 200)

    @app.get(UPLOAD_PATH)
    def my_submissions(authorization: str | None = Header(None),
                       limit: int = Query(100, ge=1, le=store.PAGE_MAX),
                       before: int | None = Query(None, ge=1)):
        team = store.authenticate(db, _bearer(authorization))
        page = store.team_submissions(db, team, limit=limit, before=before)
        nxt = f"{UPLOAD_PATH}?limit={limit}&before={page[-1]['id']}" if len(page) == limit else None
        return {"team": team.name, "quota": store.quota_status(db, team, config.daily_quota),
                "total": store.team_submission_count(db, team), "submissions": page, "next": nxt}

    @app.get(UPLOAD_PATH + "/{submission_id}")
    def submission_status(submission_id: int, authorization: str | None = Header(None)):
        team = store.authenticate(db, _bearer(authorization))
        return store.submission_status(db, submission_id, team)

    app.add_middleware(_BodyLimit, upload_limit=config.max_upload_bytes)
    app.add_middleware(_Guard)
    return app
