"""Everything the server, the worker and the admin command do to the database.

The life of a submission, and who moves it:

    upload (server) -> queued -> claimed by one worker -> scoring -> scored | rejected

- Claiming is one conditional ``UPDATE ... WHERE status = 'queued' OR (status = 'scoring' AND the
  lease has expired)``: its row count says which worker won, so two workers never score the same
  submission at once, and a submission whose worker died is taken over once its lease runs out.
- A worker renews its lease while it scores; finishing is one conditional ``UPDATE ... WHERE
  status = 'scoring' AND lease_owner = me`` in the same transaction as the ``scored`` event: a
  submission is recorded as scored exactly once, however often it was (re)started.
- The queue is served per team, round robin: the next claim goes to the oldest waiting submission
  of the team whose latest scoring started longest ago (teams never scored first), so a team that
  uploads many (or heavy) files delays its own submissions, not everybody's.
- A worker that stops cleanly hands its submission back (``released``); one that crashes leaves it
  to the lease. After ``max_attempts`` claims that never finished, the submission is rejected rather
  than retried forever (a file that kills the scorer every time).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from leaderboard.db import Database
from leaderboard.models import (MODEL_NAME_MAX, QUEUED, REJECTED, SCORED, SCORING, TEAM_NAME_MAX, URL_MAX, Event,
                                Submission, SubmissionFile, Team, utcnow)
from leaderboard.paper import PAPER_ROWS, PAPER_SOURCE
from mixedparts.errors import MixedPartsError

TOKEN_PREFIX = "mpl_"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Zero-width and other invisible characters: two names that look the same must be the same name.
INVISIBLE_CHARACTERS = re.compile(r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e\u200b-\u200f"
                                  r"\u2060-\u2064\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]")
MAX_ID = 2**31 - 1
"""Ids are 32-bit integer columns (PostgreSQL's ``integer``): a larger one names no submission."""
PAGE_MAX = 500
SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
CLIENT_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class StoreError(MixedPartsError):
    """A request the leaderboard refuses; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


# ---------------------------------------------------------------- teams and tokens


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(value: str, what: str, limit: int) -> str:
    """A display name: stripped, 1..limit characters, no control or bidi-override characters.

    HTML is allowed here and escaped wherever a name is shown."""
    if not isinstance(value, str):
        raise StoreError(f"{what} must be a string")
    value = value.strip()
    if not value:
        raise StoreError(f"{what} must not be empty")
    if len(value) > limit:
        raise StoreError(f"{what} is longer than {limit} characters")
    if CONTROL_CHARACTERS.search(value):
        raise StoreError(f"{what} contains control characters")
    if INVISIBLE_CHARACTERS.search(value):
        raise StoreError(f"{what} contains invisible characters (zero-width spaces, joiners, marks or the like)")
    return value


def name_key(value: str) -> str:
    """What a name looks like, for comparing names: compatibility forms folded, case and spacing ignored."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


RESERVED_MODEL_NAMES = {name_key(row["model"]) for row in PAPER_ROWS}
RESERVED_TEAM_NAMES = {name_key(PAPER_SOURCE)}


def check_model_name(value: str) -> str:
    """A submission's model name; the paper's row names are taken (a submission must not pass for them)."""
    value = check_name(value, "the model name", MODEL_NAME_MAX)
    if name_key(value) in RESERVED_MODEL_NAMES:
        raise StoreError(f"the model name {value!r} is the name of a row reported in the Calico paper; name your "
                         f"entry so that it cannot be taken for that row (e.g. {value + ' (reproduced)'!r})")
    return value


def check_id(submission_id: int) -> int:
    if not 1 <= submission_id <= MAX_ID:
        raise StoreError(f"no submission {submission_id}", 404)
    return submission_id


def check_url(value: str | None) -> str | None:
    """A paper or code link: an absolute http(s) URL, or nothing."""
    from urllib.parse import urlsplit

    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > URL_MAX:
        raise StoreError(f"the URL is longer than {URL_MAX} characters")
    if CONTROL_CHARACTERS.search(value) or any(c.isspace() or c in '"<>`{}|\\^' for c in value):
        raise StoreError("the URL contains spaces, quotes, angle brackets or control characters; percent-encode them")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise StoreError("the URL cannot be parsed") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise StoreError("the URL must start with http:// or https:// and name a host")
    return value


def safe_filename(name: str | None) -> str:
    """The uploaded file's base name reduced to [A-Za-z0-9._-]; only ever displayed, never a path."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = SAFE_FILENAME.sub("_", base).strip("._") or "predictions"
    return base[-100:]


def create_team(db: Database, name: str, daily_quota: int | None = None) -> str:
    """Create a team; return its token (shown once: only its hash is stored)."""
    name = check_name(name, "the team name", TEAM_NAME_MAX)
    if name_key(name) in RESERVED_TEAM_NAMES:
        raise StoreError(f"the team name {name!r} is how the table marks the paper's reported rows", 409)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with db.session() as session:
            session.add(Team(name=name, token_sha256=hash_token(token), daily_quota=daily_quota))
    except IntegrityError:
        raise StoreError(f"a team named {name!r} already exists", 409) from None
    return token


def rotate_token(db: Database, name: str) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        team = _team_by_name(session, name)
        team.token_sha256 = hash_token(token)
        team.active = True
    return token


def set_team_active(db: Database, name: str, active: bool) -> None:
    with db.session() as session:
        _team_by_name(session, name).active = active


def set_team_quota(db: Database, name: str, daily_quota: int | None) -> None:
    with db.session() as session:
        _team_by_name(session, name).daily_quota = daily_quota


def list_teams(db: Database) -> list[dict]:
    with db.read() as session:
        counts = dict(session.execute(select(Submission.team_id, func.count()).group_by(Submission.team_id)).all())
        return [{"name": t.name, "active": t.active, "daily_quota": t.daily_quota,
                 "created_at": t.created_at.isoformat(timespec="seconds"), "submissions": counts.get(t.id, 0)}
                for t in session.scalars(select(Team).order_by(Team.id))]


def _team_by_name(session, name: str) -> Team:
    team = session.scalars(select(Team).where(Team.name == name)).first()
    if team is None:
        raise StoreError(f"no team named {name!r}", 404)
    return team


@dataclass(frozen=True)
class TeamRef:
    id: int
    name: str
    daily_quota: int | None


def authenticate(db: Database, token: str | None) -> TeamRef:
    """The team a bearer token belongs to; 401 for none or an unknown one, 403 for a revoked team."""
    if not token:
        raise StoreError("missing token: send the header 'Authorization: Bearer <team token>'", 401,
                         {"WWW-Authenticate": "Bearer"})
    with db.read() as session:
        team = session.scalars(select(Team).where(Team.token_sha256 == hash_token(token))).first()
        if team is None:
            raise StoreError("invalid token", 401, {"WWW-Authenticate": "Bearer"})
        if not team.active:
            raise StoreError(f"team {team.name!r} is disabled", 403)
        return TeamRef(team.id, team.name, team.daily_quota)


def ensure_team(db: Database, name: str) -> TeamRef:
    """The team ``name``, created (with an unusable token) if missing: for offline ``--local`` records."""
    with db.read() as session:
        team = session.scalars(select(Team).where(Team.name == name)).first()
        if team is not None:
            return TeamRef(team.id, team.name, team.daily_quota)
    try:
        with db.session() as session:
            team = Team(name=check_name(name, "the team name", TEAM_NAME_MAX),
                        token_sha256=hash_token("local:" + secrets.token_hex(16)))
            session.add(team)
            session.flush()
            return TeamRef(team.id, team.name, team.daily_quota)
    except IntegrityError:
        return ensure_team(db, name)


# ---------------------------------------------------------------- uploads


@dataclass
class Upload:
    """An upload read and compressed by the server; built with :meth:`from_chunks`."""

    filename: str
    size: int
    sha256: str
    data: bytes
    encoding: str = "zlib"

    @classmethod
    def from_chunks(cls, filename: str | None, chunks, limit: int) -> Upload:
        digest = hashlib.sha256()
        packer = zlib.compressobj(6)
        parts = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise StoreError(f"the file is larger than the upload limit of {limit:,} bytes", 413)
            digest.update(chunk)
            parts.append(packer.compress(chunk))
        parts.append(packer.flush())
        if size == 0:
            raise StoreError("the file is empty")
        return cls(safe_filename(filename), size, digest.hexdigest(), b"".join(parts))

    @classmethod
    def from_bytes(cls, filename: str | None, data: bytes, limit: int | None = None) -> Upload:
        return cls.from_chunks(filename, [data], limit if limit is not None else len(data))


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def quota_status(db: Database, team: TeamRef, default_quota: int | None, now: datetime | None = None) -> dict:
    """The team's submissions today (UTC) against its quota: ``remaining`` is None when there is no limit."""
    now = now or utcnow()
    quota = team.daily_quota if team.daily_quota is not None else default_quota
    with db.read() as session:
        used = session.scalar(select(func.count()).select_from(Submission).where(
            Submission.team_id == team.id, Submission.created_at >= day_start(now)))
    reset = day_start(now) + timedelta(days=1)
    return {"daily_quota": quota, "used_today": used, "remaining": None if quota is None else max(0, quota - used),
            "resets_at": reset.isoformat(timespec="seconds") + "Z"}


def quota_error(team: TeamRef, quota: dict, now: datetime | None = None) -> StoreError:
    now = now or utcnow()
    reset = day_start(now) + timedelta(days=1)
    return StoreError(f"daily quota reached: team {team.name!r} has made {quota['used_today']} of its "
                      f"{quota['daily_quota']} submissions for {now:%Y-%m-%d} (UTC); the quota resets at 00:00 UTC",
                      429, {"Retry-After": str(max(1, int((reset - now).total_seconds())))})


def create_submission(db: Database, team: TeamRef, model: str, url: str | None, upload: Upload, *,
                      daily_quota: int | None = None, client_key: str | None = None,
                      now: datetime | None = None) -> tuple[int, bool]:
    """Record an upload as a queued submission; return (id, created).

    ``daily_quota`` (the server's default; a team's own quota overrides it) bounds the team's
    submissions per UTC day, every upload counted. A ``client_key`` seen before for this team
    returns the earlier submission with ``created`` False (a retried upload is not a new one).
    """
    model = check_model_name(model)
    url = check_url(url)
    if client_key is not None and not CLIENT_KEY.match(client_key):
        raise StoreError("the idempotency key must be 8 to 64 characters from [A-Za-z0-9_-]")
    if client_key is not None:
        existing = _by_client_key(db, team.id, client_key)
        if existing is not None:
            return existing, False
    now = now or utcnow()
    quota = team.daily_quota if team.daily_quota is not None else daily_quota
    try:
        with db.session() as session:
            # Writing the team row first serializes this team's uploads (row lock in PostgreSQL,
            # the write lock in SQLite), so the count below cannot race another upload.
            session.execute(update(Team).where(Team.id == team.id).values(last_upload_at=now))
            if quota is not None:
                used = session.scalar(select(func.count()).select_from(Submission).where(
                    Submission.team_id == team.id, Submission.created_at >= day_start(now)))
                if used >= quota:
                    raise quota_error(team, {"used_today": used, "daily_quota": quota}, now)
            submission = Submission(team_id=team.id, model=model, url=url, filename=upload.filename,
                                    size=upload.size, sha256=upload.sha256, client_key=client_key, status=QUEUED,
                                    created_at=now, attempts=0)
            session.add(submission)
            session.flush()
            session.add(SubmissionFile(submission_id=submission.id, encoding=upload.encoding, data=upload.data))
            session.add(Event(submission_id=submission.id, event="uploaded", at=now,
                              detail=f"{upload.size} bytes, sha256 {upload.sha256}"))
            return submission.id, True
    except IntegrityError:
        # The same idempotency key raced in twice: the first one won.
        existing = _by_client_key(db, team.id, client_key) if client_key else None
        if existing is None:
            raise
        return existing, False


def _by_client_key(db: Database, team_id: int, client_key: str) -> int | None:
    with db.read() as session:
        return session.scalar(select(Submission.id).where(Submission.team_id == team_id,
                                                          Submission.client_key == client_key))


def read_file(db: Database, submission_id: int) -> bytes:
    check_id(submission_id)
    with db.read() as session:
        stored = session.get(SubmissionFile, submission_id)
        if stored is None:
            raise StoreError(f"submission {submission_id} has no stored file", 404)
        if stored.encoding == "zlib":
            return zlib.decompress(stored.data)
        if stored.encoding == "identity":
            return bytes(stored.data)
        raise StoreError(f"submission {submission_id}: unknown file encoding {stored.encoding!r}", 500)


# ---------------------------------------------------------------- the worker's side


@dataclass(frozen=True)
class Claim:
    id: int
    attempt: int
    filename: str


def _claimable(now: datetime):
    return (Submission.status == QUEUED) | ((Submission.status == SCORING) & (Submission.lease_expires < now))


def _round_robin(session, now: datetime, limit: int = 8) -> list[int]:
    """Claimable ids, one per team: each team's oldest, the team whose latest scoring began longest ago first."""
    waiting = (select(Submission.team_id, func.min(Submission.id).label("first"))
               .where(_claimable(now)).group_by(Submission.team_id).subquery())
    latest = (select(Submission.team_id, func.max(Submission.started_at).label("started"))
              .where(Submission.started_at.is_not(None)).group_by(Submission.team_id).subquery())
    query = (select(waiting.c.first).outerjoin(latest, latest.c.team_id == waiting.c.team_id)
             .order_by(latest.c.started.is_not(None), latest.c.started, waiting.c.first).limit(limit))
    return list(session.scalars(query).all())


def claim(db: Database, worker: str, lease_s: float, submission_id: int | None = None,
          now: datetime | None = None) -> Claim | None:
    """Take the next claimable submission in round-robin order (or ``submission_id``) for ``worker``; None when
    there is none."""
    now = now or utcnow()
    with db.read() as session:
        if submission_id is not None:
            candidates = session.scalars(select(Submission.id).where(_claimable(now),
                                                                     Submission.id == submission_id)).all()
        else:
            candidates = _round_robin(session, now)
    for candidate in candidates:
        with db.session() as session:
            won = session.execute(
                update(Submission).where(Submission.id == candidate, _claimable(now))
                .values(status=SCORING, lease_owner=worker, lease_expires=now + timedelta(seconds=lease_s),
                        attempts=Submission.attempts + 1, started_at=func.coalesce(Submission.started_at, now))
                .execution_options(synchronize_session=False)).rowcount
            if won != 1:
                continue
            row = session.execute(select(Submission.attempts, Submission.filename)
                                  .where(Submission.id == candidate)).one()
            session.add(Event(submission_id=candidate, event="claimed", worker=worker, at=now,
                              detail=f"attempt {row.attempts}"))
            return Claim(candidate, row.attempts, row.filename)
    return None


def _update_own(session, submission_id: int, worker: str, **values) -> bool:
    """Update a submission only while ``worker`` still holds its scoring lease (one atomic statement)."""
    return session.execute(
        update(Submission).where(Submission.id == submission_id, Submission.status == SCORING,
                                 Submission.lease_owner == worker)
        .values(**values).execution_options(synchronize_session=False)).rowcount == 1


def renew(db: Database, submission_id: int, worker: str, lease_s: float) -> bool:
    """Extend ``worker``'s lease; False if it has lost the submission (its lease ran out and another took it)."""
    now = utcnow()
    with db.session() as session:
        return _update_own(session, submission_id, worker, lease_expires=now + timedelta(seconds=lease_s))


def finish(db: Database, submission_id: int, worker: str, outcome: dict, gt_sha256: str | None = None) -> bool:
    """Record the outcome (``{"status": "scored", "scores", "variant", "result"}`` or ``{"status":
    "rejected", "message"}``) if ``worker`` still holds the submission; False if it does not."""
    now = utcnow()
    status = outcome["status"]
    if status not in (SCORED, REJECTED):
        raise ValueError(f"cannot finish with status {status!r}")
    values = dict(status=status, message=outcome.get("message"), finished_at=now, lease_owner=None,
                  lease_expires=None)
    if status == SCORED:
        values.update(scores=outcome["scores"], variant=outcome["variant"], result=outcome["result"],
                      gt_sha256=gt_sha256)
    with db.session() as session:
        done = _update_own(session, submission_id, worker, **values)
        if done:
            session.add(Event(submission_id=submission_id, event=status, worker=worker, at=now,
                              detail=None if status == SCORED else (outcome.get("message") or "")[:2000]))
        return done


def release(db: Database, submission_id: int, worker: str, reason: str, count_attempt: bool = False) -> bool:
    """Hand a submission back to the queue (a clean stop, or a scorer that died under it)."""
    values = dict(status=QUEUED, lease_owner=None, lease_expires=None)
    if not count_attempt:
        values["attempts"] = Submission.attempts - 1
    with db.session() as session:
        done = _update_own(session, submission_id, worker, **values)
        if done:
            session.add(Event(submission_id=submission_id, event="released", worker=worker, detail=reason))
        return done


def record_lost(db: Database, submission_id: int, worker: str, detail: str) -> None:
    with db.session() as session:
        session.add(Event(submission_id=submission_id, event="lost", worker=worker, detail=detail))


# ---------------------------------------------------------------- reading


def submission_status(db: Database, submission_id: int, team: TeamRef | None = None) -> dict:
    """A submission as the API shows it; with ``team``, only that team's submissions are found."""
    check_id(submission_id)
    with db.read() as session:
        row = session.execute(select(Submission, Team.name).join(Team).where(Submission.id == submission_id)).first()
        if row is None or (team is not None and row.Submission.team_id != team.id):
            raise StoreError(f"no submission {submission_id}" + (" for this team" if team else ""), 404)
        position = None
        if row.Submission.status == QUEUED:
            position = session.scalar(select(func.count()).select_from(Submission).where(
                Submission.status == QUEUED, Submission.id < submission_id)) + 1
        return submission_dict(row.Submission, row.name, queue_position=position)


def team_submissions(db: Database, team: TeamRef, limit: int = 100, before: int | None = None) -> list[dict]:
    """The team's submissions, newest first: ``limit`` of them with ids below ``before`` (the paging cursor)."""
    with db.read() as session:
        query = select(Submission).where(Submission.team_id == team.id)
        if before is not None:
            query = query.where(Submission.id < min(before, MAX_ID + 1))
        rows = session.scalars(query.order_by(Submission.id.desc()).limit(limit)).all()
        return [submission_dict(s, team.name) for s in rows]


def team_submission_count(db: Database, team: TeamRef) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Submission).where(Submission.team_id == team.id))


