"""The command line as a user meets it: help everywhere, the README's commands, the demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mixedparts.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [[], *[[name] for name in COMMANDS]])
def test_every_command_explains_its_options(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*command, "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mixedparts") and "options:" in out


def test_eval_has_help():
    out = subprocess.run([sys.executable, "-c", "from mixedparts.cli import eval_main; eval_main(['--help'])"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: mixedparts-eval" in out and "--recall-text-gate" in out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(block) == 2, "the Quick start is exactly two commands"
    install, tests = block[1].split(" && ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci and tests in ci
    assert block[0] == "pip install -e . && mixedparts demo"


@pytest.mark.slow
def test_demo_scores_the_oracle_100_everywhere(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("MixedParts evaluation of") == 2
    oracle = json.loads((tmp_path / "demo" / "eval-oracle.json").read_text())
    for task, row in oracle["scores"].items():
        for metric in ("AP50", "mIoU", "Recall", "SS", "S-IoU"):
            assert row[metric] == pytest.approx(100.0), (task, metric)
    box = json.loads((tmp_path / "demo" / "eval-object-box.json").read_text())
    assert 0 < box["scores"]["mean"]["mIoU"] < 100
    with Image.open(tmp_path / "demo" / "sample.png") as picture:
        assert picture.width > 400 and picture.height > 500
