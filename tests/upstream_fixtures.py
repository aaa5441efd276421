"""Checkpoint folders laid out as the published ones are, written by the upstream code, shrunk in width/depth only.

Nothing here is written from this project's modules: each writer instantiates the upstream class (transformers'
``Dinov2Model``, ``CLIPModel``, ``Blip2ForConditionalGeneration``, ``InstructBlipForConditionalGeneration``,
``LlamaForCausalLM``, ``LlamaTokenizer``; segment-anything's own ``build_sam`` builder) at the hub
configuration with fewer/narrower layers and saves it with that code's own ``save_pretrained`` / ``torch.save``.
GLaMM and LISA are not transformers classes: their files are assembled from the parameter names their model
code gives at the transformers version they pinned (LISA ``requirements.txt``: transformers 4.31.0;
GLaMM ``requirements.txt``: transformers commit cae78c46), read from the repositories:

- ``dvlab-research/LISA`` @3cb2d43 ``model/LISA.py`` (``LisaMetaModel``: ``visual_model`` = SAM ViT-H,
  ``text_hidden_fcs`` = [Linear, ReLU, Linear, Dropout]), ``model/llava/model/llava_arch.py``
  (``vision_tower``, ``mm_projector`` = one Linear), ``train_ds.py`` (tokenizer: ``add_tokens("[SEG]")`` then
  ``<im_start>``, ``<im_end>`` as special tokens; ``resize_token_embeddings``).
- ``mbzuai-oryx/groundingLMM`` @e74865f ``model/GLaMM.py`` (``grounding_encoder`` = SAM ViT-H,
  ``text_hidden_fcs``), ``model/llava/llava_with_region_arch.py`` (``mm_projector`` = Linear, GELU, Linear;
  ``region_encoder`` = ``MLVLROIQueryModule``), ``model/layers.py`` (the region encoder's sub-module names),
  ``model/llava/model/multimodal_encoder/clip_encoder.py`` (``vision_tower.vision_tower`` = ``CLIPVisionModel``),
  ``train.py`` (tokenizer: ``<im_start>``, ``<im_end>``, then ``<bbox>``, ``<point>``, ``[SEG]``, ``<p>``,
  ``</p>``, all special; ``model_max_length`` 1536).
- Both store ``rotary_emb.inv_freq`` per decoder layer and CLIP's ``embeddings.position_ids`` (persistent
  buffers in the transformers versions they used), and ship ``pytorch_model-0000k-of-0000n.bin`` shards with
  ``pytorch_model.bin.index.json`` (4.31's ``save_pretrained`` default) and a ``config.json`` of model_type
  ``llava`` that carries the Llama fields.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

# ----------------------------------------------------------------------------------------------- DINOv2
# facebook/dinov2-{small,base,large,giant} config.json: image_size 518, patch_size 14, mlp_ratio 4, layerscale 1.0;
# giant alone uses the SwiGLU MLP (hub names mlp.weights_in / mlp.weights_out). Shrunk: width and depth.
DINOV2_HUB = {
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "use_swiglu_ffn": False},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "use_swiglu_ffn": False},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "use_swiglu_ffn": False},
    "giant": {"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24, "use_swiglu_ffn": True},
}


def dinov2_folder(folder: Path, variant: str = "giant", width: int = 48, depth: int = 2, heads: int = 4):
    """``facebook/dinov2-<variant>`` at ``width``/``depth``: ``Dinov2Model(...).save_pretrained`` (hub names)."""
    from transformers import Dinov2Config, Dinov2Model

    hub = DINOV2_HUB[variant]
    config = Dinov2Config(image_size=518, patch_size=14, mlp_ratio=4, layerscale_value=1.0,
                          use_swiglu_ffn=hub["use_swiglu_ffn"], hidden_size=width, num_hidden_layers=depth,
                          num_attention_heads=heads)
    torch.manual_seed(11)
    model = Dinov2Model(config).eval()
    with torch.no_grad():  # layer scales start at 1.0: draw them so a wrong mapping shows in the output
        for name, param in model.named_parameters():
            if "lambda1" in name or "mask_token" in name:
                param.normal_()
    model.save_pretrained(folder)
    return model


# ----------------------------------------------------------------------------------------------- CLIP
def clip_folder(folder: Path, image_size: int = 224, width: int = 128, depth: int = 3, old_buffers: bool = True):
    """``openai/clip-vit-large-patch14[-336]`` (a ``CLIPModel`` file: ``vision_model.*``, ``text_model.*``, the
    projections, ``logit_scale``) at ``width``/``depth`` with CLIP's 64-wide heads. ``old_buffers``: add the
    ``embeddings.position_ids`` the hub's 2022 files carry (a persistent buffer in older transformers)."""
    from safetensors.torch import load_file, save_file
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={"vocab_size": 99, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": depth,
                       "num_attention_heads": width // 64, "image_size": image_size, "patch_size": 14},
        projection_dim=16)
    torch.manual_seed(12)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    if old_buffers:
        file = folder / "model.safetensors"
        state = load_file(str(file))
        positions = (image_size // 14) ** 2 + 1
        state["vision_model.embeddings.position_ids"] = torch.arange(positions)[None]
        state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
        save_file(state, str(file), metadata={"format": "pt"})
    return model


# ----------------------------------------------------------------------------------------------- BLIP-2
def blip2_folder(folder: Path, instruct: bool = True, vision_width: int = 176, vision_heads: int = 2,
                 depth: int = 2, qformer_width: int = 64, text_width: int = 64):
    """``Salesforce/instructblip-vicuna7b`` (``instruct``) or ``Salesforce/blip2-opt-2.7b``: EVA ViT-g (head width
    88, 224 px, patch 14) + Q-Former (cross-attention every 2nd layer, 32 queries) + the LLM, shrunk, saved
    sharded by ``save_pretrained`` with its index as on the hub."""
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, InstructBlipConfig,
                              InstructBlipForConditionalGeneration, LlamaConfig, OPTConfig)

    vision = {"hidden_size": vision_width, "intermediate_size": 2 * vision_width, "num_hidden_layers": depth,
              "num_attention_heads": vision_heads, "image_size": 224, "patch_size": 14}
    qformer = {"hidden_size": qformer_width, "num_hidden_layers": depth, "num_attention_heads": 4,
               "intermediate_size": 2 * qformer_width, "cross_attention_frequency": 2}
    torch.manual_seed(13)
    if instruct:
        text = LlamaConfig(vocab_size=100, hidden_size=text_width, intermediate_size=2 * text_width,
                           num_hidden_layers=1, num_attention_heads=4, pad_token_id=0, bos_token_id=1,
                           eos_token_id=2)
        config = InstructBlipConfig(vision_config=vision, qformer_config={**qformer, "vocab_size": 120},
                                    text_config=text.to_dict(), num_query_tokens=32)
        model = InstructBlipForConditionalGeneration(config)
    else:
        text = OPTConfig(vocab_size=50, hidden_size=text_width, ffn_dim=32, num_hidden_layers=1,
                         num_attention_heads=2, word_embed_proj_dim=text_width)
        config = Blip2Config(vision_config=vision, qformer_config=qformer, text_config=text.to_dict(),
                             num_query_tokens=32)
        model = Blip2ForConditionalGeneration(config)
    model.eval().save_pretrained(folder, max_shard_size="300KB")
    return model


