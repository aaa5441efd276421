"""The leaderboard web application (FastAPI): pages, the plot, the JSON API and the upload route.

The application is built from an :class:`AppConfig` that holds the ground truth's *fingerprint*
(split, sample count, SHA-256) and never its path: no route can return the ground-truth file,
because the web process does not know where it is. There is no static-file route either; the
script and stylesheet are constants.

Routes:

- ``GET /`` — the table (``?task=mean|common_object|common_parts|unique_parts&sort=mIoU&order=desc&paper=0``)
- ``GET /submissions/{id}`` — one scored submission's per-task scores, variant and counts
- ``GET /plot.svg`` — the top entries of a view as a bar chart
- ``GET /api/table`` — the table as JSON (same parameters)
- ``GET /api/health`` — ground-truth fingerprint, limits, queue sizes
- ``POST /api/submissions`` — upload (bearer token; multipart fields ``file``, ``model``, ``url``)
- ``GET /api/submissions``, ``GET /api/submissions/{id}`` — the team's submissions and their status
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from leaderboard import pages, significance, store
from leaderboard.db import Database
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


class _SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode("latin-1").lower()
                           not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, with_headers)


async def _send_json(send, status: int, content: dict):
    import json

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
    db = db or Database(config.db_url).create()
    app = FastAPI(title=config.title, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.db = db
    app.state.config = config

    def wants_html(request: Request) -> bool:
        return not request.url.path.startswith("/api/") and request.url.path != "/plot.svg"

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError):
        if wants_html(request):
            return HTMLResponse(pages.error_page(error.status, str(error), config.title), error.status,
                                headers=error.headers)
        return JSONResponse({"detail": str(error)}, error.status, headers=error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        detail = error.detail if isinstance(error.detail, str) else "error"
        if error.status_code == 404:
            detail = "not found"
        if wants_html(request):
            return HTMLResponse(pages.error_page(error.status_code, detail, config.title), error.status_code)
        return JSONResponse({"detail": detail}, error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item.get("loc", ())[1:]) or "request"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, 400)

    def view(task: str, sort: str, order: str, paper: int) -> dict:
        table = build_table(store.scored_rows(db), task, sort, order, include_paper=bool(paper),
                            ground_truth=config.ground_truth)
        return significance.mark(db, table)

    # ---------------------------------------------------------------- pages

    @app.get("/", response_class=HTMLResponse)
    def index(task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc", paper: int = 1):
        table = view(task, sort, order, paper)
        return HTMLResponse(pages.table_page(table, config.title, config.ground_truth, bool(paper)))

    @app.get("/submissions/{submission_id}", response_class=HTMLResponse)
    def submission_page(submission_id: int):
        submission = store.submission_status(db, submission_id)
        if submission["status"] != store.SCORED or submission["hidden"]:
            raise StoreError(f"no scored submission {submission_id}", 404)
        return HTMLResponse(pages.submission_page(submission, config.title))

    @app.get("/plot.svg")
    def plot(task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc", paper: int = 1, top: int = 6):
        table = view(task, sort, order, paper)
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
        return {"status": "ok", "ground_truth": config.ground_truth,
                "limits": {"max_upload_bytes": config.max_upload_bytes, "daily_quota": config.daily_quota},
                "queue": store.queue_counts(db)}

    @app.get("/api/table")
    def api_table(task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc", paper: int = 1):
        return view(task, sort, order, paper)

    @app.post(UPLOAD_PATH, status_code=202)
    def upload(file: UploadFile = File(...), model: str = Form(...), url: str | None = Form(None),
               authorization: str | None = Header(None), idempotency_key: str | None = Header(None)):
        team = store.authenticate(db, _bearer(authorization))
        store.check_name(model, "the model name", store.MODEL_NAME_MAX)
        store.check_url(url)

        def chunks():
            while True:
                chunk = file.file.read(1 << 20)
                if not chunk:
                    return
                yield chunk

        received = store.Upload.from_chunks(file.filename, chunks(), config.max_upload_bytes)
        submission_id, created = store.create_submission(db, team, model, url, received,
                                                         daily_quota=config.daily_quota, client_key=idempotency_key)
        status = store.submission_status(db, submission_id, team)
        return JSONResponse({**status, "created": created, "status_url": f"{UPLOAD_PATH}/{submission_id}",
                             "page_url": f"/submissions/{submission_id}"}, 202 if created else 200)

    @app.get(UPLOAD_PATH)
    def my_submissions(authorization: str | None = Header(None)):
        team = store.authenticate(db, _bearer(authorization))
        return {"team": team.name, "submissions": store.team_submissions(db, team)}

    @app.get(UPLOAD_PATH + "/{submission_id}")
    def submission_status(submission_id: int, authorization: str | None = Header(None)):
        team = store.authenticate(db, _bearer(authorization))
        return store.submission_status(db, submission_id, team)

    app.add_middleware(_BodyLimit, upload_limit=config.max_upload_bytes)
    app.add_middleware(_SecurityHeaders)
    return app