def submission_dict(s: Submission, team_name: str, queue_position: int | None = None) -> dict:
    def iso(value):
        return value.isoformat(timespec="seconds") + "Z" if value else None

    out = {"id": s.id, "team": team_name, "model": s.model, "url": s.url, "filename": s.filename, "size": s.size,
           "sha256": s.sha256, "status": s.status, "message": s.message, "created_at": iso(s.created_at),
           "started_at": iso(s.started_at), "finished_at": iso(s.finished_at), "attempts": s.attempts,
           "hidden": s.hidden, "scores": s.scores, "variant": s.variant, "gt_sha256": s.gt_sha256}
    if queue_position is not None:
        out["queue_position"] = queue_position
    if s.result:
        out["counts"] = s.result.get("counts")
        out["warnings"] = s.result.get("warnings")
        out["text_models"] = s.result.get("text_models")
        out["report"] = s.result.get("report")
    return out


def scored_rows(db: Database) -> list[dict]:
    """Every scored, visible submission, as table rows (see :mod:`leaderboard.table`)."""
    with db.read() as session:
        rows = session.execute(select(Submission, Team.name).join(Team)
                               .where(Submission.status == SCORED, Submission.hidden.is_(False))
                               .order_by(Submission.id)).all()
        return [{"id": s.id, "team": name, "model": s.model, "url": s.url, "scores": s.scores or {},
                 "variant": s.variant or {}, "date": s.finished_at.strftime("%Y-%m-%d") if s.finished_at else "",
                 "gt_sha256": s.gt_sha256, "sha256": s.sha256} for s, name in rows]


def events(db: Database, submission_id: int | None = None) -> list[dict]:
    if submission_id is not None:
        check_id(submission_id)
    with db.read() as session:
        query = select(Event).order_by(Event.id)
        if submission_id is not None:
            query = query.where(Event.submission_id == submission_id)
        return [{"submission_id": e.submission_id, "event": e.event, "worker": e.worker, "detail": e.detail}
                for e in session.scalars(query)]


def queue_counts(db: Database) -> dict:
    with db.read() as session:
        counts = dict(session.execute(select(Submission.status, func.count()).group_by(Submission.status)).all())
    return {status: counts.get(status, 0) for status in (QUEUED, SCORING, SCORED, REJECTED)}


def set_hidden(db: Database, submission_id: int, hidden: bool) -> None:
    check_id(submission_id)
    with db.session() as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            raise StoreError(f"no submission {submission_id}", 404)
        submission.hidden = hidden
