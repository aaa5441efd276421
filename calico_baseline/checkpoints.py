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
  DINOv2 (transformers ``Dinov2Model``): embeddings.* / encoder.* / layernorm.* → dino.{same}.
Nothing is fetched: every path is a local file or folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from calico_baseline.config import CalicoConfig

TRAINED_FILE = "calico_trained.safetensors"
BASE_FILE = "calico_base.safetensors"
UNUSED_GLAMM = ("model.mm_projector.", "model.region_encoder.", "model.vision_tower.")


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
)


def map_dino(model, state: dict) -> tuple[dict, list[str]]:
    own = model.state_dict().keys()
    mapped, unused = {}, []
    for key, value in state.items():
        plain = key[len("dinov2."):] if key.startswith("dinov2.") else key
        if plain.startswith(("embeddings.", "encoder.", "layernorm.")):
            name = "dino." + plain
            if name not in own:
                for old, new in DINO_RENAMES:
                    name = name.replace(old, new)
            mapped[name] = value
        else:
            unused.append(key)
    return mapped, unused


MAPS = {"glamm": map_glamm, "blip2": map_blip2, "dino": map_dino}


def load_base_checkpoints(model, glamm=None, blip2=None, dino=None, strict: bool = True,
                          dtype: torch.dtype | None = None) -> dict:
    """Load the frozen (and pretrained trainable) weights; returns ``{missing, unexpected, unused}``.

    ``missing`` lists model weights that no checkpoint provided, other than those that start fresh
    (LoRA, CEM, CAMs, a new patch-token projector). With ``strict`` either list being non-empty raises.
    Checkpoints are read one file (shard) at a time. On a model built on the ``meta`` device (see
    :func:`build_low_memory`) the checkpoint tensors are assigned in place of the empty parameters, cast to
    ``dtype`` (each tensor on its own), so no full-precision copy of the model is ever made.
    """
    own = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    params = {k for k, _ in model.named_parameters()}
    assign = _on_meta(model)
    loaded, unexpected, unused = set(), [], []
    for kind, path in (("glamm", glamm), ("blip2", blip2), ("dino", dino)):
        if path is None:
            continue
        for file in checkpoint_files(path):
            mapped, skipped = MAPS[kind](model, read_state_dict(file))
            unused += skipped
            shard = {}
            for key in list(mapped):
                value = mapped.pop(key)
                if key not in own:
                    unexpected.append(key)
                    continue
                if own[key][0] != tuple(value.shape):
                    raise ValueError(f"{kind} checkpoint {path}: {key} has shape {tuple(value.shape)}, "
                                     f"the model expects {own[key][0]}")
                if assign and value.is_floating_point():  # buffers (SAM's positional matrix) keep their dtype
                    value = value.to(dtype if dtype is not None and key in params else own[key][1])
                shard[key] = value
            model.load_state_dict(shard, strict=False, assign=assign)
            loaded.update(shard)
            del shard
    if assign:
        materialize_fresh(model, dtype or torch.get_default_dtype())
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
    return {"missing": missing, "unexpected": unexpected, "unused": unused}


# ---------------------------------------------------------------- low-memory build (meta device → dtype)
def build_low_memory(config: CalicoConfig, dtype: torch.dtype = torch.bfloat16, strict: bool = True,
                     trainable_dtype: torch.dtype | None = None, **base_paths):
    """Calico built on the ``meta`` device, its base checkpoints (``base_paths``, else the config's) assigned
    straight into it in ``dtype``, the fresh modules (LoRA, CEM, CAMs) materialised and initialised in
    ``dtype`` — instead of building the full model in fp32 and casting. ``trainable_dtype`` (default ``dtype``)
    casts the trained parameters afterwards (e.g. fp32 master weights under autocast; they are small).

    Everything is created under ``torch.device("meta")`` (no parameter is ever allocated, not even transiently);
    buffers that no checkpoint holds (the rotary frequencies) are recomputed by their modules.
    Returns ``(model, report)`` with the report of :func:`load_base_checkpoints`.
    """
    from calico_baseline.modeling import CalicoForCausalLM

    paths = {**config.base_checkpoints, **{k: v for k, v in base_paths.items() if v is not None}}
    with torch.device("meta"):
        model = CalicoForCausalLM(config)
    report = load_base_checkpoints(model, strict=strict, dtype=dtype, **paths)
    if trainable_dtype is not None and trainable_dtype != dtype:
        for param in model.trainable_parameters().values():
            param.data = param.data.to(trainable_dtype)
    return model, report


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
        if not type(module).__name__.endswith("RotaryEmbedding"):
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


def save_trained(model, out_dir: str | Path, tokenizer=None, state: dict | None = None) -> Path:
    """config.json + ``calico_trained.safetensors`` (+ the frozen base when the config names no base checkpoints,
    as for ``calico-tiny`` whose frozen parts are random) + the tokenizer."""
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
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def load_trained(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 **base_paths):
    """The model saved by :func:`save_trained`, rebuilt on its base checkpoints (``base_paths`` override the config's).

    With ``dtype`` (e.g. ``torch.bfloat16``) and base checkpoints, the model is built with :func:`build_low_memory`
    (meta device, checkpoints loaded straight into ``dtype``); otherwise in fp32 and cast.
    """
    from safetensors.torch import load_file

    from calico_baseline.modeling import CalicoForCausalLM

    path = Path(path)
    config = CalicoConfig.from_pretrained(path)
    paths = {**config.base_checkpoints, **{k: v for k, v in base_paths.items() if v is not None}}
    if dtype is not None and paths and not (path / BASE_FILE).is_file():
        model, _ = build_low_memory(config, dtype=dtype, **paths)
    else:
        model = CalicoForCausalLM(config)
        if (path / BASE_FILE).is_file():
            model.load_state_dict(load_file(str(path / BASE_FILE)), strict=False)
        else:
            load_base_checkpoints(model, **paths)
        if dtype is not None:
            model.to(dtype)
    trained = load_file(str(path / TRAINED_FILE))
    own = model.state_dict()
    trained = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in trained.items()}
    result = model.load_state_dict(trained, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{path / TRAINED_FILE}: unexpected keys {result.unexpected_keys[:10]}")
    return model.to(device).eval()
