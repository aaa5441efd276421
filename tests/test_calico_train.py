"""Training: overfitting a few samples, calico-train / calico-predict end to end, exact resume, 2-process DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from calico_baseline.checkpoints import TRAINED_FILE
from calico_baseline.generation import predict_batch
from mixedparts import masks
from mixedparts.predictions import read_predictions

from calico_baseline.testing import synthetic_sample, tiny_setup

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matmuls gain nothing from threads and slow down badly on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_overfits_two_samples():
    model, tokenizer, processor = tiny_setup(lora_target_modules=ALL_LINEAR, lora_r=16, lora_alpha=32)
    samples = [synthetic_sample(i) for i in range(2)]
    samples[1][0]["question"] = "Which red object do the images share?"
    samples[1][0]["answer"] = "The images show <p> a red box </p> [SEG] (IMAGE1) [SEG] (IMAGE2)."
    batch = processor.collate([processor(row, images) for row, images in samples])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95))
    model.train()
    for _ in range(100):
        out = model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    predictions = predict_batch(model, tokenizer,
                                processor.collate([processor(r, im, train=False) for r, im in samples]), 40)
    for prediction, (row, _) in zip(predictions, samples):
        assert prediction["text"] == row["answer"]
        assert [s["image_index"] for s in prediction["segments"]] == [0, 1]
        assert [s["label"] for s in prediction["segments"]] == ["box" if "red" not in row["answer"] else "red box"] * 2
        for predicted, truth in zip(prediction["segments"], row["segments"]):
            assert predicted["mask"]["size"] == truth["mask"]["size"]
            assert masks.iou(predicted["mask"], truth["mask"]) >= 0.5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from mixedparts.build import build
    from mixedparts.build.options import BuildOptions
    from mixedparts.sources import open_readers
    from mixedparts.synth import source_paths, synthesize

    root = tmp_path_factory.mktemp("calico-data")
    synthesize(root / "sources", scale="tiny", seed=0)
    paths = source_paths(root / "sources")
    readers = open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                           partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])
    build(readers, root / "dataset", BuildOptions(), workers=1, progress=False)
    return root / "dataset"


def train_args(dataset, out, *extra):
    return ["--config", str(Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"),
            "--set", f"data.path={dataset}", "--set", f"train.output_dir={out}", "--set", "data.limit=16",
            "--set", "train.max_steps=4", "--set", "train.save_every=2", "--set", "train.log_every=2",
            "--set", "train.warmup_steps=2", "--set", "train.progress=false", "--set", "train.tensorboard=false",
            *extra]


def test_train_predict_and_exact_resume(dataset, tmp_path):
    from calico_baseline import predict, train

    assert train.main(train_args(dataset, tmp_path / "run")) == 0
    final = tmp_path / "run" / "final"
    reference = load_file(str(final / TRAINED_FILE))
    # resume from the step-2 checkpoint reproduces the uninterrupted run exactly
    import shutil
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-4")
    shutil.rmtree(final)
    assert train.main(train_args(dataset, tmp_path / "run", "--resume")) == 0
    resumed = load_file(str(final / TRAINED_FILE))
    assert set(resumed) == set(reference)
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)

    out = tmp_path / "predictions.json"
    assert predict.main(["--checkpoint", str(final), "--data", str(dataset), "--split", "test", "--out", str(out),
                         "--limit", "3", "--batch-size", "2", "--max-new-tokens", "8", "--quiet"]) == 0
    predictions = read_predictions(out)
    assert len(predictions.by_sample) == 3 and predictions.split == "test"


def test_yaml_config_and_schedule():
    from calico_baseline.train import load_config, lr_lambda

    config = load_config(Path(__file__).parents[1] / "configs" / "calico-7b.yaml", ["train.max_steps=7"])
    assert config["model"]["preset"] == "calico-7b" and config["train"]["lr"] == 4e-4
    assert config["train"]["max_steps"] == 7 and config["train"]["grad_accum"] == 10
    f = lr_lambda(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == 0


@pytest.mark.slow
def test_two_process_data_parallel_step_on_cpu(dataset, tmp_path):
    """accelerate launch --cpu --num_processes 2 (gloo): one optimiser step, same weights on both ranks."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "calico_baseline.train", *train_args(dataset, tmp_path / "ddp", "--set", "train.max_steps=1",
                                                         "--set", "train.batch_size=1")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 1:" in result.stdout
    assert (tmp_path / "ddp" / "final" / TRAINED_FILE).is_file()
