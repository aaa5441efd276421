"""Leaderboard: submissions scored on hidden ground truth, with exactly mixedparts-eval's code and defaults.

- :mod:`leaderboard.web` — the FastAPI application (table, per-task views, plot, JSON API, uploads)
- :mod:`leaderboard.worker` — the scoring worker; :mod:`leaderboard.scoring` — one file's score
- :mod:`leaderboard.store` — the database operations (SQLAlchemy; SQLite or PostgreSQL)
- :mod:`leaderboard.cli` — ``mixedparts-leaderboard serve | worker | admin | submit | status | table``, one
  module per subcommand in :mod:`leaderboard.commands`; :mod:`leaderboard.supervisor` keeps serve's workers running
"""
