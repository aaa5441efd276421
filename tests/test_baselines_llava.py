"""Multi-Image LISA / GLaMM: token counts, official key layouts, one training step, scorable predictions."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from baselines.multi_image_llava import (MultiImageLlavaForCausalLM, baseline_config, load_official)
from calico_baseline.config import calico_tiny
from calico_baseline.data import CalicoProcessor
from calico_baseline.generation import predict_batch
from calico_baseline.testing import synthetic_sample
from calico_baseline.tokenization import build_tiny_tokenizer, config_overrides
from mixedparts.metrics.cli import main as eval_main
from mixedparts.metrics.ground_truth import write_ground_truth
from mixedparts.predictions import write_predictions

TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
             "image_size": 28, "patch_size": 14}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny(system: str):
    rows = [synthetic_sample(i)[0] for i in range(2)]
    tokenizer = build_tiny_tokenizer([r["question"] for r in rows] + [r["answer"] for r in rows], vocab_size=400)
    tok = config_overrides(tokenizer)
    base = calico_tiny(**tok).to_dict()
    config = baseline_config(system, vision_config=TINY_CLIP, text_config=base["text_config"],
                             sam_config=base["sam_config"], seg_token_id=tok["seg_token_id"], lora_dropout=0.0,
                             **{k: v for k, v in tok.items() if k not in ("text_config", "seg_token_id")})
    torch.manual_seed(0)
    return MultiImageLlavaForCausalLM(config), tokenizer, CalicoProcessor(tokenizer, config)


def batch_of(processor, train=True, n=2):
    features = [processor(*synthetic_sample(i), train=train) for i in range(n)]
    return processor.collate(features)


def test_token_counts_and_trainable_budget_at_full_size():
    assert baseline_config("lisa").visual_tokens_per_image == 256
    assert baseline_config("glamm").visual_tokens_per_image == 576
    with torch.device("meta"):
        model = MultiImageLlavaForCausalLM(baseline_config("glamm"))
    trainable = sum(p.numel() for p in model.trainable_parameters().values())
    assert 280e6 < trainable < 300e6  # LoRA + mask decoder + text_hidden_fcs + lm_head + embed_tokens
    assert not any(n.startswith(("visual.", "grounding_encoder.image_encoder")) for n in model.trainable_parameters())
    assert not hasattr(model, "cams") and not hasattr(model, "cem") and not hasattr(model.visual, "qformer")


def official_state(model, system: str) -> dict:
    """A checkpoint with the official key layout, made from a second model's weights."""
    state = {}
    for key, value in model.state_dict().items():
        if "lora_" in key:
            continue
        value = value.clone()
        if key.startswith("visual.vision_tower."):
            inner = key[len("visual.vision_tower."):]
            inner = inner if inner.startswith("vision_model.") else "vision_model." + inner
            state["model.vision_tower.vision_tower." + inner] = value
        elif key.startswith("visual.mm_projector."):
            state["model.mm_projector." + key[len("visual.mm_projector."):]] = value
        elif key.startswith("grounding_encoder."):
            prefix = "model.visual_model." if system == "lisa" else "model.grounding_encoder."
            state[prefix + key[len("grounding_encoder."):]] = value
        elif key.startswith("text_hidden_fcs."):
            state["model." + key] = value
        elif key.startswith("language_model.base_model.model."):
            state[key[len("language_model.base_model.model."):].replace(".base_layer.", ".")] = value
        else:
            raise AssertionError(key)
    if system == "glamm":
        state["model.region_encoder.mlvl_fuse.weight"] = torch.zeros(2)
    return state


