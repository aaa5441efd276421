"""Real checkpoints from local paths (docs/model.md) and save/load of what was trained.

Key maps, checkpoint → Calico:
  GLaMM (``MBZUAI/GLaMM-*``, sharded safetensors/bin with an index):
    model.embed_tokens / model.layers.* / model.norm / lm_head → language_model.base_model.model.{same}
      (LoRA targets gain ``.base_layer``); model.grounding_encoder.* → grounding_encoder.*;
    model.text_hidden_fcs.* → text_hidden_fcs.*; mm_projector, region_encoder, vision_tower: unused.
    LISA's ``model.visual_model.*`` and raw SAM ``image_encoder.*``/``prompt_encoder.*``/``mask_decoder.*``
    map to grounding_encoder.* too.
  BLIP-2 / InstructBLIP (transformers format): vision_model.* / qformer.* / query_tokens /
    language_projection.* → visual.{same}; InstructBLIP's qformer.embeddings.layernorm → qformer.layernorm,
    its word/position embeddings and text FFN are unused; language_model.*: unused.
  DINOv2 (transformers ``Dinov2Model``): embeddings.* / encoder.* / layernorm.* → dino.{same}, with the hub
    file names (``attention.attention.{query,key,value}``, ``attention.output.dense``, SwiGLU ``mlp.weights_in``
    / ``mlp.weights_out`` of dinov2-giant) renamed to the module names of transformers 5; position embeddings
    stored for another grid (the hub's 518 px) are interpolated to the model's.
Buffers that older transformers versions saved and that are no parameters (:data:`IGNORED_BUFFERS`) are
skipped and listed under ``ignored``. Model sizes can come from the checkpoints themselves
(:func:`sizes_from_checkpoints`). Nothing is fetched: every path is a local file or folder.
Every function here takes the model it fills: ``modeling`` imports this module, never the reverse.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from calico_baseline.config import CalicoConfig

TRAINED_FILE = "calico_trained.safetensors"
BASE_FILE = "calico_base.safetensors"
BASE_KINDS = ("glamm", "blip2", "dino")  # the keys of CalicoConfig.base_checkpoints
UNUSED_GLAMM = ("model.mm_projector.", "model.region_encoder.", "model.vision_tower.")
IGNORED_BUFFERS = (
    # older LlamaRotaryEmbedding registered inv_freq as a persistent buffer (GLaMM pins transformers commit
    # cae78c46, LISA 4.31.0; their files carry it); today's Llama recomputes it
    ".rotary_emb.inv_freq",
    # CLIPVisionEmbeddings / BERT-style embeddings of older transformers saved position_ids (an arange)
    "embeddings.position_ids",
)


def split_ignored(state: dict) -> tuple[dict, list[str]]:
    """(state without the non-parameter buffers of older transformers, the keys dropped)."""
    ignored = [k for k in state if k.endswith(IGNORED_BUFFERS)]
    for key in ignored:
        del state[key]
    return state, ignored


# ---------------------------------------------------------------- reading checkpoint files
def checkpoint_files(path: str | Path) -> list[Path]:
    """The files of a checkpoint: the file itself, a folder's single file, or its shards (``*.index.json``)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            return [path / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return [path / name]
    raise FileNotFoundError(f"no checkpoint (model.safetensors, pytorch_model.bin or an index) in {path}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A file (.safetensors/.bin/.pth) or a folder (single file or shards listed in an ``*.index.json``)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = path / index_name
            if index.is_file():
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
                state = {}
                for shard in shards:
                    state.update(read_state_dict(path / shard))
                return state
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return read_state_dict(path / name)
        raise FileNotFoundError(f"no checkpoint (model.safetensors, pytorch_model.bin or an index) in {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state


# ---------------------------------------------------------------- key maps
def _llm_key(model, key: str) -> str:
    """A plain ``LlamaForCausalLM`` key → its name in the LoRA-wrapped Calico LLM."""
    prefix = "language_model.base_model.model." if hasattr(model.language_model, "peft_config") else "language_model."
    name = prefix + key
    module_name, _, leaf = name.rpartition(".")
    try:
        module = model.get_submodule(module_name)
    except AttributeError:
        return name
    if hasattr(module, "base_layer"):  # a LoRA-injected Linear
        return f"{module_name}.base_layer.{leaf}"
    return name


def map_glamm(model, state: dict) -> tuple[dict, list[str]]:
    mapped, unused = {}, []
    for key, value in state.items():
        if key.startswith(UNUSED_GLAMM):
            unused.append(key)
        elif key.startswith("model.grounding_encoder."):
            mapped["grounding_encoder." + key[len("model.grounding_encoder."):]] = value
        elif key.startswith("model.visual_model."):
            mapped["grounding_encoder." + key[len("model.visual_model."):]] = value
        elif key.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder.")):
            mapped["grounding_encoder." + key] = value
        elif key.startswith("model.text_hidden_fcs."):
            mapped[key[len("model."):]] = value
        elif key.startswith(("model.", "lm_head.")):
            mapped[_llm_key(model, key)] = value
        else:
            unused.append(key)
    return mapped, unused


def map_blip2(model, state: dict) -> tuple[dict, list[str]]:
    mapped, unused = {}, []
    for key, value in state.items():
        if key == "qformer.embeddings.layernorm.weight" or key == "qformer.embeddings.layernorm.bias":
            key = "qformer.layernorm." + key.rsplit(".", 1)[1]  # InstructBLIP
        if key.startswith(("vision_model.", "qformer.", "language_projection.")) or key == "query_tokens":
            if key.startswith("qformer.embeddings.") or (".intermediate." in key or ".output." in key) \
                    and "_query" not in key and "attention" not in key:
                unused.append(key)  # InstructBLIP's text input path
                continue
            mapped["visual." + key] = value
        else:
            unused.append(key)
    return mapped, unused


DINO_RENAMES = (  # hub checkpoint names → the module names of newer transformers (5.x) Dinov2Model
    (".attention.attention.query.", ".attention.q_proj."), (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."), (".attention.output.dense.", ".attention.o_proj."),
    (".mlp.weights_out.", ".mlp.down_proj."),
)
SWIGLU_IN = ".mlp.weights_in."  # dinov2-giant's fused SwiGLU input projection: gate rows, then up rows


def interpolate_position_embeddings(value: torch.Tensor, shape: tuple) -> torch.Tensor:
    """1×(1+g²)×D position embeddings → 1×(1+G²)×D: the CLS row kept, the g×g grid resized bicubically, as
    transformers' ``Dinov2Embeddings.interpolate_pos_encoding`` does at run time (hub files store 518 px)."""
    import torch.nn.functional as F

    old, new = int(round((value.shape[1] - 1) ** 0.5)), int(round((shape[1] - 1) ** 0.5))
    if old * old + 1 != value.shape[1] or new * new + 1 != shape[1] or value.shape[2] != shape[2]:
        raise ValueError(f"DINOv2 position embeddings {tuple(value.shape)} cannot be resized to {tuple(shape)}")
    grid = value[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(value.dtype)
    return torch.cat([value[:, :1], grid], dim=1)


def map_dino(model, state: dict) -> tuple[dict, list[str]]:
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped, unused = {}, []
    for key, value in state.items():
        plain = key[len("dinov2."):] if key.startswith("dinov2.") else key
        if not plain.startswith(("embeddings.", "encoder.", "layernorm.")):
            unused.append(key)
            continue
        name = "dino." + plain
        if SWIGLU_IN in name and name not in own:
            gate, up = value.chunk(2, dim=0)  # the hub's SwiGLUFFN: x1, x2 = weights_in(x).chunk(2); silu(x1) * x2
            mapped[name.replace(SWIGLU_IN, ".mlp.gate_proj.")] = gate
            mapped[name.replace(SWIGLU_IN, ".mlp.up_proj.")] = up
            continue
        if name not in own:
            for old, new in DINO_RENAMES:
                name = name.replace(old, new)
        if name == "dino.embeddings.position_embeddings" and name in own and own[name] != tuple(value.shape):
            value = interpolate_position_embeddings(value, own[name])
        mapped[name] = value
    return mapped, unused


MAPS = {"glamm": map_glamm, "blip2": map_blip2, "dino": map_dino}


def load_mapped_shards(model, sources, dtype: torch.dtype | None = None):
    """Load ``sources`` — ``(mapper, path, label)``, ``mapper(model, state) -> (mapped, unused keys)`` — one
    checkpoint file (shard) at a time into ``model``; the one loop behind Calico's and the LISA/GLaMM loaders.

    Returns ``(own, loaded, unexpected, unused, ignored, resized)``: the model's own ``{key: (shape, dtype)}``,
    the keys loaded, mapped keys the model lacks, checkpoint keys no mapper took, old-transformers buffers
    skipped, and embedding / LM-head keys whose rows were grown for added tokens. On a model built on the
    ``meta`` device each tensor is assigned in ``dtype`` (buffers keep theirs) and the fresh modules are then
    materialised, so no full-precision copy of the model is ever made.
    """
    own = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    params = {k for k, _ in model.named_parameters()}
    assign = _on_meta(model)
    loaded, unexpected, unused, ignored, resized = set(), [], [], [], []
    for mapper, path, label in sources:
        for file in checkpoint_files(path):
            state, dropped = split_ignored(read_state_dict(file))
            ignored += dropped
            mapped, skipped = mapper(model, state)
            del state
            unused += skipped
            shard = {}
            for key in list(mapped):
                value = mapped.pop(key)
                if key not in own:
                    unexpected.append(key)
                    continue
                if own[key][0] != tuple(value.shape):
                    value = grow_vocabulary(key, value, own[key][0], label)
                    resized.append(key)
                if assign and value.is_floating_point():  # buffers (SAM's positional matrix) keep their dtype
                    value = value.to(dtype if dtype is not None and key in params else own[key][1])
                shard[key] = value
            model.load_state_dict(shard, strict=False, assign=assign)
            loaded.update(shard)
            del shard
    if assign:
        materialize_fresh(model, dtype or torch.get_default_dtype())
    return own, loaded, unexpected, unused, ignored, resized


def load_base_checkpoints(model, glamm=None, blip2=None, dino=None, strict: bool = True,
                          dtype: torch.dtype | None = None) -> dict:
    """Load the frozen (and pretrained trainable) weights; returns ``{missing, unexpected, unused}``.

    ``missing`` lists model weights that no checkpoint provided, other than those that start fresh
    (LoRA, CEM, CAMs, a new patch-token projector). With ``strict`` either list being non-empty raises.
    Checkpoints are read one file (shard) at a time. On a model built on the ``meta`` device (see
    ``CalicoForCausalLM.from_base_checkpoints``) the checkpoint tensors are assigned in place of the empty parameters, cast to
    ``dtype`` (each tensor on its own), so no full-precision copy of the model is ever made.
    """
    sources = [(MAPS[kind], path, f"{kind} checkpoint {path}")
               for kind, path in (("glamm", glamm), ("blip2", blip2), ("dino", dino)) if path is not None]
    own, loaded, unexpected, unused, ignored, resized = load_mapped_shards(model, sources, dtype)
    fresh = ("lora_", "cem.", "cams.", "visual.mm_projector.")
    missing = [k for k in own if k not in loaded and not any(f in k for f in fresh)
               and not k.startswith("dino." if dino is None else "\0")
               and not (glamm is None and k.startswith(("language_model.", "grounding_encoder.", "text_hidden_fcs.")))
               and not (blip2 is None and k.startswith("visual."))]
    if model.config.active_cam_layers and model.config.cam_own_queries and "visual.query_tokens" in loaded:
        with torch.no_grad():
            for cam in model.cams.values():
                cam.queries.copy_(model.visual.query_tokens)
    if strict and (missing or unexpected):
        raise ValueError(f"checkpoint keys do not match: missing {missing[:10]} ({len(missing)}), "
                         f"unexpected {unexpected[:10]} ({len(unexpected)})")
    return {"missing": missing, "unexpected": unexpected, "unused": unused, "ignored": ignored, "resized": resized}


def report_line(report: dict) -> str:
    """One line saying what a load skipped on purpose: the ignored old-transformers buffers (by kind), the
    unused checkpoint keys (by top-level prefix) and the vocabulary rows grown."""
    def kinds(keys, depth):
        counts: dict[str, int] = {}
        for key in keys:
            name = key.rsplit(".", 1)[-1] if depth is None else ".".join(key.split(".")[:depth]) + ".*"
            counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) or "none"

    parts = [f"ignored non-parameter buffers of older transformers: {kinds(report.get('ignored', []), None)}",
             f"unused: {kinds(report.get('unused', []), 2)}"]
    if report.get("resized"):
        parts.append(f"vocabulary rows grown for added tokens: {', '.join(report['resized'])}")
    return "checkpoints loaded strictly; " + "; ".join(parts)


VOCAB_ROWS = ("embed_tokens.weight", "lm_head.weight", "lm_head.base_layer.weight")


def grow_vocabulary(key: str, value: torch.Tensor, shape: tuple, where: str) -> torch.Tensor:
    """Embedding / LM-head rows of a checkpoint whose tokenizer had fewer tokens than ours: the checkpoint's rows,
    then one new row per added token set to the mean of the existing rows — LLaVA's ``initialize_vision_tokenizer``,
    which LISA and GLaMM run after ``resize_token_embeddings`` (the rows then train with ``embed_tokens``/``lm_head``).
    Any other shape mismatch raises."""
    if not (key.endswith(VOCAB_ROWS) and value.dim() == 2 and value.shape[1] == shape[1] and value.shape[0] < shape[0]):
        raise ValueError(f"{where}: {key} has shape {tuple(value.shape)}, the model expects {shape}")
    extra = value.float().mean(0, keepdim=True).to(value.dtype).expand(shape[0] - value.shape[0], -1)
    return torch.cat([value, extra], dim=0)


# ---------------------------------------------------------------- low-memory build (meta device → dtype)
def materialize_fresh(model, dtype: torch.dtype) -> list[str]:
    """Give every parameter still on ``meta`` (those no checkpoint provided) real storage in ``dtype`` and the
    initialisation the eager build gives it: the module's own ``reset_parameters``, then Calico's zero-inits
    (CEM output projection, CAM linears), CAM queries from the visual queries, LoRA's A-random/B-zero.
    Returns the names materialised."""
    from torch import nn

    names = []
    for module_name, module in model.named_modules():
        metas = [(n, p) for n, p in module.named_parameters(recurse=False) if p.is_meta]
        if not metas:
            continue
        for name, param in metas:
            setattr(module, name, nn.Parameter(torch.empty(param.shape, dtype=dtype), requires_grad=param.requires_grad))
            names.append(f"{module_name}.{name}" if module_name else name)
        reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
        if reset is not None:
            reset()
        else:
            with torch.no_grad():
                for name, _ in metas:
                    getattr(module, name).zero_()
    for module_name, module in model.named_modules():  # non-persistent buffers (rotary inv_freq) are not loaded
        metas = [n for n, b in module.named_buffers(recurse=False) if b.is_meta]
        if not metas:
            continue
        # recomputed buffers (rotary inv_freq, CLIP's position_ids arange): the module, rebuilt from its config
        if getattr(module, "config", None) is None:
            raise ValueError(f"{module_name}: buffers {metas} are on the meta device and no checkpoint provides them")
        with torch.device("cpu"):
            rebuilt = type(module)(config=module.config)
        for name in metas:
            module.register_buffer(name, getattr(rebuilt, name), persistent=name in module.state_dict())
    touched = set(names)
    with torch.no_grad():
        if getattr(model.config, "cem_enabled", False) and "cem.attention.out_proj.weight" in touched:
            nn.init.zeros_(model.cem.attention.out_proj.weight)
            nn.init.zeros_(model.cem.attention.out_proj.bias)
        for key, cam in (model.cams.items() if model.config.active_cam_layers else ()):
            if f"cams.{key}.linear_in.weight" in touched:
                for linear in (cam.linear_in, cam.linear_out):
                    nn.init.zeros_(linear.weight)
                    nn.init.zeros_(linear.bias)
            if f"cams.{key}.queries" in touched and model.config.cam_own_queries \
                    and not model.visual.query_tokens.is_meta:
                cam.queries.copy_(model.visual.query_tokens)
        for module_name, module in model.language_model.named_modules():
            if hasattr(module, "reset_lora_parameters") and any(
                    n.startswith(f"language_model.{module_name}.lora_") for n in touched):
                for adapter in list(getattr(module, "lora_A", {})):
                    module.reset_lora_parameters(adapter, True)
    return names


def _on_meta(model) -> bool:
    return any(p.is_meta for p in model.parameters())


# ---------------------------------------------------------------- trained parts
def trained_state_dict(model, state: dict | None = None) -> dict[str, torch.Tensor]:
    """Only what trains: LoRA (peft adapter keys) and the fully trained modules. ``state``: the full state dict
    when it must be gathered first (``accelerator.get_state_dict`` under FSDP / DeepSpeed)."""
    state = model.state_dict() if state is None else state
    return {k: v.detach().cpu().contiguous() for k, v in state.items()
            if "lora_" in k or any(k.startswith(name + ".") for name in model.trainable_modules())}


def save_trained(model, out_dir: str | Path, state: dict | None = None) -> Path:
    """config.json + ``calico_trained.safetensors`` (+ the frozen base when the config names no base checkpoints,
    as for ``calico-tiny`` whose frozen parts are random); ``model.save_pretrained`` runs this."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out)
    state = model.state_dict() if state is None else state
    trained = trained_state_dict(model, state)
    save_file(trained, str(out / TRAINED_FILE))
    if not model.config.base_checkpoints:
        base = {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in trained}
        save_file(base, str(out / BASE_FILE))
    return out


def load_saved_base(model, file: str | Path) -> None:
    """The frozen base :func:`save_trained` wrote beside the trained parts (``calico_base.safetensors``)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(file)), strict=False)


def load_trained_parts(model, folder: str | Path) -> None:
    """The trained parts :func:`save_trained` wrote, each cast to the dtype of the model's own tensor."""
    from safetensors.torch import load_file

    file = Path(folder) / TRAINED_FILE
    trained = load_file(str(file))
    own = model.state_dict()
    trained = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in trained.items()}
    result = model.load_state_dict(trained, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{file}: unexpected keys {result.unexpected_keys[:10]}")


# ---------------------------------------------------------------- sizes from the checkpoints' own files
LLAMA_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "hidden_act",
                "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "initializer_range")


def _config_json(path: str | Path) -> dict:
    path = Path(path)
    file = (path if path.is_dir() else path.parent) / "config.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def checkpoint_shapes(path: str | Path) -> dict[str, tuple]:
    """Every tensor's shape, read from the safetensors headers (no tensor loaded); ``.bin`` shards are mmapped."""
    from safetensors import safe_open

    shapes = {}
    for file in checkpoint_files(path):
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:
                shapes.update({k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()})
        else:
            shapes.update({k: tuple(v.shape) for k, v in read_state_dict(file).items()})
    return shapes


def sam_sizes(shapes: dict[str, tuple]) -> dict:
    """segment-anything sizes (``config.SAM_VIT_H`` keys) read off the SAM weights' shapes, whatever prefix they
    carry (GLaMM ``model.grounding_encoder.``, LISA ``model.visual_model.``, a raw SAM file). Only the mask
    decoder's head count does not show in any shape: it is left to the preset (8 in every SAM release)."""
    prefix = next((k[: -len("image_encoder.patch_embed.proj.weight")] for k in shapes
                   if k.endswith("image_encoder.patch_embed.proj.weight")), None)
    if prefix is None:
        return {}
    s = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    embed, _, patch, _ = s["image_encoder.patch_embed.proj.weight"]
    grid = s["image_encoder.pos_embed"][1]
    depth = 1 + max(int(k.split(".")[2]) for k in s if k.startswith("image_encoder.blocks."))
    head_dim = s["image_encoder.blocks.0.attn.rel_pos_h"][1]
    # a block's relative-position table spans 2·size−1 rows: the full grid for global blocks, else the window
    spans = [s[f"image_encoder.blocks.{i}.attn.rel_pos_h"][0] for i in range(depth)]
    windowed = [span for span in spans if span != 2 * grid - 1]
    decoder_depth = 1 + max(int(k.split(".")[3]) for k in s if k.startswith("mask_decoder.transformer.layers."))
    iou_depth = 1 + max(int(k.split(".")[3]) for k in s if k.startswith("mask_decoder.iou_prediction_head.layers."))
    sizes = {"window_size": windowed[0] // 2 + 1} if windowed else {}  # all-global: the window never applies
    return {**sizes, "image_size": grid * patch, "patch_size": patch, "encoder_embed_dim": embed, "encoder_depth": depth,
            "encoder_num_heads": embed // head_dim,
            "encoder_global_attn_indexes": [i for i, span in enumerate(spans) if span == 2 * grid - 1],
            "prompt_embed_dim": s["image_encoder.neck.0.weight"][0],
            "decoder_depth": decoder_depth, "decoder_mlp_dim": s["mask_decoder.transformer.layers.0.mlp.lin1.weight"][0],
            "iou_head_depth": iou_depth, "iou_head_hidden_dim": s["mask_decoder.iou_prediction_head.layers.0.weight"][0]}


def llm_sizes(path: str | Path) -> dict:
    """The Llama fields of a GLaMM / LISA / LLaVA ``config.json`` (its ``model_type`` is ``llava``-like, the LLM
    fields are Llama's); an empty dict when the checkpoint has no config.json beside it."""
    config = _config_json(path)
    return {k: config[k] for k in LLAMA_FIELDS if config.get(k) is not None}


def blip2_sizes(path: str | Path) -> dict:
    """``vision_config``, ``qformer_config`` and ``num_query_tokens`` of a BLIP-2 / InstructBLIP ``config.json``."""
    from transformers import Blip2QFormerConfig, Blip2VisionConfig

    config = _config_json(path)
    if not config:
        return {}
    known_vision, known_qformer = set(Blip2VisionConfig().to_dict()), set(Blip2QFormerConfig().to_dict())
    skip = {"model_type", "architectures", "transformers_version", "_name_or_path", "encoder_hidden_size",
            "torch_dtype", "dtype"}
    out = {"vision_config": {k: v for k, v in config.get("vision_config", {}).items() if k in known_vision - skip},
           "qformer_config": {k: v for k, v in config.get("qformer_config", {}).items() if k in known_qformer - skip}}
    if "num_query_tokens" in config:
        out["num_query_tokens"] = config["num_query_tokens"]
    return out


def dino_sizes(path: str | Path) -> dict:
    """The ``Dinov2Config`` fields of a DINOv2 ``config.json`` (image_size 518 on the hub: position embeddings are
    then stored and interpolated at run time exactly as ``Dinov2Model`` does)."""
    from transformers import Dinov2Config

    config = _config_json(path)
    known = set(Dinov2Config().to_dict()) - {"model_type", "architectures", "transformers_version", "_name_or_path",
                                             "torch_dtype", "dtype", "out_features", "out_indices", "stage_names"}
    return {k: v for k, v in config.items() if k in known}


def sizes_from_checkpoints(base_checkpoints: dict) -> dict:
    """CalicoConfig keywords that the named checkpoint folders fix (their config.json files and SAM's shapes):
    ``text_config`` and ``sam_config`` from ``glamm``, ``vision_config``/``qformer_config``/``num_query_tokens``
    from ``blip2``, ``dino_config`` from ``dino``; plus the defaults that follow from those sizes when a preset's
    would not fit: ``cam_layers`` at ⌈N/3⌉ and ⌈2N/3⌉ of an N-layer LLM (11, 22 for Vicuna-7B: the paper's layers),
    ``cem_num_heads`` = the vision tower's heads (16 for EVA ViT-g)."""
    import math

    out: dict = {}
    if base_checkpoints.get("glamm"):
        path = base_checkpoints["glamm"]
        if text := llm_sizes(path):
            out["text_config"] = text
            layers = text.get("num_hidden_layers")
            if layers:
                out["cam_layers"] = sorted({min(layers - 1, math.ceil(layers * j / 3)) for j in (1, 2)})
        if sam := sam_sizes(checkpoint_shapes(path)):
            out["sam_config"] = sam
    if base_checkpoints.get("blip2"):
        out.update(blip2_sizes(base_checkpoints["blip2"]))
        heads = out.get("vision_config", {}).get("num_attention_heads")
        if heads:
            out["cem_num_heads"] = heads
    if base_checkpoints.get("dino") and (dino := dino_sizes(base_checkpoints["dino"])):
        out["dino_config"] = dino
    return out
