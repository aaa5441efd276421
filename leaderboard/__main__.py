"""``python -m leaderboard``: the same as ``mixedparts-leaderboard``."""

import sys

from leaderboard.cli import main

sys.exit(main())
