"""Training: overfitting a few samples, calico-train / calico-predict end to end, exact resume, 2-process DDP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from calico_baseline.checkpoints import TRAINED_FILE
from calico_baseline.generation import predict_batch
from mixedparts import masks
from mixedparts.predictions import read_predictions

from calico_baseline.testing import synthetic_sample, tiny_setup

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


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
def dataset(build_tiny, tmp_path_factory):
    from mixedparts.build.options import BuildOptions

    root = tmp_path_factory.mktemp("calico-data")
    build_tiny(root / "dataset", BuildOptions())
    return root / "dataset"


def train_args(dataset, out, *extra):
    return ["--config", str(Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"),
            "--set", f"data.path={dataset}", "--set", f"train.output_dir={out}", "--set", "data.limit=16",
            "--set", "train.max_steps=4", "--set", "train.save_every=2", "--set", "train.log_every=2",
            "--set", "train.warmup_steps=2", "--set", "train.progress=false", "--set", "train.tensorboard=false",
            "--set", "data.val_samples=4", "--set", "data.train_eval_samples=4", "--set", "train.val_every=2",
            "--set", "train.look_steps=0",  # the loop itself; the look stage has tests/test_calico_look.py
            "--set", "train.threads=1",  # tests run beside each other: one thread each
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
    # metrics.jsonl: the resumed run replaced the interrupted run's lines past step 2, once each
    from calico_baseline.curves import read_metrics
    records = [(r["step"], r["phase"]) for r in read_metrics(tmp_path / "run")]
    fit = "train_subset"  # data.train_eval_samples: the same pass on fixed training rows, after each val pass
    assert records == [(0, "val"), (0, fit), (2, "train"), (2, "val"), (2, fit), (4, "train"), (4, "val"), (4, fit)]
    # a checkpoint is save_pretrained's export + accelerator.save_state (model file: trained weights only)
    state = tmp_path / "run" / "checkpoints" / "step-2" / "accelerate_state"
    assert {"optimizer.bin", "model.safetensors", "custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl"} \
        <= {p.name for p in state.iterdir()}
    assert set(load_file(str(state / "model.safetensors"))) == set(reference)

    out = tmp_path / "predictions.json"
    assert predict.main(["--checkpoint", str(final), "--data", str(dataset), "--split", "test", "--out", str(out),
                         "--limit", "3", "--batch-size", "2", "--max-new-tokens", "8", "--quiet"]) == 0
    predictions = read_predictions(out)
    assert len(predictions.by_sample) == 3 and predictions.split == "test"
    threads = torch.get_num_threads()
    try:
        assert predict.main(["--checkpoint", str(final), "--data", str(dataset), "--split", "test", "--out", str(out),
                             "--limit", "2", "--max-new-tokens", "4", "--dtype", "bf16", "--threads", "1",
                             "--quiet"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert len(read_predictions(out).by_sample) == 2


def test_yaml_config_and_schedule():
    from calico_baseline.train import load_config, lr_lambda

    config = load_config(Path(__file__).parents[1] / "configs" / "calico-7b.yaml", ["train.max_steps=7"])
    assert config["model"]["preset"] == "calico-7b" and config["train"]["lr"] == 4e-4
    assert config["train"]["max_steps"] == 7 and config["train"]["grad_accum"] == 10
    f = lr_lambda(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == 0
    assert config["model"]["dtype"] == "bf16" and config["model"]["trainable_dtype"] == "fp32"


def test_set_reaches_nested_mappings():
    from calico_baseline.train import load_config

    tiny = Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"
    config = load_config(tiny, ["model.overrides.mask_loss_resolution=low", "model.overrides.sam_config.image_size=32",
                                "train.lr_scale.visual=5"])
    overrides = config["model"]["overrides"]
    assert overrides["mask_loss_resolution"] == "low" and "overrides.mask_loss_resolution" not in config["model"]
    assert overrides["sam_config"] == {"image_size": 32, "patch_size": 8}  # the file's other entry stays
    assert config["train"]["lr_scale"] == {"grounding_encoder": 5, "text_hidden_fcs": 5, "visual": 5}
    with pytest.raises(ValueError, match="not a mapping"):
        load_config(tiny, ["train.lr.x=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(tiny, ["train..lr=1"])


def test_accelerate_configs_parse():
    """configs/accelerate/*.yaml follow accelerate's config schema (unknown keys raise) and keep the recipe's values."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DistributedType

    from calico_baseline.train import load_config

    folder = Path(__file__).parents[1] / "configs" / "accelerate"
    kinds = {f.stem: ClusterConfig.from_yaml_file(f) for f in folder.glob("*.yaml")}
    assert {k: c.distributed_type for k, c in kinds.items()} == {
        "ddp": DistributedType.MULTI_GPU, "fsdp": DistributedType.FSDP, "deepspeed-zero2": DistributedType.DEEPSPEED}
    assert all(c.mixed_precision == "bf16" for c in kinds.values())
    assert all(c.num_processes == 4 for c in kinds.values())  # the paper's 4 GPUs: effective batch 4 × 2 × 10
    assert kinds["fsdp"].fsdp_config["fsdp_sharding_strategy"] == "SHARD_GRAD_OP"
    assert kinds["fsdp"].fsdp_config["fsdp_use_orig_params"] is True
    assert kinds["deepspeed-zero2"].deepspeed_config["zero_stage"] == 2
    recipe = load_config(Path(__file__).parents[1] / "configs" / "calico-7b.yaml")["train"]
    assert kinds["deepspeed-zero2"].deepspeed_config["gradient_accumulation_steps"] == recipe["grad_accum"]
    assert kinds["deepspeed-zero2"].deepspeed_config["gradient_clipping"] == recipe["max_grad_norm"]


@pytest.mark.slow
def test_two_process_data_parallel_step_and_exact_resume_on_cpu(dataset, tmp_path):
    """accelerate launch --cpu --num_processes 2 (gloo): two optimiser steps; resuming from the step-1 checkpoint
    (accelerator.save_state / load_state) gives the same trained weights."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "calico_baseline.train", *train_args(dataset, tmp_path / "ddp", "--set", "train.max_steps=2",
                                                         "--set", "train.batch_size=1", "--set", "train.save_every=1",
                                                         "--set", "train.grad_accum=1")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 2:" in result.stdout
    final = tmp_path / "ddp" / "final" / TRAINED_FILE
    reference = load_file(str(final))
    import shutil
    shutil.rmtree(tmp_path / "ddp" / "checkpoints" / "step-2")
    shutil.rmtree(final.parent)
    result = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout and "at step 1" in result.stdout
    resumed = load_file(str(final))
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def _grads(model, batch, autocast: bool):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(**batch)
    out.loss.backward()
    return out, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_bf16_autocast_and_gradient_checkpointing_switches():
    """The switches calico-train turns on (accelerate's CPU autocast, model.llm.gradient_checkpointing_enable):
    a step runs, the loss is finite, gradients reach exactly the trainable parameters, checkpointing recomputes."""
    model, _, processor = tiny_setup()
    with torch.no_grad():  # LoRA B and the zero-initialised outputs would stop most gradients at step 0
        for p in model.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.05)
    batch = processor.collate([processor(*synthetic_sample(i)) for i in range(2)])
    model.train()
    model.config.lora_dropout = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    # everything trainable gets a gradient but SAM's IoU head, which no loss term uses (as in GLaMM / LISA), and the
    # hypernetworks of the three masks that multimask_output=False drops, which sam.decode_prompts does not run
    trainable = {n for n in model.trainable_parameters() if ".iou_prediction_head." not in n
                 and not re.search(r"\.output_hypernetworks_mlps\.[1-9]\.", n)}
    plain_out, plain = _grads(model, batch, autocast=False)
    assert set(plain) == trainable
    calls = []
    for index in (0, 1):  # a plain decoder layer and a CAM layer (transformers checkpoints the layers' forward)
        model.llm.model.layers[index].input_layernorm.register_forward_pre_hook(lambda *_, i=index: calls.append(i))
    model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    _, checkpointed = _grads(model, batch, autocast=False)
    assert sorted(calls) == [0, 0, 1, 1]  # each layer ran again in backward
    assert set(checkpointed) == trainable
    assert all(torch.allclose(checkpointed[n], plain[n], atol=1e-6, rtol=1e-4) for n in trainable)
    out, mixed = _grads(model, batch, autocast=True)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    assert set(mixed) == trainable
    assert all(torch.isfinite(g).all() and g.dtype == torch.float32 for g in mixed.values())
    assert abs(float(out.loss.detach()) - float(plain_out.loss.detach())) < 0.05 * float(plain_out.loss.detach())


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process: let this test choose bf16, then restore the default."""
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_train_with_bf16_and_gradient_checkpointing(dataset, tmp_path, fresh_accelerator_state):
    from calico_baseline import train

    # frozen bases as in calico-7b (configs/calico-tiny.yaml trains everything, which leaves nothing to store in bf16)
    assert train.main(train_args(dataset, tmp_path / "run", "--set", "train.max_steps=1", "--set", "data.limit=4",
                                 "--set", "train.mixed_precision=bf16", "--set", "train.gradient_checkpointing=true",
                                 "--set", "model.dtype=bf16", "--set", "model.overrides={lora_r: 8, lora_alpha: 16}")) == 0
    trained = load_file(str(tmp_path / "run" / "final" / TRAINED_FILE))
    assert trained and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in trained.values())
    frozen = load_file(str(tmp_path / "run" / "final" / "calico_base.safetensors"))  # calico-tiny has no base files
    assert {v.dtype for k, v in frozen.items() if k.endswith(".weight")} == {torch.bfloat16}


def test_dataset_decodes_masks_and_resolves_images_through_mixedparts(dataset, tmp_path):
    """calico_baseline.data uses mixedparts.loader.decode_masks and mixedparts.images.ImageResolver: the same masks as
    mixedparts.masks.decode, images opened from the manifest's roots, and errors naming the sample / source."""
    from calico_baseline.data import CalicoDataset, CalicoProcessor, image_roots_for, read_rows
    from calico_baseline.testing import tiny_setup
    from mixedparts.images import ImageResolver, ImageRootError
    from mixedparts.loader import MaskError

    _, _, processor = tiny_setup()
    rows = [r for r in read_rows(dataset, "train", limit=16) if r["segments"]][:2]
    resolver = image_roots_for(dataset)
    assert isinstance(resolver, ImageResolver)
    data = CalicoDataset(rows, processor, resolver)
    for row, feature in zip(rows, (data[0], data[1])):
        assert [tuple(s) for s in feature["original_sizes"]] == [(im["height"], im["width"]) for im in row["images"]]
        assert feature["gt_masks"], row["sample_id"]
        for segment, mask in zip(row["segments"], feature["gt_masks"]):
            assert mask.dtype == np.uint8 and mask.flags.c_contiguous
            assert np.array_equal(mask, masks.decode(segment["mask"]).astype(np.uint8))
    broken = {**rows[0], "segments": [{**s, "mask": {**s["mask"], "counts": "!!"}} for s in rows[0]["segments"]]}
    with pytest.raises(MaskError, match=rows[0]["sample_id"]):
        CalicoDataset([broken], processor, resolver)[0]
    source = rows[0]["source"]
    with pytest.raises(ImageRootError, match=source):
        CalicoDataset(rows[:1], processor, image_roots_for(dataset, {source: str(tmp_path / "nowhere")}))


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from calico_baseline import predict, train

    assert train.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.yaml'}: config file not found"
    assert train.main(["--set", "nosection.key=1"]) == 2
    assert "section.key=value" in capsys.readouterr().err
    # refused before any data is read (data.path does not exist either)
    assert train.main(["--set", "data.path=nodata", "--set", "train.adamw_kernel=apex"]) == 2
    assert capsys.readouterr().err.strip() == ("error: train.adamw_kernel: 'apex' is not one of "
                                               "['default', 'foreach', 'fused']")
    assert predict.main(["--checkpoint", str(tmp_path), "--data", str(tmp_path / "nodata"), "--out",
                         str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nodata" in err and "\n" not in err
    assert not (tmp_path / "p.json").exists()
