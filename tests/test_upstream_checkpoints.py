"""Every published checkpoint the model and the LISA/GLaMM baselines name, laid out by the upstream code
(:mod:`upstream_fixtures` says which file or class each layout comes from), loads with no missing and no
unexpected keys, the skipped non-parameter buffers listed, and its values land where they belong."""

from __future__ import annotations

import json

import pytest
import torch

import upstream_fixtures as fx
from calico_baseline.checkpoints import load_base_checkpoints, sizes_from_checkpoints
from calico_baseline.config import layered, preset
from calico_baseline.modeling import CalicoForCausalLM
from calico_baseline.tokenization import add_grounding_tokens, config_overrides

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The upstream-layout folders, written once: GLaMM, LISA, InstructBLIP, BLIP-2, DINOv2-giant, CLIP-224."""
    root = tmp_path_factory.mktemp("published")
    states = {"glamm": fx.glamm_folder(root / "GLaMM-GranD-Pretrained"),
              "lisa": fx.lisa_folder(root / "LISA-7B-v1")}
    models = {"instructblip": fx.blip2_folder(root / "instructblip-vicuna7b", instruct=True),
              "blip2": fx.blip2_folder(root / "blip2-opt-2.7b", instruct=False),
              "dino": fx.dinov2_folder(root / "dinov2-giant", "giant"),
              "clip": fx.clip_folder(root / "clip-vit-large-patch14", 224)}
    return root, states, models


def calico_bases(root, blip2="instructblip-vicuna7b"):
    return {"glamm": str(root / "GLaMM-GranD-Pretrained"), "blip2": str(root / blip2), "dino": str(root / "dinov2-giant")}


def calico_from(root, blip2="instructblip-vicuna7b"):
    from transformers import AutoTokenizer

    bases = calico_bases(root, blip2)
    tokenizer = AutoTokenizer.from_pretrained(bases["glamm"])
    config = preset("calico-7b", base_checkpoints=bases, **layered(sizes_from_checkpoints(bases),
                                                                      config_overrides(tokenizer)))
    return config, bases, tokenizer


# ----------------------------------------------------------------------------------------------- DINOv2
@pytest.mark.parametrize("variant", ["small", "base", "large", "giant"])
@pytest.mark.parametrize("grid", ["from config.json", "preset 224 px"])
def test_dinov2_hub_layout_loads_and_computes_what_transformers_computes(variant, grid, tmp_path):
    from transformers import Dinov2Model

    from calico_baseline.checkpoints import dino_sizes
    from calico_baseline.config import calico_tiny

    folder = tmp_path / f"dinov2-{variant}"
    fx.dinov2_folder(folder, variant)
    saved = set(json.loads((folder / "config.json").read_text()))
    assert "use_swiglu_ffn" in saved
    from safetensors.torch import load_file
    names = set(load_file(str(folder / "model.safetensors")))
    assert "encoder.layer.0.attention.attention.query.weight" in names  # the hub's names, not 5.x module names
    assert ("encoder.layer.0.mlp.weights_in.weight" in names) == (variant == "giant")
    assert tuple(load_file(str(folder / "model.safetensors"))["embeddings.position_embeddings"].shape)[1] == 1370

    sizes = dino_sizes(folder)
    if grid == "preset 224 px":  # the checkpoint's 37×37 grid must be interpolated to 16×16 at load time
        sizes = {**sizes, "image_size": 224}
    model = CalicoForCausalLM(calico_tiny(dino_config=sizes, vision_config={"image_size": 224, "patch_size": 14}))
    report = load_base_checkpoints(model, dino=folder)
    assert report["missing"] == [] and report["unexpected"] == []
    upstream = Dinov2Model.from_pretrained(folder).eval()
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours = model.dino.eval()(pixel_values=pixels).last_hidden_state
        theirs = upstream(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------- Calico
@pytest.mark.parametrize("blip2", ["instructblip-vicuna7b", "blip2-opt-2.7b"])
def test_calico_builds_from_the_folders_and_loads_every_weight(published, blip2):
    root, states, models = published
    config, bases, _ = calico_from(root, blip2)
    # sizes are the folders' own: the GLaMM config.json's rms_norm_eps (1e-6, not the preset's 1e-5), SAM read
    # off the weights, the EVA/Q-Former from the BLIP config.json, DINOv2 from its config.json
    assert config.text_config.rms_norm_eps == 1e-6 and config.text_config.num_hidden_layers == 3
    assert config.sam_config["encoder_embed_dim"] == 32 and config.sam_config["image_size"] == 1024
    assert config.vision_config.hidden_size == 176 and config.num_query_tokens == 32
    assert config.dino_config.use_swiglu_ffn and config.dino_config.image_size == 518
    assert config.cam_layers == [1, 2]

    model = CalicoForCausalLM(config)
    report = load_base_checkpoints(model, **bases)
    assert report["missing"] == [] and report["unexpected"] == []
    assert sorted(report["ignored"]) == sorted(
        [f"model.layers.{i}.self_attn.rotary_emb.inv_freq" for i in range(3)]
        + ["model.vision_tower.vision_tower.vision_model.embeddings.position_ids"])
    assert "model.region_encoder.roi_align.updims.weight" in report["unused"]
    assert "model.mm_projector.0.weight" in report["unused"]
    own, glamm = model.state_dict(), states["glamm"]
    q = [k for k in own if k.endswith("layers.1.self_attn.q_proj.base_layer.weight")][0]
    assert torch.equal(own[q], glamm["model.layers.1.self_attn.q_proj.weight"])
    assert torch.equal(own["grounding_encoder.image_encoder.pos_embed"], glamm["model.grounding_encoder.image_encoder.pos_embed"])
    assert torch.equal(own["text_hidden_fcs.0.2.weight"], glamm["model.text_hidden_fcs.0.2.weight"])
    reference = models["instructblip" if blip2.startswith("instruct") else "blip2"]
    assert torch.equal(own["visual.query_tokens"], reference.query_tokens.detach())
    assert torch.equal(own["visual.language_projection.weight"], reference.language_projection.weight.detach())
    dino = models["dino"].state_dict()
    gate, up = dino["encoder.layer.1.mlp.gate_proj.weight"], dino["encoder.layer.1.mlp.up_proj.weight"]
    assert torch.equal(own["dino.encoder.layer.1.mlp.gate_proj.weight"], gate)
    assert torch.equal(own["dino.encoder.layer.1.mlp.up_proj.weight"], up)


def test_calico_low_memory_build_from_the_folders_is_strict_and_bf16(published):
    root, states, _ = published
    config, _, _ = calico_from(root)
    model, report = CalicoForCausalLM.from_base_checkpoints(config, dtype=torch.bfloat16, trainable_dtype=torch.float32)
    assert report["missing"] == [] and report["unexpected"] == [] and len(report["ignored"]) == 4
    assert not any(p.is_meta for p in model.parameters())
    own = model.state_dict()
    assert own["grounding_encoder.image_encoder.patch_embed.proj.weight"].dtype == torch.bfloat16
    assert own["grounding_encoder.mask_decoder.iou_token.weight"].dtype == torch.float32  # trained: fp32 master
    torch.testing.assert_close(own["text_hidden_fcs.0.0.weight"].float(),
                               states["glamm"]["model.text_hidden_fcs.0.0.weight"], rtol=1e-2, atol=1e-3)


def test_frozen_vision_path_is_deterministic_while_training(published):
    root, _, _ = published
    config, bases, _ = calico_from(root)
    assert config.qformer_config.hidden_dropout_prob == 0.1  # InstructBLIP's Q-Former keeps BERT's dropout
    model = CalicoForCausalLM(config)
    load_base_checkpoints(model, **bases)
    model.train()
    assert not model.visual.training and not model.dino.training
    assert not model.grounding_encoder.image_encoder.training and not model.text_hidden_fcs.training
    assert model.cem.training and model.cams.training and model.grounding_encoder.mask_decoder.training
    assert model.llm.training  # LoRA dropout and gradient checkpointing need it
    pixels, dino = torch.randn(2, 3, 224, 224), torch.randn(2, 3, 224, 224)
    image_sample = torch.tensor([0, 0])
    first = model.encode_images(pixels, dino, image_sample)
    second = model.encode_images(pixels, dino, image_sample)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    model.eval()
    assert not model.cem.training and not model.llm.training


# ----------------------------------------------------------------------------------------------- LISA / GLaMM
def test_lisa_tokenizer_gains_the_phrase_tokens_in_glamm_order(published):
    from transformers import AutoTokenizer

    root, _, _ = published
    tokenizer = AutoTokenizer.from_pretrained(root / "LISA-7B-v1")
    base = len(tokenizer) - 3
    assert tokenizer.convert_tokens_to_ids(["[SEG]", "<im_start>", "<im_end>"]) == [base, base + 1, base + 2]
    assert add_grounding_tokens(tokenizer) == ["<p>", "</p>"]
    assert tokenizer.convert_tokens_to_ids(["<p>", "</p>"]) == [base + 3, base + 4]
    assert tokenizer.pad_token == tokenizer.unk_token  # as LISA/GLaMM set it
    glamm = AutoTokenizer.from_pretrained(root / "GLaMM-GranD-Pretrained")
    assert add_grounding_tokens(glamm) == []
    g = len(glamm) - 7
    assert glamm.convert_tokens_to_ids(["<im_start>", "<im_end>", "<bbox>", "<point>", "[SEG]", "<p>", "</p>"]) \
        == list(range(g, g + 7))


def test_lisa_with_a_separate_clip_file_loads_strictly_and_grows_the_vocabulary(published):
    from transformers import AutoTokenizer

    from baselines.multi_image_llava import build_official

    root, states, models = published
    tokenizer = AutoTokenizer.from_pretrained(root / "LISA-7B-v1")
    add_grounding_tokens(tokenizer)
    model, report = build_official("lisa", root / "LISA-7B-v1", root / "clip-vit-large-patch14", tokenizer)
    assert report["missing"] == [] and report["unexpected"] == []
    assert "vision_model.embeddings.position_ids" in report["ignored"]  # the CLIP file's pre-4.31 buffer
    assert "model.layers.0.self_attn.rotary_emb.inv_freq" in report["ignored"]
    assert any(k.startswith("text_model.") for k in report["unused"])
    assert sorted(report["resized"]) == ["language_model.base_model.model.lm_head.weight",
                                         "language_model.base_model.model.model.embed_tokens.weight"]
    lisa = states["lisa"]
    rows = lisa["model.embed_tokens.weight"]
    embed = model.llm.model.embed_tokens.weight.detach()
    assert embed.shape[0] == len(tokenizer) == rows.shape[0] + 2
    assert torch.equal(embed[: rows.shape[0]], rows)
    torch.testing.assert_close(embed[-1], rows.mean(0))  # LLaVA's initialize_vision_tokenizer: mean of old rows
    assert model.llm.model.embed_tokens.weight.requires_grad and model.llm.lm_head.weight.requires_grad
    assert model.config.vision_config.image_size == 224 and model.config.visual_tokens_per_image == 256
    assert model.config.mm_projector_type == "linear" and model.config.mask_loss == "bce"
    clip = models["clip"].state_dict()
    tower = model.visual.vision_tower.state_dict()
    assert torch.equal(tower["encoder.layers.2.mlp.fc1.weight"], clip["vision_model.encoder.layers.2.mlp.fc1.weight"])
    assert torch.equal(model.grounding_encoder.mask_decoder.iou_token.weight.detach(),
                       lisa["model.visual_model.mask_decoder.iou_token.weight"])


def test_glamm_with_its_own_tower_loads_strictly_in_bf16_on_the_meta_device(published):
    from transformers import AutoTokenizer

    from baselines.multi_image_llava import build_official

    root, states, _ = published
    tokenizer = AutoTokenizer.from_pretrained(root / "GLaMM-GranD-Pretrained")
    model, report = build_official("glamm", root / "GLaMM-GranD-Pretrained", None, tokenizer, dtype=torch.bfloat16)
    assert report["missing"] == [] and report["unexpected"] == [] and report["resized"] == []
    assert "model.vision_tower.vision_tower.vision_model.embeddings.position_ids" in report["ignored"]
    assert all(k.startswith("model.region_encoder.") for k in report["unused"])
    assert model.config.vision_config.image_size == 336 and model.config.visual_tokens_per_image == 576
    assert model.config.mm_projector_type == "mlp2x_gelu"
    assert not any(p.is_meta for p in model.parameters())
    assert model.llm.model.embed_tokens.weight.dtype == torch.bfloat16
    glamm = states["glamm"]
    torch.testing.assert_close(model.visual.mm_projector[2].weight.float(), glamm["model.mm_projector.2.weight"],
                               rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(model.visual.vision_tower.state_dict()["embeddings.position_embedding.weight"].float(),
                               glamm["model.vision_tower.vision_tower.vision_model.embeddings.position_embedding.weight"],
                               rtol=1e-2, atol=1e-3)


# ----------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def published_small_sam(tmp_path_factory):
    """GLaMM and LISA folders as above with SAM at 128 px (bf16 on a CPU without bf16 instructions would take
    minutes at 1024), beside the same InstructBLIP, DINOv2 and CLIP files."""
    root = tmp_path_factory.mktemp("published-small-sam")
    fx.glamm_folder(root / "GLaMM-GranD-Pretrained", sam_image_size=128)
    fx.lisa_folder(root / "LISA-7B-v1", sam_image_size=128)
    fx.blip2_folder(root / "instructblip-vicuna7b", instruct=True)
    fx.dinov2_folder(root / "dinov2-giant", "giant")
    fx.clip_folder(root / "clip-vit-large-patch14", 224)
    return root


@pytest.fixture(scope="module")
def dataset(build_tiny, tmp_path_factory):
    from mixedparts.build.options import BuildOptions

    root = tmp_path_factory.mktemp("upstream-data")
    build_tiny(root / "dataset", BuildOptions(max_samples_per_split=4))
    return root / "dataset"


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process: let a test choose bf16, then restore the default."""
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_calico_train_on_the_published_folders_alone_then_predict_in_bf16_and_score(published_small_sam, dataset,
                                                                                      tmp_path, capsys,
                                                                                      fresh_accelerator_state):
    """A config whose model section names only checkpoint folders (no preset, no sizes) trains and predicts."""
    import yaml

    from calico_baseline import predict, train
    from mixedparts.metrics.cli import main as eval_main
    from mixedparts.predictions import read_predictions

    root = published_small_sam
    bases = calico_bases(root)
    config = {"model": {"tokenizer": bases["glamm"], "base_checkpoints": bases},
              "data": {"path": str(dataset), "split": "train", "limit": 2},
              "train": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 1, "grad_accum": 1,
                        "warmup_steps": 1, "save_every": 2, "log_every": 1, "progress": False,
                        "tensorboard": False, "cpu": True}}
    (tmp_path / "calico.yaml").write_text(yaml.safe_dump(config))
    assert train.main(["--config", str(tmp_path / "calico.yaml")]) == 0
    said = capsys.readouterr().err  # what the strict load skipped, said in one line
    assert "ignored non-parameter buffers of older transformers: inv_freq ×3, position_ids ×1" in said
    final = tmp_path / "run" / "final"
    saved = json.loads((final / "config.json").read_text())
    assert saved["text_config"]["rms_norm_eps"] == 1e-6 and saved["sam_config"]["encoder_embed_dim"] == 32
    assert saved["sam_config"]["image_size"] == 128 and saved["sam_config"]["window_size"] == 4
    assert not (final / "calico_base.safetensors").exists()  # the frozen base stays in the published folders
    out = tmp_path / "calico.json"
    assert predict.main(["--checkpoint", str(final), "--data", str(dataset), "--split", "test", "--out", str(out),
                         "--limit", "1", "--max-new-tokens", "4", "--dtype", "bf16", "--device", "cpu",
                         "--quiet"]) == 0
    assert len(read_predictions(out).by_sample) == 1
    assert eval_main([str(out), "--data", str(dataset), "--split", "test"]) == 0


