"""Every console script answers ``--help`` and usage errors without importing the heavy libraries.

Importing datasets, torch, pandas or transformers costs seconds; a parser must never need them.
Each script runs in a fresh interpreter (nothing imported beforehand), every subcommand's
``--help`` and a usage error in turn, then reports what ``sys.modules`` holds.
"""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("datasets", "torch", "pandas", "transformers", "sentence_transformers")
# Parser factories whose subcommands (and sub-subcommands) are walked; the others have none.
PARSERS = {"mixedparts": "mixedparts.cli:build_parser", "mixedparts-baseline": "baselines.cli:build_parser",
           "mixedparts-leaderboard": "leaderboard.cli:build_parser"}

PROBE = r"""
import argparse, contextlib, importlib, io, json, sys

script, target, factory, heavy = sys.argv[1:5]
module, function = target.split(":")
main = getattr(importlib.import_module(module), function)

def exit_code(argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return main(argv) or 0
        except SystemExit as error:
            return error.code or 0

def paths(parser, prefix):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from paths(sub, prefix + [name])

commands = [[]]
if factory:
    module, function = factory.split(":")
    commands = list(paths(getattr(importlib.import_module(module), function)(), []))
codes = {" ".join(c + ["--help"]): exit_code(c + ["--help"]) for c in commands}
codes["--no-such-option"] = exit_code(["--no-such-option"])
print(json.dumps({"codes": codes, "heavy": [m for m in heavy.split(",") if m in sys.modules]}))
"""


def console_scripts() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_console_script_is_probed():
    assert set(console_scripts()) >= set(PARSERS)
    assert len(console_scripts()) == 7, "a new console script: check its parser here too"


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_help_and_usage_errors_import_no_heavy_library(script):
    result = subprocess.run([sys.executable, "-c", PROBE, script, console_scripts()[script], PARSERS.get(script, ""),
                             ",".join(HEAVY)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"{script}: --help imported {report['heavy']}"
    for argv, code in report["codes"].items():
        assert code == (2 if argv == "--no-such-option" else 0), (script, argv, code)
    assert len(report["codes"]) > (5 if script in PARSERS else 1)


def test_sample_fields_spelled_out_for_speed_match_the_features():
    from mixedparts import schema

    assert schema.SAMPLE_FIELDS == tuple(schema.SAMPLE_FEATURES)
    assert schema.SAMPLE_FEATURES["segments"].feature["mask"] == schema.RLE_FEATURE
