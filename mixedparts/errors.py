"""Errors the command line turns into one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


class MixedPartsError(Exception):
    """A problem with the user's input, reported without a traceback."""


class SourceError(MixedPartsError):
    """Bad or inconsistent data in a source release: names the file and the record."""

    def __init__(self, path: str | Path, message: str, record: str | None = None):
        self.path = str(path)
        self.record = record
        self.message = message
        where = f"{self.path}: {record}" if record else self.path
        super().__init__(f"{where}: {message}")


def run_guarded(function, args, prog: str | None = None) -> int:
    """Run a command; input problems become one line on stderr and exit code 2.

    Here, beside the error model, so that every command line (mixedparts, mixedparts-eval, the model's,
    the baselines', the leaderboard's) imports it without importing another command line. ``prog``, when
    given, names the command at the start of that line.
    """
    try:
        return int(function(args) or 0)
    except MixedPartsError as error:
        print(f"{prog}: error: {error}" if prog else f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `mixedparts inspect --json | head`: the reader left, nothing is wrong here
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the final flush at exit does not raise again
        return 1
    except KeyboardInterrupt as interrupt:  # a command may say how to go on, e.g. that a rerun resumes
        print(f"interrupted{f': {interrupt}' if str(interrupt) else ''}", file=sys.stderr)
        return 130


def parse_and_run(parser: argparse.ArgumentParser, argv: list[str] | None, function,
                  prog: Callable[[argparse.Namespace], str] | None = None) -> int:
    """The ``main`` of a command line: parse ``argv``, then :func:`run_guarded` ``function`` on the result.

    Returns instead of exiting, so that tests and wrappers get the exit code: argparse's own exits
    (``--help``, a usage error it has already reported) become that code. ``prog(args)``, when given,
    names the command in the error line (a subcommand known only once parsed).
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    return run_guarded(function, args, prog(args) if prog else None)
