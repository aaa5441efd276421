"""mixedparts-eval end to end through main([...]) on a tiny hand-built ground truth."""

import json

import pytest

from mixedparts.metrics.cli import main
from mixedparts.metrics.evaluate import METRICS
from mixedparts.metrics.ground_truth import GroundTruthError, read_ground_truth, write_ground_truth
from mixedparts.predictions import write_predictions
from metrics_helpers import make_rows, minilm, oracle_predictions, write_parquet_dataset  # noqa: F401


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("truth")
    rows = make_rows(3)
    write_ground_truth(rows, folder / "gt.jsonl")
    write_parquet_dataset(rows, folder / "dataset")
    return rows, folder


def score(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_oracle_scores_100_everywhere(truth, tmp_path, minilm, capsys):
    rows, folder = truth
    predictions = write_predictions(tmp_path / "oracle.json", oracle_predictions(rows), model="oracle", split="test")
    out = tmp_path / "scores.json"
    code, text, err = score([predictions, "--gt", folder / "gt.jsonl", "--json", out], capsys)
    assert code == 0, err
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("task"))
    assert lines[header].split() == ["task", "samples", "units", *METRICS]
    table = [line.split() for line in lines[header + 1:header + 5]]
    assert [row[0] for row in table] == ["common_object", "common_parts", "unique_parts", "mean"]
    assert all(cell == "100.0" for row in table for cell in row[3:])
    assert [row[1:3] for row in table] == [["3", "6"], ["3", "6"], ["3", "6"], ["9", "18"]]
    assert "variant: A3 gt-masks all" in text and "(the defaults)" in text
    assert "recall gate sentence-transformers/all-MiniLM-L6-v2 at 0.5" in text
    result = json.loads(out.read_text())
    assert all(round(result["scores"][row][m], 1) == 100.0 for row in result["scores"] for m in METRICS)
    assert result["counts"]["phrase_mask_mismatches"] == 0 and result["counts"]["units"] == 18
    assert result["variant"]["A7_recall_text_gate"] == "all-MiniLM-L6-v2 >= 0.5 on raw labels"
    assert result["text_models"]["SS"]["weights_sha256"].startswith("53aa5117")
    assert set(result["breakdowns"]) == {"source", "category"}


def test_gt_file_and_dataset_folder_give_the_same_result(truth, tmp_path, minilm, capsys):
    rows, folder = truth
    predictions = oracle_predictions(rows)
    for prediction in predictions:  # make it imperfect
        prediction["segments"] = prediction["segments"][::2]
        for s in prediction["segments"]:
            s["label"] = "leg"
    path = write_predictions(tmp_path / "p.jsonl", predictions, split="test")
    results = []
    for source in (["--gt", folder / "gt.jsonl"], ["--data", folder / "dataset"]):
        out = tmp_path / f"{source[0][2:]}.json"
        code, text, err = score([path, *source, "--json", out, "--bootstrap", "30"], capsys)
        assert code == 0, err
        result = json.loads(out.read_text())
        results.append({k: result[k] for k in ("scores", "ci95", "counts", "breakdowns", "variant")})
    assert results[0] == results[1]
    assert results[0]["scores"]["mean"]["mIoU"] < 100


def test_ground_truth_round_trip(truth):
    rows, folder = truth
    read = read_ground_truth(folder / "gt.jsonl")
    assert read.split == "test" and read.rows == rows
    broken = folder / "broken.jsonl"
    broken.write_text("\n".join((folder / "gt.jsonl").read_text().splitlines()[:-1]))
    with pytest.raises(GroundTruthError, match="truncated"):
        read_ground_truth(broken)


def test_missing_samples_warn_and_strict_fails(truth, tmp_path, minilm, capsys):
    rows, folder = truth
    path = write_predictions(tmp_path / "p.json", oracle_predictions(rows)[2:])
    code, text, err = score([path, "--gt", folder / "gt.jsonl"], capsys)
    assert code == 0
    assert "warning: 2 of 9 samples have no prediction" in err
    out = tmp_path / "scores.json"
    code, text, err = score([path, "--gt", folder / "gt.jsonl", "--strict", "--json", out], capsys)
    assert code == 2 and not out.exists() and text == ""
    assert "'s0'" in err and "field 'predictions'" in err


def test_variants_are_printed_and_stored(truth, tmp_path, minilm, capsys):
    rows, folder = truth
    path = write_predictions(tmp_path / "p.json", oracle_predictions(rows, article=False))
    out = tmp_path / "scores.json"
    code, text, err = score([path, "--data", folder / "dataset", "--json", out, "--recall-text-gate", "off",
                             "--miou", "per-gt", "--label-pairs", "all-gt", "--labels", "none", "--fold-plurals",
                             "--label-average", "samples", "--gt-masks", "parts-only", "--ap-scores", "predicted",
                             "--recall-matching", "skip", "--breakdown", "source"], capsys)
    assert code == 0, err
    assert "A7 recall-text-gate off" in text and "recall gate off" in text and "by source" in text
    assert "(the defaults)" not in text
    result = json.loads(out.read_text())
    assert result["options"]["miou"] == "per-gt" and result["variant"]["A10_fold_plurals"] == "on"
    assert round(result["scores"]["mean"]["Recall"], 1) == 100.0


