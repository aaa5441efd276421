"""``mixedparts-baseline train lisa|glamm``: the recipe's modules (and only they) train, checkpoints resume, the
saved folder predicts through ``mixedparts-baseline`` and ``mixedparts-eval`` scores it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from baselines.cli import main
from calico_baseline.checkpoints import BASE_FILE, TRAINED_FILE
from mixedparts.metrics.cli import main as eval_main
from mixedparts.predictions import read_predictions

RECIPE_MODULES = ("grounding_encoder.mask_decoder.", "text_hidden_fcs.", "lm_head.", "embed_tokens.")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def dataset(build_tiny, tmp_path_factory):
    from mixedparts.build.options import BuildOptions

    root = tmp_path_factory.mktemp("baselines-train")
    build_tiny(root / "dataset", BuildOptions(max_samples_per_split=4))
    return root / "dataset"


def tiny_settings(steps: int, *extra: str) -> list[str]:
    settings = {"model.size": "tiny", "train.max_steps": steps, "train.save_every": 2, "train.log_every": 1,
                "train.warmup_steps": 1, "train.batch_size": 2, "train.grad_accum": 1, "train.lr": 3e-3,
                "train.tensorboard": "false", "train.progress": "false", "train.cpu": "true",
                # the recipe trains in bf16; accelerate keeps one precision per process, and the other test
                # modules train in fp32
                "train.mixed_precision": "no"}
    return [a for k, v in settings.items() for a in ("--set", f"{k}={v}")] + list(extra)


def initial_model(config: dict):
    """The model train() starts from: same seed, same rows, same builder."""
    from baselines.train import build_model_and_tokenizer
    from calico_baseline.data import read_rows
    from calico_baseline.train import set_seed

    set_seed(config["train"]["seed"])
    rows = read_rows(config["data"]["path"], config["data"]["split"], config["data"]["limit"])
    return build_model_and_tokenizer(config, rows)[0]


def test_train_lisa_recipe_resume_then_predict_and_score(dataset, tmp_path, capsys):
    out = tmp_path / "lisa-run"
    assert main(["train", "lisa", "--data", str(dataset), "--out", str(out), *tiny_settings(2)]) == 0
    summary = next(line for line in capsys.readouterr().out.splitlines() if "trainable parameters" in line)
    assert summary.startswith("Multi-Image LISA trainable parameters: ") and "Calico" not in summary
    assert (out / "checkpoints" / "step-2" / TRAINED_FILE).is_file()  # calico-train's checkpoint layout
    config = json.loads((out / "train_config.json").read_text())
    assert config["model"]["system"] == "lisa" and config["train"]["betas"] == [0.9, 0.95]

    # only the recipe's modules were saved as trained, and each of them moved; the frozen rest did not
    trained = load_file(str(out / "final" / TRAINED_FILE))
    base = load_file(str(out / "final" / BASE_FILE))
    for key in trained:
        assert "lora_" in key or any(m in key for m in RECIPE_MODULES), key
    assert not any(k.startswith(("visual.", "grounding_encoder.image_encoder", "grounding_encoder.prompt_encoder"))
                   for k in trained)
    assert any(k.startswith("visual.vision_tower.") for k in base) and any(k.startswith("visual.mm_projector.")
                                                                           for k in base)
    lora_targets = {k.split(".lora_A")[0].split(".")[-1] for k in trained if "lora_A" in k}
    assert lora_targets == {"q_proj", "v_proj"}
    start = initial_model(config).state_dict()
    for key, value in base.items():
        assert torch.equal(start[key], value), f"frozen {key} changed"
    for part in ("lora_B", *RECIPE_MODULES):
        assert any(not torch.equal(start[k], v) for k, v in trained.items() if part in k), f"{part} did not train"
    assert set(trained) | set(base) == set(start)

    # exact resume from the latest checkpoint
    capsys.readouterr()
    assert main(["train", "lisa", "--data", str(dataset), "--out", str(out), *tiny_settings(3), "--resume"]) == 0
    log = capsys.readouterr().out
    assert "resumed from" in log and "step-2" in log and "step 3:" in log and "step 1:" not in log

    # the saved folder runs as the lisa baseline and eval accepts its predictions
    predictions = tmp_path / "lisa.json"
    assert main(["lisa", "--data", str(dataset), "--out", str(predictions), "--model", str(out / "final"),
                 "--max-new-tokens", "6", "--batch-size", "2"]) == 0
    assert len(read_predictions(predictions).by_sample) == 4
    assert eval_main([str(predictions), "--data", str(dataset), "--split", "test"]) == 0


def test_train_glamm_from_an_official_layout_checkpoint_saves_only_the_trained_parts(dataset, tmp_path):
    from test_baselines_llava import official_state, tiny

    source, tokenizer, _ = tiny("glamm")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.01)
    save_file(official_state(source, "glamm"), str(tmp_path / "glamm.safetensors"))
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    out = tmp_path / "glamm-run"
    assert main(["train", "glamm", "--data", str(dataset), "--out", str(out), *tiny_settings(1),
                 "--set", f"model.checkpoint={tmp_path / 'glamm.safetensors'}",
                 "--set", f"model.tokenizer={tmp_path / 'tokenizer'}"]) == 0
    final = out / "final"
    assert not (final / BASE_FILE).exists()  # the frozen base is read again from the official file
    from baselines.multi_image_llava import load_model

    model, _ = load_model("glamm", final)
    trained = load_file(str(final / TRAINED_FILE))
    ours = model.state_dict()
    official = source.state_dict()
    for key, value in ours.items():
        if key in trained:
            assert torch.equal(value, trained[key])
        else:
            assert torch.equal(value, official[key]), f"frozen {key} is not the official weight"
    assert any(not torch.equal(trained[k], official[k]) for k in trained if "mask_decoder" in k)
    predictions = tmp_path / "glamm.json"
    assert main(["glamm", "--data", str(dataset), "--out", str(predictions), "--model", str(final),
                 "--max-new-tokens", "4", "--batch-size", "4"]) == 0
    assert eval_main([str(predictions), "--data", str(dataset), "--split", "test"]) == 0


def test_train_errors_are_clear(dataset, tmp_path, capsys):
    fp32 = ["--set", "train.mixed_precision=no"]  # the precision the other tests of this process set up
    assert main(["train", "lisa", "--data", str(dataset), "--out", str(tmp_path / "x"), *fp32]) == 2
    assert "model.tokenizer" in capsys.readouterr().err
    assert main(["train", "lisa", "--data", str(dataset), "--out", str(tmp_path / "x"), *fp32,
                 "--set", "model.size=huge"]) == 2
    assert "model.size" in capsys.readouterr().err


def test_recipe_defaults_are_the_repositories():
    """bf16 with gradient checkpointing (both train.py's), GLaMM's model_max_length 1536, LISA's raised to 1024."""
    from baselines.train import load_config

    glamm, lisa = load_config("glamm"), load_config("lisa")
    assert glamm["train"]["mixed_precision"] == "bf16" and glamm["train"]["gradient_checkpointing"] is True
    assert glamm["data"]["max_length"] == 1536 and lisa["data"]["max_length"] == 1024
    assert load_config("lisa", overrides=["train.mixed_precision=no"])["train"]["mixed_precision"] == "no"
