"""The one error type baselines raise for problems a user can fix (missing package, bad input file)."""

from __future__ import annotations


class BaselineError(Exception):
    """A baseline cannot run: the message says why and what to do."""
