"""The ``mixedparts`` command: one entry point, one module per subcommand in :mod:`mixedparts.commands`.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``, and
imports its heavy dependencies inside ``run`` so that ``mixedparts --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mixedparts import __version__
from mixedparts.errors import run_guarded

# subcommand -> module; the order is the order of ``mixedparts --help``
COMMANDS = {
    "demo": "mixedparts.commands.demo",
    "synth": "mixedparts.commands.synth",
    "inspect": "mixedparts.commands.inspect",
    "build": "mixedparts.commands.build",
    "import-calico": "mixedparts.commands.import_calico",
    "show": "mixedparts.commands.show",
    "stats": "mixedparts.commands.stats",
    "export-coco": "mixedparts.commands.export_coco",
    "export-gcg": "mixedparts.commands.export_gcg",
    "push": "mixedparts.commands.push",
    "export-gt": "mixedparts.commands.export_gt",
}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where it informs: not to flags (a --no-x flag's default True reads as
    if it were on), not to options without a default, and not where the help already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (isinstance(action.default, bool) or action.default in (None, [], "") or "default" in text.lower()
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixedparts",
        description="MixedParts: part-focused semantic co-segmentation — synthetic sources, readers for "
        "PACO-LVIS / PartImageNet / ADE20K-Part-234, dataset building and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"mixedparts {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP,
                                    formatter_class=DefaultsHelpFormatter)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return run_guarded(args._run, args)


def eval_main(argv: list[str] | None = None) -> int:
    """``mixedparts-eval``: see :mod:`mixedparts.metrics.cli`."""
    from mixedparts.metrics.cli import main as metrics_main

    return metrics_main(argv)


if __name__ == "__main__":
    sys.exit(main())
