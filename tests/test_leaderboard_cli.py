"""mixedparts-leaderboard's admin commands, offline mode and bad input, through main([...]); and export-gt."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from leaderboard.cli import main
from leaderboard_helpers import imperfect, make_gt, write_oracle
from metrics_helpers import minilm, write_parquet_dataset  # noqa: F401
from mixedparts.metrics.ground_truth import read_ground_truth
from mixedparts.predictions import write_predictions


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_admin_commands(tmp_path, capsys):
    db = tmp_path / "lb.db"
    code, out, _ = run(["admin", "--db", db, "init"], capsys)
    assert code == 0 and out.startswith("created the leaderboard database")
    code, out, err = run(["admin", "--db", db, "create-team", "vision lab", "--daily-quota", "7"], capsys)
    assert code == 0 and out.strip().startswith("mpl_") and "shown once" in err
    token = out.strip()
    code, out, err = run(["admin", "--db", db, "create-team", "vision lab"], capsys)
    assert code == 2 and err.strip() == "error: a team named 'vision lab' already exists"
    code, out, _ = run(["admin", "--db", db, "list-teams"], capsys)
    assert "vision lab" in out and " 7 " in out and token not in out
    assert run(["admin", "--db", db, "disable-team", "vision lab"], capsys)[0] == 0
    assert "no " in run(["admin", "--db", db, "list-teams"], capsys)[1]
    code, out, _ = run(["admin", "--db", db, "rotate-token", "vision lab"], capsys)
    assert code == 0 and out.strip().startswith("mpl_") and out.strip() != token
    assert run(["admin", "--db", db, "set-quota", "vision lab", "default"], capsys)[0] == 0
    code, _, err = run(["admin", "--db", db, "set-quota", "vision lab", "many"], capsys)
    assert code == 2 and "quota" in err
    code, _, err = run(["admin", "--db", db, "enable-team", "nobody"], capsys)
    assert code == 2 and err.strip() == "error: no team named 'nobody'"
    code, _, err = run(["admin", "--db", db, "hide", "42"], capsys)
    assert code == 2 and "no submission 42" in err
    code, _, err = run(["admin", "--db", db], capsys)
    assert code == 2 and "needs an action" in err
    code, _, err = run(["admin", "create-team", "x"], capsys)
    assert code == 2 and "no database given" in err


def test_offline_mode_scores_records_and_prints_the_table(tmp_path, capsys, minilm):
    gt, rows = make_gt(tmp_path)
    db = tmp_path / "offline.db"
    oracle = write_oracle(tmp_path, rows)
    code, out, err = run(["submit", oracle, "--local", db, "--gt", gt, "--model", "oracle",
                          "--url", "https://example.org/oracle"], capsys)
    assert code == 0, err
    assert "oracle — team local, submission 1" in out
    assert next(line for line in out.splitlines() if line.startswith("mean")).split()[2:] == ["100.0"] * 5
    partial = write_predictions(tmp_path / "partial.jsonl", imperfect(rows), split="test")
    assert run(["submit", partial, "--local", db, "--gt", gt, "--model", "partial", "--team", "lab"], capsys)[0] == 0

    unknown = write_predictions(tmp_path / "unknown.json", [{"sample_id": "zz", "text": "", "segments": []}])
    code, out, err = run(["submit", unknown, "--local", db, "--gt", gt, "--model", "unknown"], capsys)
    assert code == 2
    assert err.strip() == ("error: submission 3 rejected: unknown.json: sample 'zz': field 'sample_id': unknown "
                           "sample id: not in the ground truth of this split")

    code, out, _ = run(["table", "--local", db, "--format", "markdown"], capsys)
    assert code == 0 and out.splitlines()[0] == "MixedParts leaderboard — mean of the three tasks, percent"
    assert "| 1 | [oracle](<https://example.org/oracle>) | local | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in out
    assert "unknown" not in out.replace("| unknown |", "")  # the rejected file is not a row
    code, out, _ = run(["table", "--local", db, "--format", "csv", "--task", "unique_parts", "--sort", "model",
                        "--order", "asc"], capsys)
    rows_csv = list(csv.DictReader(io.StringIO(out)))
    assert [r["model"] for r in rows_csv] == ["Calico", "oracle", "partial"]
    assert rows_csv[0]["kind"] == "paper" and rows_csv[0]["AP50"] == "30.20"
    code, out, _ = run(["table", "--local", db, "--format", "json", "--no-paper"], capsys)
    table = json.loads(out)
    assert [r["model"] for r in table["rows"]] == ["oracle", "partial"] and table["rows"][1]["team"] == "lab"

    # A second, weaker "oracle" of the same team: the default table keeps the team's best, --all shows both.
    assert run(["submit", partial, "--local", db, "--gt", gt, "--model", "Oracle"], capsys)[0] == 0
    code, out, _ = run(["table", "--local", db, "--format", "json", "--no-paper"], capsys)
    best = json.loads(out)
    assert [(r["model"], r["submissions"]) for r in best["rows"]] == [("oracle", 2), ("partial", 1)]
    code, out, _ = run(["table", "--local", db, "--format", "json", "--no-paper", "--all"], capsys)
    assert [r["model"] for r in json.loads(out)["rows"]] == ["oracle", "partial", "Oracle"]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    gt, rows = make_gt(tmp_path)
    not_gt = tmp_path / "not-gt.jsonl"
    not_gt.write_text('{"format": "mixedparts-predictions/1"}\n')
    code, _, err = run(["serve", "--gt", not_gt, "--db", tmp_path / "x.db"], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a ground-truth file" in err and "export-gt" in err
    code, _, err = run(["serve", "--gt", tmp_path / "missing.jsonl", "--db", tmp_path / "x.db"], capsys)
    assert code == 2 and "cannot read" in err
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(gt.read_text().splitlines()[:-1]) + "\n")
    code, _, err = run(["worker", "--gt", truncated, "--db", tmp_path / "x.db", "--once"], capsys)
    assert code == 2 and "truncated" in err
    oracle = write_oracle(tmp_path, rows)
    code, _, err = run(["submit", oracle, "--server", "http://127.0.0.1:9", "--model", "m"], capsys)
    assert code == 2 and "no token" in err
    code, _, err = run(["submit", oracle, "--server", "http://127.0.0.1:9", "--token", "t", "--model", "m"], capsys)
    assert code == 2 and "cannot reach the server" in err
    code, _, err = run(["submit", oracle, "--server", "ftp://example.org", "--token", "t", "--model", "m"], capsys)
    assert code == 2 and "http://" in err
    code, _, err = run(["submit", oracle, "--server", "http://127.0.0.1:9", "--token", "t", "--model", "m",
                        "--url", "javascript:alert(1)"], capsys)
    assert code == 2 and "http:// or https://" in err
    code, _, err = run(["submit", oracle, "--local", tmp_path / "x.db", "--model", "m"], capsys)
    assert code == 2 and "--gt" in err
    code, _, err = run(["table", "--local", tmp_path / "nothing.db"], capsys)
    assert code == 2 and "no such leaderboard database" in err and "admin" in err and "init" in err
    code, _, err = run(["table"], capsys)
    assert code == 2
    assert run([], capsys)[0] == 2
    assert run(["--help"], capsys)[0] == 0


def test_export_gt_writes_the_file_the_server_reads(tmp_path, capsys):
    from mixedparts.commands import export_gt

    _, rows = make_gt(tmp_path)
    dataset = write_parquet_dataset(rows, tmp_path / "dataset")
    parser = argparse.ArgumentParser()
    export_gt.configure(parser)
    out = tmp_path / "exported" / "test-gt.jsonl"
    assert export_gt.run(parser.parse_args(["--data", str(dataset), "--split", "test", "--out", str(out)])) == 0
    assert "wrote 9 samples of the test split" in capsys.readouterr().out
    truth = read_ground_truth(out)
    assert truth.split == "test" and [r["sample_id"] for r in truth.rows] == [r["sample_id"] for r in rows]
    assert "question" not in truth.rows[0]  # only what scoring reads
    from mixedparts.errors import MixedPartsError

    with pytest.raises(MixedPartsError, match="no split"):
        export_gt.run(parser.parse_args(["--data", str(dataset), "--split", "val", "--out", str(out)]))


def test_no_command_creates_a_database_it_was_not_asked_to_create(tmp_path, capsys):
    """A mistyped --db must not start an empty board: only `admin init` and `serve --create` make one."""
    gt, _ = make_gt(tmp_path)
    typo = tmp_path / "no-such-folder" / "leaderbaord.db"
    for args in (["serve", "--gt", gt, "--db", typo, "--workers", "0"], ["worker", "--gt", gt, "--db", typo, "--once"],
                 ["admin", "--db", typo, "create-team", "x"], ["admin", "--db", typo, "list-teams"],
                 ["table", "--local", typo]):
        code, _, err = run(args, capsys)
        assert code == 2 and err.count("\n") == 1 and "no such leaderboard database" in err, (args, err)
        assert not typo.parent.exists(), args
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")  # a file, but no leaderboard in it
    code, _, err = run(["admin", "--db", empty, "list-teams"], capsys)
    assert code == 2 and "holds no leaderboard" in err
    assert run(["admin", "--db", typo, "init"], capsys)[0] == 0 and typo.is_file()
    code, out, _ = run(["admin", "--db", typo, "init"], capsys)
    assert code == 0 and out.startswith("checked")  # idempotent
    assert run(["admin", "--db", typo, "list-teams"], capsys)[0] == 0
