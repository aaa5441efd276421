"""The documentation is the project's own: its examples validate, its links resolve, nothing points outside."""

import json
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from mixedparts import schema
from mixedparts.loader import decode_masks
from mixedparts.metrics.ground_truth import read_ground_truth
from mixedparts.export import unit_id
from mixedparts.predictions import check_against_ground_truth, read_gcg_folder, read_predictions

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Written by other issues in parallel; linked from here before they land.
WRITTEN_ELSEWHERE: set[str] = set()  # every page has landed: all links are checked


def examples() -> dict[str, str]:
    text = (DOCS / "formats.md").read_text()
    return dict(re.findall(r"<!-- example: ([\w-]+) -->\n```json\n(.*?)\n```", text, flags=re.S))


def test_every_format_has_its_example():
    assert set(examples()) == {"sample-row", "predictions-json", "predictions-jsonl", "ground-truth",
                               "gcg-mask-gt", "gcg-caption-gt", "gcg-prediction"}


def test_the_sample_row_fits_the_schema_and_its_masks_decode():
    row = json.loads(examples()["sample-row"])
    table = pa.Table.from_pylist([row], schema=schema.SAMPLE_FEATURES.arrow_schema)
    assert table.to_pylist() == [row]
    masks = decode_masks(row["segments"])
    assert all(m.any() and m.shape == tuple(s["mask"]["size"]) for m, s in zip(masks, row["segments"]))
    assert row["answer"].count("[SEG]") == len(row["segments"])


def test_the_predictions_examples_validate_against_the_sample(tmp_path):
    row = json.loads(examples()["sample-row"])
    sizes = {row["sample_id"]: [(i["height"], i["width"]) for i in row["images"]]}
    for name, suffix in (("predictions-json", ".json"), ("predictions-jsonl", ".jsonl")):
        path = tmp_path / f"p{suffix}"
        path.write_text(examples()[name] + "\n")
        predictions = read_predictions(path)
        assert list(predictions.by_sample) == [row["sample_id"]] and not predictions.mismatched
        assert check_against_ground_truth(predictions, sizes, split="test") == []


def test_the_ground_truth_example_reads_back(tmp_path):
    path = tmp_path / "gt.jsonl"
    path.write_text(examples()["ground-truth"] + "\n")
    truth = read_ground_truth(path)
    assert truth.split == "test" and truth.rows == [json.loads(examples()["sample-row"])]


def test_the_gcg_examples_match_what_the_exporter_writes(tmp_path):
    from mixedparts.export.gcg import gcg_ground_truth

    row = json.loads(examples()["sample-row"])
    mask_gt, caption_gt = gcg_ground_truth([row])
    assert json.loads(examples()["gcg-mask-gt"]) == mask_gt
    assert json.loads(examples()["gcg-caption-gt"]) == caption_gt
    record = json.loads(examples()["gcg-prediction"])
    assert record["image_id"] == unit_id(row["sample_id"], 0)
    (tmp_path / f"{record['image_id']}.json").write_text(json.dumps(record))
    sizes = {row["sample_id"]: [(i["height"], i["width"]) for i in row["images"]]}
    predictions = read_gcg_folder(tmp_path, sizes)
    assert [s["label"] for s in predictions.by_sample[row["sample_id"]]["segments"]] == record["phrases"]


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith(("#", "<")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if path.parent == DOCS and path.name in WRITTEN_ELSEWHERE:
            continue
        assert path.exists(), f"{page.name}: broken link {target}"


def test_nothing_points_at_the_steering_notes():
    """A clone has only the repository: no path to the notes the project was steered by."""
    places = [ROOT / "README.md", ROOT / "pyproject.toml",
              *(ROOT / d for d in ("docs", "mixedparts", "calico_baseline", "baselines", "leaderboard", "configs"))]
    files = [f for place in places for f in ([place] if place.is_file() else place.rglob("*"))
             if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".md", ".py", ".toml", ".yaml", ".json")]
    assert len(files) > 50
    assert [f.relative_to(ROOT).as_posix() for f in files if "shared/" in f.read_text(errors="replace")] == []
