"""The leaderboard's tables (SQLAlchemy 2 declarative models).

Every table name starts with ``lb_`` so the leaderboard can share a database with other things.
Times are naive UTC datetimes (SQLite has no time zones; PostgreSQL stores them as ``timestamp``).
The uploaded file lives in its own table so that listing submissions never loads it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leaderboard.status import QUEUED, REJECTED, SCORED, SCORING, STATUSES  # noqa: F401  (the models' vocabulary)
MODEL_NAME_MAX = 100
URL_MAX = 500
TEAM_NAME_MAX = 100


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what every column stores)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "lb_teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(TEAM_NAME_MAX), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    """Only the token's SHA-256 is stored; the token itself is shown once, when it is created."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    daily_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Overrides the server's submissions-per-day limit for this team when set."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_upload_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    """Written first in every upload transaction: it serializes a team's uploads (the quota check)."""


class Submission(Base):
    __tablename__ = "lb_submissions"
    __table_args__ = (UniqueConstraint("team_id", "client_key", name="uq_lb_submission_client_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("lb_teams.id"), index=True)
    model: Mapped[str] = mapped_column(String(MODEL_NAME_MAX))
    url: Mapped[str | None] = mapped_column(String(URL_MAX), nullable=True)
    filename: Mapped[str] = mapped_column(String(120))
    """The uploaded file's name reduced to a safe display name; never used as a path."""
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    client_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The client's idempotency key: a retried upload with the same key returns the first submission."""
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    scores: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    """{task or "mean": {metric: percent or None, "samples": n, "units": n}} as mixedparts-eval computes."""
    variant: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    """EvalResult.to_dict() without server paths: counts, text models, versions, warnings, secondary scores."""
    gt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SubmissionFile(Base):
    __tablename__ = "lb_submission_files"

    submission_id: Mapped[int] = mapped_column(ForeignKey("lb_submissions.id"), primary_key=True)
    encoding: Mapped[str] = mapped_column(String(16), default="zlib")
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Event(Base):
    """What happened to a submission, in order: an audit trail (and what the exactly-once tests read)."""

    __tablename__ = "lb_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("lb_submissions.id"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    """uploaded · claimed · scored · rejected · released · lost"""
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
