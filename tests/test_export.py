"""``mixedparts export-coco`` and ``export-gcg``: files other tools load, with the dataset's masks, and GLaMM's
GCG scoring reproduced on the exported files matching mixedparts-eval."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mixedparts.build.options import BuildOptions
from mixedparts.cli import main
from mixedparts.export import unit_id
from mixedparts.metrics.evaluate import evaluate
from mixedparts.metrics.ground_truth import read_dataset_split
from mixedparts.metrics.options import EvalOptions
from mixedparts.predictions import read_gcg_folder, write_predictions
from mixedparts.reference_predictions import predict
from mixedparts.schema import SAMPLE_FIELDS, TASKS


@pytest.fixture(scope="module")
def built(build_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    build_tiny(root / "dataset", BuildOptions(shard_rows=200))
    rows = read_dataset_split(root / "dataset", "test", columns=SAMPLE_FIELDS)
    object_box = predict("object-box", rows)
    predictions = write_predictions(root / "object-box.json", object_box, model="object-box", split="test")
    return SimpleNamespace(root=root, data=root / "dataset", rows=rows, predictions=predictions,
                           object_box={p["sample_id"]: p for p in object_box})


def quiet_coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def rle_bytes(rle: dict) -> dict:
    return {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}


# ------------------------------------------------------------------------------------------ COCO


def load_coco_json_like_detectron2(json_file: Path, image_root: str) -> list[dict]:
    """What detectron2's ``load_coco_json`` does with the file (it is not installable here): the same
    pycocotools calls, id checks and asserts, keeping what its mapper reads."""
    api = quiet_coco(json_file)
    cat_ids = sorted(api.getCatIds())
    assert min(cat_ids) == 1 and max(cat_ids) == len(cat_ids), "contiguous category ids: no remapping warning"
    id_map = {v: i for i, v in enumerate(cat_ids)}
    img_ids = sorted(api.imgs.keys())
    anns = [api.imgToAnns[i] for i in img_ids]
    ann_ids = [a["id"] for per_image in anns for a in per_image]
    assert len(set(ann_ids)) == len(ann_ids), "annotation ids are unique"
    records = []
    for img, per_image in zip(api.loadImgs(img_ids), anns):
        record = {"file_name": os.path.join(image_root, img["file_name"]), "height": img["height"],
                  "width": img["width"], "image_id": img["id"], "annotations": []}
        for anno in per_image:
            assert anno["image_id"] == record["image_id"] and anno.get("ignore", 0) == 0
            obj = {key: anno[key] for key in ("iscrowd", "bbox", "category_id") if key in anno}
            assert len(obj["bbox"]) == 4
            segm = anno["segmentation"]
            assert isinstance(segm, dict) and isinstance(segm["counts"], str)
            obj["segmentation"] = segm
            obj["category_id"] = id_map[obj["category_id"]]
            record["annotations"].append(obj)
        records.append(record)
    return records


def test_export_coco_round_trips_through_pycocotools(built, tmp_path):
    out = tmp_path / "gt.json"
    assert main(["export-coco", "--data", str(built.data), "--split", "test", "--out", str(out)]) == 0
    coco = quiet_coco(out)
    rows = built.rows
    assert len(coco.imgs) == sum(len(r["images"]) for r in rows)
    assert len(coco.anns) == sum(len(r["segments"]) for r in rows)
    labels = sorted({s["label"] for r in rows for s in r["segments"]})
    assert [c["name"] for c in coco.loadCats(sorted(coco.getCatIds()))] == labels
    by_unit = {(img["sample_id"], img["image_index"]): img for img in coco.dataset["images"]}
    for row in rows:
        for k, meta in enumerate(row["images"]):
            img = by_unit[(row["sample_id"], k)]
            assert (img["height"], img["width"], img["source_image_id"]) == (meta["height"], meta["width"],
                                                                                  meta["image_id"])
            assert img["unit_id"] == unit_id(row["sample_id"], k)
            assert Path(img["file_name"]).is_absolute() and Path(img["file_name"]).is_file()
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            segments = [s for s in row["segments"] if s["image_index"] == k]
            assert [a["label"] for a in annotations] == [s["label"] for s in segments]
            for annotation, segment in zip(annotations, segments):
                truth = mask_utils.decode(rle_bytes(segment["mask"]))
                assert np.array_equal(coco.annToMask(annotation), truth)
                assert annotation["area"] == truth.sum()
                assert coco.loadCats(annotation["category_id"])[0]["name"] == segment["label"]
                ys, xs = np.nonzero(truth)
                assert annotation["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    records = load_coco_json_like_detectron2(out, "/ignored/when/absolute")
    assert len(records) == len(coco.imgs) and all(Path(r["file_name"]).is_file() for r in records)


def test_export_coco_task_and_agnostic(built, tmp_path, capsys):
    out = tmp_path / "parts.json"
    assert main(["export-coco", "--data", str(built.data), "--task", "common_parts", "--categories", "agnostic",
                 "--image-root", "paco_lvis=/nowhere", "--out", str(out)]) == 0
    assert "no known image root" not in capsys.readouterr().out  # a root was given, even a wrong one
    coco = quiet_coco(out)
    rows = [r for r in built.rows if r["task"] == "common_parts"]
    assert {img["task"] for img in coco.dataset["images"]} == {"common_parts"}
    assert len(coco.imgs) == sum(len(r["images"]) for r in rows)
    assert coco.getCatIds() == [1] and {a["category_id"] for a in coco.anns.values()} == {1}
    paco = [img for img in coco.dataset["images"] if img["source"] == "paco_lvis"]
    assert paco and all(img["file_name"].startswith("/nowhere/") for img in paco)
    # A class-agnostic AP50 of the ground truth against itself is 1.
    detections = [{"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"], "score": 1.0}
                  for a in coco.anns.values()]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco, coco.loadRes(detections), "segm")
        evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
    assert evaluation.stats[1] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ GCG


def glamm_scores(gt_dir: Path, prediction_dir: Path, split: str) -> tuple[float, float]:
    """AP50 and mIoU as GLaMM's eval/gcg/evaluate.py computes them from the two GT files and a prediction
    folder (the same file handling, pycocotools calls and greedy mIoU; the captions and BERT recall left out)."""
    mask_path, caption_path = gt_dir / f"{split}_gcg_coco_mask_gt.json", gt_dir / f"{split}_gcg_coco_caption_gt.json"
    image_ids = [image["id"] for image in json.loads(caption_path.read_text())["images"]]
    detections = []
    for image_id in image_ids:
        prediction = json.loads((prediction_dir / f"{image_id}.json").read_text())
        key = list(prediction.keys())[0]
        try:
            prediction[key]["caption"]
            prediction = prediction[key]
        except Exception:
            pass
        for rle in prediction["pred_masks"]:
            detections.append({"image_id": image_id, "category_id": 1, "segmentation": rle, "score": 1.0})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(mask_path))
        coco_dt = coco_gt.loadRes(detections)
        evaluation = COCOeval(coco_gt, coco_dt, "segm")
        evaluation.params.catIds = [1]
        evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
        caption_gt = COCO(str(caption_path))  # GLaMM loads it too (and loadRes-es the captions)
        caption_gt.loadRes([{"image_id": i, "caption": "x", "labels": []} for i in image_ids])
    mious = []
    for image_id in image_ids:
        gt = [mask_utils.decode(a["segmentation"]) for a in coco_gt.anns.values() if a["image_id"] == image_id]
        pred = [mask_utils.decode(a["segmentation"]) for a in coco_dt.anns.values() if a["image_id"] == image_id]
        matrix = np.array([[np.logical_and(p, g).sum() / max(np.logical_or(p, g).sum(), 1) for g in gt] for p in pred])
        paired = []
        while matrix.size > 0 and np.max(matrix) > 0:
            i, j = np.unravel_index(np.argmax(matrix), matrix.shape)
            paired.append(matrix[i, j])
            matrix = np.delete(np.delete(matrix, i, axis=0), j, axis=1)
        mious.append(np.mean(paired) if paired else 0.0)
    return evaluation.stats[1], float(np.mean(mious))


class NoText:
    """A stand-in sentence embedder: SS is not compared here."""

    def embed(self, texts):
        return np.eye(max(len(texts), 1), dtype=np.float32)[:len(texts)]

    def describe(self):
        return {"name": "none"}


def test_export_gcg_matches_mixedparts_eval(built, tmp_path):
    out = tmp_path / "gcg"
    assert main(["export-gcg", "--data", str(built.data), "--split", "test", "--task", "all",
                 "--predictions", str(built.predictions), "--out", str(out)]) == 0
    options = EvalOptions(recall_text_gate="off")
    for task in TASKS:
        folder = out / task
        assert sorted(p.name for p in folder.iterdir()) == ["predictions", "test_gcg_coco_caption_gt.json",
                                                            "test_gcg_coco_mask_gt.json"]
        rows = [r for r in built.rows if r["task"] == task]
        mask_gt = json.loads((folder / "test_gcg_coco_mask_gt.json").read_text())
        caption_gt = json.loads((folder / "test_gcg_coco_caption_gt.json").read_text())
        units = [unit_id(r["sample_id"], k) for r in rows for k in range(len(r["images"]))]
        assert [i["id"] for i in mask_gt["images"]] == units == [i["id"] for i in caption_gt["images"]]
        assert {c["id"] for c in mask_gt["categories"]} == {1}
        masks_of = defaultdict(list)
        for annotation in mask_gt["annotations"]:
            assert annotation["category_id"] == 1 and annotation["iscrowd"] == 0
            masks_of[annotation["image_id"]].append(annotation)
        for caption in caption_gt["annotations"]:  # labels aligned with the unit's mask annotations
            assert caption["labels"] == [a["label"] for a in masks_of[caption["image_id"]]]
        by_id = {r["sample_id"]: r for r in rows}
        for annotation in mask_gt["annotations"]:
            sample_id, k = annotation["image_id"].rsplit("_IMAGE", 1)
            segment = [s for s in by_id[sample_id]["segments"] if s["image_index"] == int(k) - 1][
                masks_of[annotation["image_id"]].index(annotation)]
            assert annotation["segmentation"] == segment["mask"]

        # The prediction folder reads back as the predictions.
        sizes = {r["sample_id"]: [(i["height"], i["width"]) for i in r["images"]] for r in rows}
        back = read_gcg_folder(folder / "predictions", sizes)
        for sample_id, prediction in back.by_sample.items():
            original = built.object_box[sample_id]["segments"]
            assert [(s["label"], s["image_index"], s["mask"]) for s in prediction["segments"]] == \
                sorted(((s["label"], s["image_index"], s["mask"]) for s in original), key=lambda t: t[1])

        # GLaMM's numbers on the exported files are mixedparts-eval's (with units in sample-id order for AP50,
        # as GLaMM's COCOeval sorts the string unit ids).
        ap50, miou = glamm_scores(folder, folder / "predictions", "test")
        ours = evaluate(sorted(rows, key=lambda r: r["sample_id"]), [built.object_box[r["sample_id"]] for r in rows],
                        options, embedder=NoText(), workers=0).scores
        assert 0 < miou < 1 and 0 < ap50 < 1
        assert ours.loc[task, "mIoU"] == pytest.approx(100 * miou, abs=1e-6)
        assert ours.loc[task, "AP50"] == pytest.approx(100 * ap50, abs=1e-6)


def test_export_gcg_one_task(built, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["export-gcg", "--data", str(built.data), "--split", "val", "--task", "unique_parts",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["val_gcg_coco_caption_gt.json", "val_gcg_coco_mask_gt.json"]
    assert "unique_parts" in capsys.readouterr().out
    assert main(["export-gcg", "--data", str(built.data), "--task", "common_parts", "--predictions",
                 str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    assert "missing.json" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ push (Hub)


class FakeHfApi:
    """Records the calls push makes; checks the staged folder while it exists (the Hub is unreachable here)."""

    calls: list = []
    staged: dict = {}

    def __init__(self, token=None):
        FakeHfApi.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        # What huggingface_hub 2.x's upload_folder lists and reads: folder.glob("**/*") where path.is_file()
        # (which follows symbolic links), each file opened by path. It also validates the card's YAML on the Hub.
        FakeHfApi.staged = {path.relative_to(folder).as_posix(): path.read_bytes()
                            for path in sorted(folder.glob("**/*")) if path.is_file()}
        import yaml

        front = FakeHfApi.staged["README.md"].decode().split("---")[1]
        assert yaml.safe_load(front)["configs"][0]["data_files"]
        return SimpleNamespace(commit_url="https://huggingface.co/datasets/x/y/commit/0")


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeHfApi.calls, FakeHfApi.staged = [], {}
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi


def test_push_uploads_annotations_only(built, fake_hub, capsys):
    assert (built.data / ".build-state.json").exists()  # never uploaded
    assert main(["push", "--data", str(built.data), "--repo-id", "someone/mixedparts", "--private",
                 "--token", "hf_x"]) == 0
    assert "uploaded: https://huggingface.co/datasets/x/y/commit/0" in capsys.readouterr().out
    names = [name for name, _ in fake_hub.calls]
    assert names == ["init", "create_repo", "upload_folder"]
    assert fake_hub.calls[0][1] == {"token": "hf_x"}
    assert fake_hub.calls[1][1] == {"repo_id": "someone/mixedparts", "repo_type": "dataset", "private": True,
                                    "exist_ok": True}
    upload = fake_hub.calls[2][1]
    assert upload["repo_id"] == "someone/mixedparts" and upload["repo_type"] == "dataset"
    assert upload["delete_patterns"] == ["data/*"]
    shards = sorted(p.name for p in (built.data / "data").glob("*.parquet"))
    assert sorted(fake_hub.staged) == sorted(["README.md", "manifest.json"] + [f"data/{s}" for s in shards])
    for shard in shards:
        assert fake_hub.staged[f"data/{shard}"] == (built.data / "data" / shard).read_bytes()
    card = fake_hub.staged["README.md"].decode()
    assert "configs:" in card and "Images are not included" in card and "under their own terms" in card
    assert 'load_dataset("someone/mixedparts"' in card
    manifest = json.loads(fake_hub.staged["manifest.json"])
    assert manifest["image_roots"] == {} and str(built.root) not in fake_hub.staged["manifest.json"].decode()
    assert manifest["shards"] == json.loads((built.data / "manifest.json").read_text())["shards"]


def test_push_checks_before_uploading(built, fake_hub, tmp_path, capsys):
    import shutil

    assert main(["push", "--data", str(built.data), "--repo-id", "a/b", "--dry-run"]) == 0
    assert "dry run: nothing uploaded" in capsys.readouterr().out and fake_hub.calls == []
    copy = tmp_path / "copy"
    shutil.copytree(built.data, copy)
    # A card without the images statement gets it.
    card = (copy / "README.md").read_text().replace("Images are not included", "Pictures are elsewhere")
    (copy / "README.md").write_text(card)
    shard = sorted((copy / "data").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    assert main(["push", "--data", str(copy), "--repo-id", "a/b"]) == 2
    assert "sha256 differs" in capsys.readouterr().err and fake_hub.calls == []
    assert main(["push", "--data", str(copy), "--repo-id", "a/b", "--no-verify"]) == 0
    assert "Images are not included" in fake_hub.staged["README.md"].decode()
    (copy / "manifest.json").unlink()
    assert main(["push", "--data", str(copy), "--repo-id", "a/b"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_push_reports_hub_failures(built, monkeypatch, capsys):
    import huggingface_hub

    class Unreachable(FakeHfApi):
        def create_repo(self, repo_id, **kwargs):
            raise ConnectionError("Cannot reach https://huggingface.co")

    monkeypatch.setattr(huggingface_hub, "HfApi", Unreachable)
    assert main(["push", "--data", str(built.data), "--repo-id", "a/b"]) == 2
    assert "upload to a/b failed: ConnectionError: Cannot reach" in capsys.readouterr().err
