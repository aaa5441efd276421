"""The one error type baselines raise for problems a user can fix (missing package, bad input file)."""

from __future__ import annotations

from mixedparts.errors import MixedPartsError


class BaselineError(MixedPartsError):
    """A baseline cannot run: the message says why and what to do (one line, exit code 2, as any input problem)."""
