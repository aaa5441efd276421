"""The one shape of every command line's main (mixedparts.errors.parse_and_run): argparse's exits are
returned, input problems are one ``error:`` line and exit code 2, an interrupt is 130."""

from __future__ import annotations

import argparse

import pytest

from mixedparts.errors import MixedPartsError, parse_and_run


def parser():
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("what", choices=("ok", "bad", "stop"))
    return parser


def act(args):
    if args.what == "bad":
        raise MixedPartsError("that input is wrong")
    if args.what == "stop":
        raise KeyboardInterrupt("run it again to resume")
    print("done")
    return 0


@pytest.mark.parametrize("argv, code, out, err", [
    (["ok"], 0, "done\n", ""),
    (["bad"], 2, "", "error: that input is wrong\n"),
    (["stop"], 130, "", "interrupted: run it again to resume\n"),
    (["--help"], 0, "usage: tool", ""),
])
def test_parse_and_run(argv, code, out, err, capsys):
    assert parse_and_run(parser(), argv, act) == code
    captured = capsys.readouterr()
    assert captured.out.startswith(out) and captured.err == err


def test_a_usage_error_is_argparses_own(capsys):
    assert parse_and_run(parser(), ["maybe"], act) == 2
    assert "tool: error: argument what: invalid choice" in capsys.readouterr().err


def test_the_error_line_can_name_the_subcommand(capsys):
    assert parse_and_run(parser(), ["bad"], act, prog=lambda args: f"tool {args.what}") == 2
    assert capsys.readouterr().err == "tool bad: error: that input is wrong\n"


def test_a_baseline_error_is_one_line_naming_the_system(tmp_path, capsys):
    from baselines.cli import main

    assert main(["oracle", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixedparts-baseline oracle: error: ") and err.count("\n") == 1
    assert not (tmp_path / "p.json").exists()