@pytest.mark.parametrize("system", ["lisa", "glamm"])
def test_baseline_train_on_the_published_folder_then_predict_in_bf16_and_score(system, published_small_sam, dataset,
                                                                             tmp_path, fresh_accelerator_state):
    """``mixedparts-baseline train lisa|glamm`` on the published layout (LISA's own tokenizer, its CLIP from the
    separate CLIPModel file; GLaMM's tower inside its checkpoint), the recipe's bf16 weights, then
    ``mixedparts-baseline lisa|glamm --dtype bf16`` and ``mixedparts-eval``."""
    from safetensors.torch import load_file

    from baselines.cli import main
    from calico_baseline.checkpoints import TRAINED_FILE
    from mixedparts.metrics.cli import main as eval_main

    root = published_small_sam
    folder = root / ("LISA-7B-v1" if system == "lisa" else "GLaMM-GranD-Pretrained")
    settings = {"model.checkpoint": folder, "train.max_steps": 2, "train.save_every": 2, "train.log_every": 1,
                "train.warmup_steps": 1, "train.batch_size": 1, "train.grad_accum": 1, "data.limit": 2,
                "train.tensorboard": "false", "train.progress": "false", "train.cpu": "true",
                # the recipe's bf16 weights and autocast are emulated on this CPU: train in fp32 here (bf16
                # loading is tested above), predict in bf16
                "model.dtype": "fp32", "train.mixed_precision": "no"}
    if system == "lisa":
        settings["model.clip"] = root / "clip-vit-large-patch14"
    args = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    out = tmp_path / f"{system}-run"
    assert main(["train", system, "--data", str(dataset), "--out", str(out), *args]) == 0
    trained = load_file(str(out / "final" / TRAINED_FILE))
    assert any("embed_tokens" in k for k in trained) and all(v.dtype == torch.float32 for v in trained.values())
    if system == "lisa":  # LISA's tokenizer gained <p> and </p>: two more embedding rows than the checkpoint
        from transformers import AutoTokenizer
        assert trained["language_model.base_model.model.model.embed_tokens.weight"].shape[0] == \
            len(AutoTokenizer.from_pretrained(folder)) + 2
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["mask_loss"] == "bce" and config["text_config"]["rms_norm_eps"] == 1e-6
    predictions = tmp_path / f"{system}.json"
    assert main([system, "--data", str(dataset), "--out", str(predictions), "--model", str(out / "final"),
                 "--limit", "1", "--max-new-tokens", "4", "--dtype", "bf16", "--device", "cpu"]) == 0
    assert eval_main([str(predictions), "--data", str(dataset), "--split", "test"]) == 0


def test_glamm_without_its_tower_takes_the_separate_clip_336_file(tmp_path):
    from transformers import AutoTokenizer

    from baselines.multi_image_llava import build_official

    fx.glamm_folder(tmp_path / "GLaMM-GranD-Pretrained", with_tower=False, sam_image_size=128)
    clip = fx.clip_folder(tmp_path / "clip-vit-large-patch14-336", 336)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "GLaMM-GranD-Pretrained")
    model, report = build_official("glamm", tmp_path / "GLaMM-GranD-Pretrained", tmp_path / "clip-vit-large-patch14-336",
                                   tokenizer)
    assert report["missing"] == [] and report["unexpected"] == [] and report["resized"] == []
    assert "vision_model.embeddings.position_ids" in report["ignored"]
    assert model.config.vision_config.image_size == 336 and model.config.visual_tokens_per_image == 576
    assert torch.equal(model.visual.vision_tower.state_dict()["embeddings.class_embedding"],
                       clip.state_dict()["vision_model.embeddings.class_embedding"])