def test_gcg_folder(truth, tmp_path, minilm, capsys):
    rows, folder = truth
    gcg = tmp_path / "gcg"
    gcg.mkdir()
    for row in rows:
        for k in range(len(row["images"])):
            segments = [s for s in row["segments"] if s["image_index"] == k]
            record = {"image_id": f"{row['sample_id']}_IMAGE{k + 1}", "caption": "",
                      "phrases": [s["label"] for s in segments], "pred_masks": [s["mask"] for s in segments]}
            (gcg / f"{record['image_id']}.json").write_text(json.dumps(record))
    code, text, err = score([gcg, "--format", "gcg", "--gt", folder / "gt.jsonl"], capsys)
    assert code == 0, err
    assert text.splitlines()[0].endswith("split test") and "(model gcg)" in text
    mean = next(line for line in text.splitlines() if line.startswith("mean")).split()
    assert mean[3:] == ["100.0"] * 5


def test_bad_ground_truth_and_arguments(truth, tmp_path, capsys):
    rows, folder = truth
    path = write_predictions(tmp_path / "p.json", oracle_predictions(rows))
    code, _, err = score([path, "--data", tmp_path / "nowhere"], capsys)
    assert code == 2 and "nowhere: folder not found" in err
    code, _, err = score([path, "--data", folder / "dataset", "--split", "val"], capsys)
    assert code == 2 and "no split 'val' (splits present: test)" in err
    code, _, err = score([path, "--gt", folder / "gt.jsonl", "--split", "val"], capsys)
    assert code == 2 and "holds split 'test'" in err
    code, _, err = score([path, "--gt", folder / "gt.jsonl", "--recall-text-threshold", "2"], capsys)
    assert code == 2 and "must be in (0, 1]" in err
    code, _, err = score([path, "--gt", folder / "gt.jsonl", "--json", path], capsys)
    assert code == 2 and "overwrite the predictions" in err


def test_help_explains_every_option(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--data", "--split", "--gt", "--json", "--format", "--strict", "--bootstrap", "--seed",
                   "--breakdown", "--workers", "--gt-masks", "--ap-scores", "--miou", "--recall-matching",
                   "--recall-iou-threshold", "--recall-text-gate", "--recall-text-model", "--recall-text-threshold",
                   "--recall-labels", "--label-pairs", "--labels", "--fold-plurals", "--label-average"):
        assert option in text
    for item in ("A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11"):
        assert f"{item}." in text


def test_an_empty_task_prints_zeros_never_nan(truth, tmp_path, minilm, capsys):
    rows, folder = truth
    kept = [p for p, row in zip(oracle_predictions(rows), rows) if row["task"] != "unique_parts"]
    path = write_predictions(tmp_path / "p.json", kept)
    out = tmp_path / "scores.json"
    code, text, err = score([path, "--gt", folder / "gt.jsonl", "--json", out, "--bootstrap", "10",
                             "--recall-labels", "normalized"], capsys)
    assert code == 0, err
    assert "nan" not in text.lower() and "n/a" not in text
    unique = next(line for line in text.splitlines() if line.startswith("unique_parts")).split()
    assert unique[3::3] == ["0.0"] * 5 and unique[4::3] == ["[0.0,"] * 5  # each cell: value [low, high]
    assert "on articles-normalized labels" in text
    assert "NaN" not in out.read_text()
    assert json.loads(out.read_text())["scores"]["unique_parts"]["SS"] == 0.0


def test_the_variant_flags_are_the_options_fields():
    """One flag per EvalOptions field, named after it, with its default and choices; the parsed namespace
    gives back exactly the options it was given, every field away from its default."""
    import argparse
    from dataclasses import fields

    from mixedparts.metrics.cli import build_parser
    from mixedparts.metrics.options import VARIANTS, EvalOptions, add_arguments

    assert list(VARIANTS) == [spec.name for spec in fields(EvalOptions)]
    parser = build_parser()
    defaults = parser.parse_args(["p.json"])
    assert EvalOptions.from_args(defaults) == EvalOptions()
    flags = {action.dest: action for action in parser._actions}
    changed = []
    for spec in fields(EvalOptions):
        action, variant = flags[spec.name], VARIANTS[spec.name]
        assert action.option_strings == ["--" + spec.name.replace("_", "-")] and action.default == spec.default
        assert action.help.startswith(f"{variant.item}. ")
        if variant.choices is not None:
            assert tuple(action.choices) == variant.choices
            assert f"{spec.default} (default)" in action.help  # the help names the default it documents
            changed += [action.option_strings[0], next(c for c in variant.choices if c != spec.default)]
        elif isinstance(spec.default, bool):
            changed.append(action.option_strings[0])
        elif isinstance(spec.default, float):
            assert f"(default: {spec.default:g})" in action.help
            changed += [action.option_strings[0], "0.25"]
        else:
            changed += [action.option_strings[0], "./bert-base-uncased"]
    options = EvalOptions.from_args(parser.parse_args(["p.json", *changed]))
    assert all(getattr(options, spec.name) != spec.default for spec in fields(EvalOptions))
    group = argparse.ArgumentParser()
    add_arguments(group)
    assert EvalOptions.from_args(group.parse_args([])) == EvalOptions()
    with pytest.raises(ValueError, match="miou must be one of"):
        EvalOptions(miou="best")
