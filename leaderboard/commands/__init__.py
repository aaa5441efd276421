"""The subcommands of ``mixedparts-leaderboard``, one module each (:mod:`leaderboard.cli` builds the parser).

Each module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``, and imports the
server, database and scoring code inside ``run``, so that ``--help`` stays instant; the options and
checks that several of them share live in :mod:`leaderboard.commands.common`.
"""
