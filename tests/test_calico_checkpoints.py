"""Real-checkpoint key maps (GLaMM, BLIP-2, InstructBLIP, DINOv2) on tiny checkpoints written with the real key
names and layouts, and save_pretrained/from_pretrained of the trained parts only."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from calico_baseline.checkpoints import TRAINED_FILE, load_base_checkpoints, read_state_dict
from calico_baseline.modeling import CalicoForCausalLM

from calico_baseline.testing import synthetic_sample, tiny_setup
from upstream_fixtures import write_shards


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def write_sharded(state: dict, folder, shards: int = 2) -> None:
    write_shards(state, folder, shards, safetensors=True)


def glamm_state(model) -> dict:
    """A GLaMM checkpoint's layout: LlamaForCausalLM keys (model.*, lm_head), model.grounding_encoder.*,
    model.text_hidden_fcs.*, plus the CLIP projector and region encoder Calico does not use."""
    from transformers import LlamaForCausalLM
    llm = LlamaForCausalLM(model.config.text_config)
    state = {k: torch.randn_like(v) for k, v in llm.state_dict().items()}
    state.update({f"model.grounding_encoder.{k}": torch.randn_like(v.float())
                  for k, v in model.grounding_encoder.state_dict().items()})
    state.update({f"model.text_hidden_fcs.{k}": torch.randn_like(v) for k, v in model.text_hidden_fcs.state_dict().items()})
    state["model.mm_projector.0.weight"] = torch.zeros(4, 4)
    state["model.region_encoder.mlvl_fuse.0.weight"] = torch.zeros(2)
    return state


def blip2_folder(model, folder, instruct: bool = False):
    """A transformers-format BLIP-2 / InstructBLIP checkpoint, saved sharded by save_pretrained."""
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, InstructBlipConfig,
                              InstructBlipForConditionalGeneration, OPTConfig)
    c = model.config
    vision, qformer = c.vision_config.to_dict(), c.qformer_config.to_dict()
    if instruct:
        config = InstructBlipConfig(vision_config=vision, qformer_config=qformer, num_query_tokens=c.num_query_tokens,
                                    text_config=c.text_config.to_dict())
        reference = InstructBlipForConditionalGeneration(config)
    else:
        config = Blip2Config(vision_config=vision, qformer_config=qformer, num_query_tokens=c.num_query_tokens,
                             text_config=OPTConfig(vocab_size=50, hidden_size=c.text_config.hidden_size,
                                                   ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                                                   word_embed_proj_dim=c.text_config.hidden_size).to_dict())
        reference = Blip2ForConditionalGeneration(config)
    reference.save_pretrained(folder, max_shard_size="200KB")
    return reference


def dino_folder(model, folder):
    from transformers import Dinov2Model
    reference = Dinov2Model(copy.deepcopy(model.config.dino_config))  # its save_pretrained writes into its config
    reference.save_pretrained(folder)
    return reference


@pytest.mark.parametrize("instruct", [False, True])
def test_real_layouts_load_with_no_missing_or_unexpected_keys(tmp_path, instruct):
    model, _, _ = tiny_setup()
    glamm = glamm_state(model)
    write_sharded(glamm, tmp_path / "glamm")
    blip = blip2_folder(model, tmp_path / "blip2", instruct)
    assert (tmp_path / "blip2" / "model.safetensors.index.json").is_file()
    dino = dino_folder(model, tmp_path / "dino")
    report = load_base_checkpoints(model, glamm=tmp_path / "glamm", blip2=tmp_path / "blip2", dino=tmp_path / "dino")
    assert report["missing"] == [] and report["unexpected"] == []
    assert "model.mm_projector.0.weight" in report["unused"]
    assert any(k.startswith("language_model.") for k in report["unused"])  # BLIP-2's own LLM
    own = model.state_dict()
    lm = [k for k in own if k.endswith("layers.0.self_attn.q_proj.base_layer.weight")][0]
    assert torch.equal(own[lm], glamm["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(own["grounding_encoder.mask_decoder.iou_token.weight"],
                       glamm["model.grounding_encoder.mask_decoder.iou_token.weight"])
    assert torch.equal(own["visual.query_tokens"], blip.query_tokens.detach())
    assert torch.equal(own["visual.language_projection.weight"], blip.language_projection.weight.detach())
    assert torch.equal(own["dino.embeddings.cls_token"], dino.embeddings.cls_token.detach())
    assert torch.equal(model.cams["1"].queries, blip.query_tokens.detach())  # CAM queries start from BLIP-2's


def test_raw_sam_and_missing_keys_are_reported(tmp_path):
    model, _, _ = tiny_setup()
    sam = {k: v.clone() for k, v in model.grounding_encoder.state_dict().items()}
    torch.save(sam, tmp_path / "sam_vit_tiny.pth")
    mapped = read_state_dict(tmp_path / "sam_vit_tiny.pth")
    assert set(mapped) == set(sam)
    with pytest.raises(ValueError, match="missing"):
        load_base_checkpoints(model, glamm=tmp_path / "sam_vit_tiny.pth")  # SAM alone lacks the LLM


def test_save_pretrained_stores_only_trained_parts_and_round_trips(tmp_path):
    model, tokenizer, processor = tiny_setup()
    with torch.no_grad():  # pretend training moved the trained parts
        for name, p in model.trainable_parameters().items():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    batch = processor.collate([processor(*synthetic_sample(i)) for i in range(2)])
    with torch.no_grad():
        before = model(**batch)
    # with base checkpoints named in the config, only the trained parts are written
    write_sharded(glamm_state(model), tmp_path / "glamm")
    blip2_folder(model, tmp_path / "blip2")
    dino_folder(model, tmp_path / "dino")
    bases = {"glamm": str(tmp_path / "glamm"), "blip2": str(tmp_path / "blip2"), "dino": str(tmp_path / "dino")}
    load_base_checkpoints(model, **bases)
    model.config.base_checkpoints = bases
    with torch.no_grad():
        before = model(**batch)
    model.save_pretrained(tmp_path / "trained")
    tokenizer.save_pretrained(tmp_path / "trained")
    files = sorted(p.name for p in (tmp_path / "trained").iterdir())
    assert TRAINED_FILE in files and "calico_base.safetensors" not in files
    stored = read_state_dict(tmp_path / "trained" / TRAINED_FILE)
    assert set(stored) == set(model.trainable_parameters())
    again = CalicoForCausalLM.from_pretrained(tmp_path / "trained")
    with torch.no_grad():
        after = again(**batch)
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.loss, after.loss)


# ---------------------------------------------------------------- low-memory build (meta device → bf16)
class Fp32Allocations(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the elements of every fp32 CPU tensor any op produces (parameters built eagerly, casts, copies)."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu":
                self.elements += t.numel()
        return out


def base_folders(model, tmp_path, dtype=None) -> dict:
    """GLaMM (sharded), BLIP-2 (transformers, sharded) and DINOv2 checkpoints with the real key names; with ``dtype``
    every tensor is stored in that dtype (as the released bf16/fp16 checkpoints)."""
    write_sharded(glamm_state(model), tmp_path / "glamm")
    blip2_folder(model, tmp_path / "blip2")
    dino_folder(model, tmp_path / "dino")
    bases = {k: tmp_path / k for k in ("glamm", "blip2", "dino")}
    if dtype is None:
        return {k: str(v) for k, v in bases.items()}
    out = {}
    for kind, folder in bases.items():
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in read_state_dict(folder).items()}
        write_sharded(state, tmp_path / f"{kind}-{dtype}".replace("torch.", ""))
        out[kind] = str(tmp_path / f"{kind}-{dtype}".replace("torch.", ""))
    return out


def test_low_memory_build_matches_the_eager_build(tmp_path):
    model, _, processor = tiny_setup()
    bases = base_folders(model, tmp_path)
    load_base_checkpoints(model, **bases)
    model.eval()
    batch = processor.collate([processor(*synthetic_sample(i)) for i in range(2)])
    with torch.no_grad():
        eager = model(**batch)
    model.config.base_checkpoints = bases
    low, report = CalicoForCausalLM.from_base_checkpoints(model.config, dtype=torch.float32)
    low.eval()
    assert report["missing"] == [] and report["unexpected"] == []
    assert not any(p.is_meta for p in low.parameters()) and not any(b.is_meta for b in low.buffers())
    assert set(low.trainable_parameters()) == set(model.trainable_parameters())
    # fresh parts start as the identity in both builds: LoRA B, CEM output and CAM linears at zero
    for name, p in low.named_parameters():
        if "lora_B" in name or name.startswith("cem.attention.out_proj") or ".linear_" in name:
            assert not p.any(), name
            assert not dict(model.named_parameters())[name].any(), name
    with torch.no_grad():
        out = low(**batch)
    assert torch.equal(out.logits, eager.logits)
    assert torch.allclose(out.loss, eager.loss, rtol=1e-6)


def test_low_memory_build_loads_bf16_without_an_fp32_copy(tmp_path):
    model, tokenizer, processor = tiny_setup()
    bases = base_folders(model, tmp_path, torch.bfloat16)
    model.config.base_checkpoints = bases
    n_params = sum(p.numel() for p in model.parameters())
    eager_spy = Fp32Allocations()
    with eager_spy:  # the spy sees the eager build's fp32 parameters
        CalicoForCausalLM(model.config)
    assert eager_spy.elements >= n_params
    spy = Fp32Allocations()
    with spy:
        low, report = CalicoForCausalLM.from_base_checkpoints(model.config, dtype=torch.bfloat16)
    assert report["missing"] == [] and report["unexpected"] == []
    assert spy.elements < 0.01 * n_params  # only the rotary frequencies and SAM's pixel statistics
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    assert sum(p.numel() for p in low.parameters()) == n_params
    # trainable parts can be kept in fp32 (master weights under autocast)
    mixed, _ = CalicoForCausalLM.from_base_checkpoints(model.config, dtype=torch.bfloat16,
                                                        trainable_dtype=torch.float32)
    assert {p.dtype for p in mixed.trainable_parameters().values()} == {torch.float32}
    assert {p.dtype for n, p in mixed.named_parameters() if not p.requires_grad} == {torch.bfloat16}
    # it runs (CPU autocast) and from_pretrained(dtype=bf16) rebuilds the same way
    batch = processor.collate([processor(*synthetic_sample(i)) for i in range(2)])
    low.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = low(**batch)
    assert torch.isfinite(out.loss)
    low.save_pretrained(tmp_path / "trained")
    again = CalicoForCausalLM.from_pretrained(tmp_path / "trained", dtype=torch.bfloat16)
    assert {p.dtype for p in again.parameters()} == {torch.bfloat16}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(again(**batch).logits, out.logits)


# ---------------------------------------------------------------- the PreTrainedModel contract of save/load
SAVED_BEFORE = Path(__file__).parent / "data" / "saved_before_subconfigs"
# config.json (and every tensor's shape) written by calico_baseline at d3e8c3b, whose sub-configs were dicts of
# sizes: calico-tiny as tiny_setup() builds it (with base checkpoint paths), Multi-Image LISA as the tiny of
# tests/test_baselines_llava.py (no base checkpoints: its frozen base is saved beside it)


def perturbed(model):
    with torch.no_grad():  # as if training had moved the trained parts
        for p in model.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def test_a_run_saved_before_sub_config_objects_loads_with_its_old_config_json(tmp_path):
    from transformers import Blip2QFormerConfig, Blip2VisionConfig, Dinov2Config, LlamaConfig

    from calico_baseline.config import CalicoConfig

    old = json.loads((SAVED_BEFORE / "calico-tiny" / "config.json").read_text())
    config = CalicoConfig.from_pretrained(SAVED_BEFORE / "calico-tiny")
    assert [type(config.vision_config), type(config.qformer_config), type(config.dino_config),
            type(config.text_config)] == [Blip2VisionConfig, Blip2QFormerConfig, Dinov2Config, LlamaConfig]
    assert config.qformer_config.encoder_hidden_size == old["vision_config"]["hidden_size"]
    torch.manual_seed(0)
    model = perturbed(CalicoForCausalLM(config))
    shapes = json.loads((SAVED_BEFORE / "calico-tiny" / "shapes.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes  # the same architecture
    bases = base_folders(model, tmp_path)
    model.config.base_checkpoints = bases
    model.load_base_checkpoints()
    model.save_pretrained(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["text_config"]["model_type"] == "llama" and saved["text_config"]["hidden_size"] == 64
    (tmp_path / "run" / "config.json").write_text(json.dumps({**old, "base_checkpoints": bases}))
    again = CalicoForCausalLM.from_pretrained(tmp_path / "run")
    assert again.config.to_dict() == {**model.config.to_dict(), "transformers_version": old["transformers_version"]}
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_baseline_saved_before_sub_config_objects_loads_as_its_own_class(tmp_path):
    from baselines.errors import BaselineError
    from baselines.multi_image_llava import MultiImageLlavaForCausalLM, load_model
    from calico_baseline.config import CalicoConfig

    config = CalicoConfig.from_pretrained(SAVED_BEFORE / "lisa-tiny")
    torch.manual_seed(0)
    model = perturbed(MultiImageLlavaForCausalLM(config))
    shapes = json.loads((SAVED_BEFORE / "lisa-tiny" / "shapes.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    model.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "calico_base.safetensors").is_file()
    (tmp_path / "run" / "config.json").write_text((SAVED_BEFORE / "lisa-tiny" / "config.json").read_text())
    again = MultiImageLlavaForCausalLM.from_pretrained(tmp_path / "run")
    assert type(again) is MultiImageLlavaForCausalLM and again.config.baseline == "lisa"
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    (tmp_path / "run" / "calico_base.safetensors").unlink()
    with pytest.raises(BaselineError, match=r"pass --checkpoint \(and --clip\) for the frozen base"):
        load_model("lisa", tmp_path / "run")


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    """A calico-tiny run as save_pretrained writes it without base checkpoints (its frozen base beside it)."""
    model, _, _ = tiny_setup()
    path = tmp_path_factory.mktemp("calico") / "run"
    perturbed(model).save_pretrained(path)
    return model, path


def test_from_pretrained_takes_transformers_arguments(saved_tiny, capsys):
    model, path = saved_tiny
    # keyword arguments that are config attributes override config.json; the rest go to the model's __init__
    again = CalicoForCausalLM.from_pretrained(path, mask_loss="bce", verbose=True)
    assert again.config.mask_loss == "bce" and "trainable parameters" in capsys.readouterr().out
    assert not again.training and all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    # a config object replaces config.json and is not changed by the load
    config = copy.deepcopy(model.config)
    again = CalicoForCausalLM.from_pretrained(path, config=config, base_checkpoints={"glamm": "/elsewhere"})
    assert again.config.base_checkpoints == {"glamm": "/elsewhere"} and config.base_checkpoints == {}
    # dtype, or transformers 4's torch_dtype, as a torch dtype or its name; one device
    again = CalicoForCausalLM.from_pretrained(path, torch_dtype="bfloat16", device_map={"": "cpu"})
    assert {p.dtype for p in again.parameters()} == {torch.bfloat16}
    with pytest.raises(ValueError, match="disagree"):
        CalicoForCausalLM.from_pretrained(path, dtype=torch.float16, torch_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="one device"):
        CalicoForCausalLM.from_pretrained(path, device_map="auto")
    # the arguments of the former signature say what replaced them
    with pytest.raises(TypeError, match=r"device is now device_map="):
        CalicoForCausalLM.from_pretrained(path, device="cpu")
    with pytest.raises(TypeError, match=r"base_checkpoints=\{'glamm'"):
        CalicoForCausalLM.from_pretrained(path, glamm="/ckpt/GLaMM")


def test_from_pretrained_and_save_pretrained_refuse_what_they_cannot_do(saved_tiny, tmp_path):
    model, path = saved_tiny
    with pytest.raises(OSError, match="nothing is downloaded"):
        CalicoForCausalLM.from_pretrained("MBZUAI/GLaMM-GranD-Pretrained")
    (tmp_path / "run").mkdir()
    for name in ("config.json", TRAINED_FILE):
        (tmp_path / "run" / name).write_bytes((path / name).read_bytes())
    with pytest.raises(OSError, match="names no base_checkpoints"):  # the frozen base is nowhere
        CalicoForCausalLM.from_pretrained(tmp_path / "run")
    model.save_pretrained(tmp_path / "other", is_main_process=False)
    assert not (tmp_path / "other").exists()
    with pytest.raises(TypeError, match="push_to_hub"):
        model.save_pretrained(tmp_path / "other", push_to_hub=True)