# ----------------------------------------------------------------------------------------------- SAM
def sam_builder_module():
    """segment-anything's ``build_sam`` module, loaded beside its ``modeling`` package without the package
    ``__init__`` (which needs torchvision)."""
    from calico_baseline.sam import sam_modeling

    spec = importlib.util.find_spec("segment_anything")
    folder = Path(list(spec.submodule_search_locations)[0])
    package = types.ModuleType("_upstream_segment_anything")
    package.__path__ = [str(folder)]
    sys.modules.setdefault("_upstream_segment_anything", package)
    sys.modules.setdefault("_upstream_segment_anything.modeling", sam_modeling())
    name = "_upstream_segment_anything.build_sam"
    if name not in sys.modules:
        module_spec = importlib.util.spec_from_file_location(name, folder / "build_sam.py")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    return sys.modules[name]


def sam_state(width: int = 32, depth: int = 2, heads: int = 2, image_size: int = 1024) -> dict:
    """``sam_vit_h_4b8939.pth``'s layout. At 1024 px: segment-anything's ``_build_sam`` — the builder
    ``build_sam_vit_h`` calls, which fixes image 1024, patch 16, window 14, prompt width 256 and the full mask
    decoder — with the ViT-H encoder narrowed to ``width`` and ``depth`` blocks (global attention in the last,
    as ViT-H's 7/15/23/31 pattern ends); the registry's builders take no size arguments, so this is the one
    lever. A smaller ``image_size`` (end-to-end tests: a 1024-px encoder in bf16 takes minutes on a CPU without
    bf16 instructions) builds segment-anything's modeling classes exactly as ``_build_sam`` does, with the
    image, grid and window shrunk."""
    torch.manual_seed(14)
    builder = sam_builder_module()
    if image_size == 1024:
        sam = builder._build_sam(encoder_embed_dim=width, encoder_depth=depth, encoder_num_heads=heads,
                                 encoder_global_attn_indexes=[depth - 1])
    else:
        from functools import partial

        grid = image_size // 16
        sam = builder.Sam(
            image_encoder=builder.ImageEncoderViT(
                depth=depth, embed_dim=width, img_size=image_size, mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=heads, patch_size=16, qkv_bias=True,
                use_rel_pos=True, global_attn_indexes=[depth - 1], window_size=max(2, grid // 2), out_chans=256),
            prompt_encoder=builder.PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                                 input_image_size=(image_size, image_size), mask_in_chans=16),
            mask_decoder=builder.MaskDecoder(
                num_multimask_outputs=3,
                transformer=builder.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
            pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    return {k: v.clone() for k, v in sam.state_dict().items()}


# ----------------------------------------------------------------------------------------------- tokenizers
BASE_TEXTS = [  # a few sentences for a small Llama-style BPE (the hub's is LLaMA's 32000-piece vocabulary)
    "A chat between a curious human and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    "USER: ASSISTANT: The IMAGE1 and IMAGE2 provide an overview of the pictures.",
    "Which object do the images share? Which parts do the objects share? Which parts does only one object have?",
    "The images show a box, a dog, a chair, a car. The common parts are the leg, the head, the tire.",
    "The unique parts are the neck and the tail. Can you segment the wheel in this image? Sure, it is",
]
LISA_ADDED = (("[SEG]", False), ("<im_start>", True), ("<im_end>", True))  # LISA train_ds.py order
GLAMM_ADDED = (("<im_start>", True), ("<im_end>", True), ("<bbox>", True), ("<point>", True), ("[SEG]", True),
               ("<p>", True), ("</p>", True))  # GLaMM train.py order


def llama_tokenizer(added: tuple = (), extra_texts: tuple = ()):
    """transformers' ``LlamaTokenizer`` (LLaMA's byte-fallback BPE with the ▁ word marker, ``<unk>`` 0, ``<s>`` 1,
    ``</s>`` 2, no pad token) on a BPE learnt here from a few sentences, then ``added`` tokens in order."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    bpe.train_from_iterator(list(BASE_TEXTS) + list(extra_texts), trainer)
    model = json.loads(bpe.to_str())["model"]
    tokenizer = LlamaTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]])
    for token, special in added:
        tokenizer.add_tokens([token], special_tokens=special)
    return tokenizer


# ----------------------------------------------------------------------------------------------- LLaVA-style LLMs
def llama_state(vocab: int, width: int = 64, depth: int = 3, heads: int = 4, rms_norm_eps: float = 1e-6,
                old_buffers: bool = True) -> tuple[dict, dict]:
    """(state, config.json dict) of a Vicuna-7B LLM as LISA/GLaMM save it: ``LlamaForCausalLM`` keys
    (``model.embed_tokens``, ``model.layers.N.*``, ``model.norm``, ``lm_head``), plus per layer the
    ``self_attn.rotary_emb.inv_freq`` buffer older transformers saved, when ``old_buffers``. The config has the
    4.31-era Llama fields (no ``rope_theta`` yet; LLaMA-1's ``rms_norm_eps`` 1e-6)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=depth,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=4096,
                         rms_norm_eps=rms_norm_eps, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False)
    torch.manual_seed(15)
    llm = LlamaForCausalLM(config)
    state = {k: v.clone() for k, v in llm.state_dict().items()}
    if old_buffers:
        head_dim = width // heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        for i in range(depth):
            state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
    config_json = {"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "hidden_act": "silu",
                   "hidden_size": width, "initializer_range": 0.02, "intermediate_size": 2 * width,
                   "max_position_embeddings": 4096, "num_attention_heads": heads, "num_hidden_layers": depth,
                   "num_key_value_heads": heads, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                   "pretraining_tp": 1, "rms_norm_eps": rms_norm_eps, "rope_scaling": None,
                   "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.31.0",
                   "use_cache": False, "vocab_size": vocab, "mm_hidden_size": 1024, "mm_use_im_start_end": True,
                   "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "out_dim": 256,
                   "train_mask_decoder": True}
    return state, config_json


def text_hidden_fcs_state(prefix: str, width: int, out_dim: int = 256) -> dict:
    """``model.text_hidden_fcs.0.{0,2}.*``: ModuleList([Sequential(Linear, ReLU, Linear, Dropout)])."""
    torch.manual_seed(16)
    return {f"{prefix}text_hidden_fcs.0.0.weight": torch.randn(width, width) * 0.05,
            f"{prefix}text_hidden_fcs.0.0.bias": torch.randn(width) * 0.05,
            f"{prefix}text_hidden_fcs.0.2.weight": torch.randn(out_dim, width) * 0.05,
            f"{prefix}text_hidden_fcs.0.2.bias": torch.randn(out_dim) * 0.05}


def region_encoder_state() -> dict:
    """A few of GLaMM's ``model.region_encoder.*`` names (``MLVLROIQueryModule`` of model/layers.py: mlvl_fuse
    input/fuse convs, roi_align pconvs, pos_embedd, updims, flatten_linear), narrowed; Calico leaves them unused."""
    torch.manual_seed(17)
    names = ["mlvl_fuse.input_conv.0.weight", "mlvl_fuse.input_conv.0.bias", "mlvl_fuse.fuse_convs.0.conv.weight",
             "mlvl_fuse.fuse_convs.0.gn.weight", "roi_align.pconvs.0.weight", "roi_align.pos_embedd.0.weight",
             "roi_align.updims.weight", "roi_align.flatten_linear.weight"]
    return {f"model.region_encoder.{n}": torch.randn(4, 4) for n in names}


def write_shards(state: dict, folder: Path, shards: int = 2, safetensors: bool = False) -> None:
    """A sharded checkpoint with its index, keys dealt round-robin over the shards.

    ``safetensors=False``: ``pytorch_model-0000k-of-0000n.bin`` + ``pytorch_model.bin.index.json`` (transformers
    4.31's layout, GLaMM's and LISA's repos); ``True``: ``model-0000k-of-0000n.safetensors`` +
    ``model.safetensors.index.json`` (the GLaMM/BLIP-2 hub repos as converted to safetensors).
    """
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors" if safetensors else \
            f"pytorch_model-{s + 1:05d}-of-{shards:05d}.bin"
        part = {k: state[k].contiguous() for k in keys[s::shards]}
        if safetensors:
            from safetensors.torch import save_file

            save_file(part, str(folder / name), metadata={"format": "pt"})
        else:
            torch.save(part, folder / name)
        weight_map.update({k: name for k in part})
    if safetensors:
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        total = sum(v.numel() * v.element_size() for v in state.values())
        (folder / "pytorch_model.bin.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def clip_tower_state(prefix: str, image_size: int, width: int = 128, depth: int = 3) -> dict:
    """LLaVA's ``vision_tower.vision_tower`` (a transformers 4.31 ``CLIPVisionModel``: ``vision_model.*`` with the
    ``embeddings.position_ids`` buffer) under ``prefix``, from transformers' own ``CLIPModel`` weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(18)
    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=depth,
                                             num_attention_heads=width // 64, image_size=image_size, patch_size=14))
    state = {}
    for key, value in tower.state_dict().items():
        inner = key if key.startswith("vision_model.") else "vision_model." + key  # 5.x flattened the wrapper
        state[prefix + inner] = value.clone()
    state[prefix + "vision_model.embeddings.position_ids"] = torch.arange((image_size // 14) ** 2 + 1)[None]
    return state


def glamm_folder(folder: Path, width: int = 64, depth: int = 3, with_tower: bool = True,
                 sam_image_size: int = 1024) -> dict:
    """``MBZUAI/GLaMM-GranD-Pretrained``: Vicuna LLM + ``model.grounding_encoder.*`` (SAM) +
    ``model.text_hidden_fcs.*`` + ``model.mm_projector.{0,2}.*`` + ``model.region_encoder.*`` (+ the CLIP-336 tower
    ``model.vision_tower.vision_tower.vision_model.*``), .bin shards with an index, config.json, GLaMM's tokenizer
    (seven added tokens). Returns the state written."""
    tokenizer = llama_tokenizer(GLAMM_ADDED)
    state, config = llama_state(len(tokenizer), width, depth)
    state.update({f"model.grounding_encoder.{k}": v for k, v in sam_state(image_size=sam_image_size).items()})
    state.update(text_hidden_fcs_state("model.", width))
    torch.manual_seed(19)
    state.update({"model.mm_projector.0.weight": torch.randn(width, 128) * 0.05,
                  "model.mm_projector.0.bias": torch.zeros(width),
                  "model.mm_projector.2.weight": torch.randn(width, width) * 0.05,
                  "model.mm_projector.2.bias": torch.zeros(width)})
    state.update(region_encoder_state())
    if with_tower:
        state.update(clip_tower_state("model.vision_tower.vision_tower.", 336))
    config.update({"architectures": ["GLaMMForCausalLM"], "mm_vision_module": "openai/clip-vit-large-patch14-336",
                   "mm_vision_tower": "openai/clip-vit-large-patch14-336", "mm_hidden_size": 128, "with_region": True,
                   "bbox_token_idx": tokenizer.convert_tokens_to_ids("<bbox>"), "num_reg_features": 4})
    write_shards(state, folder)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.model_max_length = 1536
    tokenizer.save_pretrained(folder)
    return state


def lisa_folder(folder: Path, width: int = 64, depth: int = 3, with_tower: bool = False,
                sam_image_size: int = 1024) -> dict:
    """``xinlai/LISA-7B-v1``: Vicuna LLM + ``model.visual_model.*`` (SAM) + ``model.text_hidden_fcs.*`` +
    ``model.mm_projector.*`` (one Linear) (+ the CLIP-224 tower), .bin shards, config.json, LISA's tokenizer
    (``[SEG]``, ``<im_start>``, ``<im_end>``: no ``<p>``/``</p>``). Returns the state written."""
    tokenizer = llama_tokenizer(LISA_ADDED)
    state, config = llama_state(len(tokenizer), width, depth)
    state.update({f"model.visual_model.{k}": v for k, v in sam_state(image_size=sam_image_size).items()})
    state.update(text_hidden_fcs_state("model.", width))
    torch.manual_seed(20)
    state.update({"model.mm_projector.weight": torch.randn(width, 128) * 0.05,
                  "model.mm_projector.bias": torch.zeros(width)})
    if with_tower:
        state.update(clip_tower_state("model.vision_tower.vision_tower.", 224))
    config.update({"architectures": ["LISAForCausalLM"], "mm_vision_tower": "openai/clip-vit-large-patch14",
                   "vision_tower": "openai/clip-vit-large-patch14", "mm_hidden_size": 128,
                   "seg_token_idx": tokenizer.convert_tokens_to_ids("[SEG]")})
    write_shards(state, folder)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(folder)
    return state