@pytest.mark.parametrize("system", ["lisa", "glamm"])
def test_official_key_layout_loads_every_weight(system, tmp_path):
    source, _, _ = tiny(system)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.01)
    path = tmp_path / "model.safetensors"
    save_file(official_state(source, system), str(path))
    target, _, _ = tiny(system)
    report = load_official(target, path)
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["unused"] == (["model.region_encoder.mlvl_fuse.weight"] if system == "glamm" else [])
    ours = target.state_dict()
    for key, value in source.state_dict().items():
        if "lora_" not in key:
            assert torch.equal(ours[key], value), key
    kind = torch.nn.Linear if system == "lisa" else torch.nn.Sequential
    assert isinstance(target.visual.mm_projector, kind)


def test_one_training_step_then_predictions_eval_accepts(tmp_path):
    model, tokenizer, processor = tiny("lisa")
    assert processor.per_image == 4  # (28 / 14)^2 patch tokens per image
    batch = batch_of(processor)
    model.train()
    out = model(**batch)
    assert out.num_masks == 4 and torch.isfinite(out.loss)
    before = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
    optimizer = torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-3)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.trainable_parameters().items()}
    for part in ("lora_B", "mask_decoder", "text_hidden_fcs", "lm_head", "embed_tokens"):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if part in n), part
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    assert all(not p.requires_grad for p in model.visual.parameters())
    optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in model.trainable_parameters().items())

    model.eval()
    with torch.no_grad():
        predictions = predict_batch(model, tokenizer, batch_of(processor, train=False), max_new_tokens=6)
    rows = [synthetic_sample(i)[0] for i in range(2)]
    for row in rows:
        row["split"] = "test"
    gt = write_ground_truth(rows, tmp_path / "gt.jsonl", split="test")
    path = write_predictions(tmp_path / "lisa.json", predictions, model="multi-image-lisa-tiny", split="test")
    assert eval_main([str(path), "--gt", str(gt), "--split", "test"]) == 0


def test_separate_clip_checkpoint_supplies_the_tower(tmp_path):
    source, _, _ = tiny("glamm")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.02)
    official = official_state(source, "glamm")
    clip = {"vision_model." + k[len("model.vision_tower.vision_tower.vision_model."):]: official.pop(k)
            for k in list(official) if k.startswith("model.vision_tower.")}
    clip.update({"text_model.embeddings.token_embedding.weight": torch.zeros(3, 2), "logit_scale": torch.ones(())})
    save_file(official, str(tmp_path / "glamm.safetensors"))
    save_file(clip, str(tmp_path / "clip.safetensors"))
    target, _, _ = tiny("glamm")
    with pytest.raises(ValueError, match="missing"):
        load_official(target, tmp_path / "glamm.safetensors")
    report = load_official(target, tmp_path / "glamm.safetensors", clip=tmp_path / "clip.safetensors")
    assert report["missing"] == [] and "logit_scale" in report["unused"]
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items() if "lora_" not in k)


def test_runner_predicts_with_a_saved_tiny_model(build_tiny, tmp_path):
    from baselines.cli import main
    from mixedparts.build.options import BuildOptions
    from mixedparts.predictions import read_predictions

    model, tokenizer, _ = tiny("glamm")
    model.save_pretrained(tmp_path / "glamm-tiny")
    tokenizer.save_pretrained(tmp_path / "glamm-tiny")
    from baselines.multi_image_llava import load_model

    loaded, _ = load_model("glamm", tmp_path / "glamm-tiny")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    build_tiny(tmp_path / "dataset", BuildOptions(max_samples_per_split=3))
    out = tmp_path / "glamm.json"
    assert main(["lisa", "--data", str(tmp_path / "dataset"), "--out", str(out), "--model",
                 str(tmp_path / "glamm-tiny")]) == 2  # a GLaMM folder is refused as LISA
    assert main(["glamm", "--data", str(tmp_path / "dataset"), "--out", str(out), "--model",
                 str(tmp_path / "glamm-tiny"), "--max-new-tokens", "6", "--batch-size", "2"]) == 0
    assert len(read_predictions(out).by_sample) == 3
    assert eval_main([str(out), "--data", str(tmp_path / "dataset"), "--split", "test"]) == 0
