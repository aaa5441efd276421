"""``mixedparts-baseline``: oracle, simple and dino-coseg on a tiny built dataset, scored by mixedparts-eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from baselines.cli import main
from baselines.dino_coseg import DinoCoseg, kmeans
from mixedparts import markup, masks
from mixedparts.build.options import BuildOptions
from mixedparts.metrics.cli import main as eval_main
from mixedparts.metrics.ground_truth import read_dataset_split
from mixedparts.predictions import read_predictions
from mixedparts.reference_predictions import predict
from mixedparts.schema import SAMPLE_FIELDS, TASKS


@pytest.fixture(scope="module")
def dataset(build_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    build_tiny(root / "dataset", BuildOptions(max_samples_per_split=24))
    return root / "dataset"


@pytest.fixture(scope="module")
def rows(dataset):
    rows = read_dataset_split(dataset, "test", columns=SAMPLE_FIELDS)
    assert {row["task"] for row in rows} == set(TASKS)
    return rows


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dino") / "tiny-dinov2"
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(path)
    return path


def score(path, dataset, tmp_path) -> dict:
    out = tmp_path / f"{path.stem}-eval.json"
    assert eval_main([str(path), "--data", str(dataset), "--split", "test", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def headline(result: dict) -> dict:
    # the macro mean over the three tasks, one number per metric
    mean = result["scores"]["mean"]
    return {k: v for k, v in mean.items() if k in ("AP50", "mIoU", "Recall", "SS", "S-IoU")}


def test_oracle_scores_100_and_simple_is_the_object_box_predictor(dataset, rows, tmp_path):
    assert main(["oracle", "--data", str(dataset), "--out", str(tmp_path / "oracle.json")]) == 0
    assert main(["simple", "--data", str(dataset), "--out", str(tmp_path / "simple.json")]) == 0
    oracle = score(tmp_path / "oracle.json", dataset, tmp_path)
    assert all(v == pytest.approx(100.0) for v in headline(oracle).values()), headline(oracle)
    simple = read_predictions(tmp_path / "simple.json")
    assert simple.model == "simple" and simple.split == "test"
    expected = {p["sample_id"]: p for p in predict("object-box", rows)}
    assert {k: dict(v) for k, v in simple.by_sample.items()} == expected
    values = headline(score(tmp_path / "simple.json", dataset, tmp_path))
    assert 0 < values["mIoU"] < 100


def test_dino_coseg_with_a_tiny_random_checkpoint_is_scored(dataset, rows, tiny_dino, tmp_path):
    out = tmp_path / "dino.jsonl"
    assert main(["dino-coseg", "--data", str(dataset), "--out", str(out), "--model", str(tiny_dino),
                 "--resolution", "56", "--clusters", "4", "--limit", "12"]) == 0
    predictions = read_predictions(out)
    assert predictions.format == "jsonl" and len(predictions.by_sample) == 12 and not predictions.mismatched
    by_id = {row["sample_id"]: row for row in rows}
    for sample_id, prediction in predictions.by_sample.items():
        row = by_id[sample_id]
        k = len(row["images"])
        segments = prediction["segments"]
        assert markup.seg_count(prediction["text"]) == len(segments)
        for segment in segments:
            image = row["images"][segment["image_index"]]
            assert segment["mask"]["size"] == [image["height"], image["width"]]
            assert masks.area(segment["mask"]) > 0
        objects = [s for s in segments if s["label"] == "object"]
        assert sorted(s["image_index"] for s in objects) == list(range(k))
        parts = {}
        for s in segments:
            if s["label"] != "object":
                assert s["label"].startswith("part ")
                parts.setdefault(s["label"], []).append(s["image_index"])
        if row["task"] == "common_object":
            assert not parts
        for images_of_part in parts.values():
            assert len(images_of_part) == (k if row["task"] == "common_parts" else 1)
    result = score(out, dataset, tmp_path)
    assert result  # eval accepted it; numbers from random weights mean nothing


def test_kmeans_finds_separated_clusters_and_is_deterministic():
    generator = torch.Generator().manual_seed(1)
    directions = torch.eye(8)[:3] * 10
    points = torch.cat([d + 0.1 * torch.randn(20, 8, generator=generator) for d in directions])
    first, _ = kmeans(points, 3, seed=3)
    second, _ = kmeans(points, 3, seed=3)
    assert torch.equal(first, second)
    for block in range(3):
        assert len(set(first[block * 20:(block + 1) * 20].tolist())) == 1
    assert len(set(first.tolist())) == 3


def crafted(grid: int = 8) -> torch.Tensor:
    """Two images: background everywhere, a centre object; part A (top half of it) in both images,
    part B (bottom half) only in image 0, part C (bottom half) only in image 1."""
    basis = torch.eye(6)
    background, a, b, c = basis[0] * 3 + basis[5], basis[1] * 3, basis[2] * 3, basis[3] * 3
    features = background.repeat(2, grid, grid, 1).clone()
    features[:, 2:4, 2:6] = a
    features[0, 4:6, 2:6] = b
    features[1, 4:6, 2:6] = c
    return features


def stub_system(features: torch.Tensor) -> DinoCoseg:
    system = DinoCoseg.__new__(DinoCoseg)
    system.clusters, system.min_share, system.iterations, system.seed = 3, 0.05, 30, 0
    system.torch = torch
    system.features = lambda images: features
    return system


def crafted_row(task: str) -> dict:
    return {"sample_id": f"s-{task}", "task": task, "images": [{"height": 16, "width": 16}] * 2}


def test_dino_recipe_common_and_unique_parts_on_crafted_features():
    system = stub_system(crafted())
    foreground, cluster = system.segment([None, None])
    expected_object = np.zeros((8, 8), bool)
    expected_object[2:6, 2:6] = True
    assert (foreground == expected_object).all()
    top = np.zeros((16, 16), bool)
    top[4:8, 4:12] = True
    bottom = np.zeros((16, 16), bool)
    bottom[8:12, 4:12] = True

    common = system.predict(crafted_row("common_parts"), [None, None])
    parts = [s for s in common["segments"] if s["label"] != "object"]
    assert [s["image_index"] for s in parts] == [0, 1]
    assert all((masks.decode(s["mask"]) == top).all() for s in parts)

    unique = system.predict(crafted_row("unique_parts"), [None, None])
    parts = [s for s in unique["segments"] if s["label"] != "object"]
    assert sorted(s["image_index"] for s in parts) == [0, 1]
    assert len({s["label"] for s in parts}) == 2
    assert all((masks.decode(s["mask"]) == bottom).all() for s in parts)

    whole = system.predict(crafted_row("common_object"), [None, None])
    assert [s["label"] for s in whole["segments"]] == ["object", "object"]
    assert all((masks.decode(s["mask"]) == (top | bottom)).all() for s in whole["segments"])


def test_clear_errors(dataset, tmp_path, capsys):
    assert main(["dino-coseg", "--data", str(dataset), "--out", str(tmp_path / "x.json"),
                 "--model", str(tmp_path / "missing")]) == 2
    assert "cannot load a DINOv2 checkpoint" in capsys.readouterr().err
    assert main(["vlpart", "--data", str(dataset), "--out", str(tmp_path / "x.json")]) == 2
    assert "--detections" in capsys.readouterr().err
    assert main(["vlpart", "--data", str(dataset), "--out", str(tmp_path / "x.json"), "--config-file", "c.yaml",
                 "--weights", "w.pth"]) == 2
    assert "detectron2" in capsys.readouterr().err
    assert main(["partglee", "--data", str(dataset), "--out", str(tmp_path / "x.json")]) == 2
    assert "no inference API" in capsys.readouterr().err
    assert main(["oracle", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
