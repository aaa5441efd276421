"""Real checkpoints from local paths (model.md §2.2) and save/load of what was trained.

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


def load_base_checkpoints(model, glamm=None, blip2=None, dino=None, strict: bool = True) -> dict:
    """Load the frozen (and pretrained trainable) weights; returns ``{missing, unexpected, unused}``.

    ``missing`` lists model weights that no checkpoint provided, other than those that start fresh
    (LoRA, CEM, CAMs, a new patch-token projector). With ``strict`` either list being non-empty raises.
    """
    own = model.state_dict()
    loaded, unexpected, unused = {}, [], []
    for kind, path in (("glamm", glamm), ("blip2", blip2), ("dino", dino)):
        if path is None:
            continue
        mapped, skipped = MAPS[kind](model, read_state_dict(path))
        unused += skipped
        for key, value in mapped.items():
            if key not in own:
                unexpected.append(key)
            elif tuple(own[key].shape) != tuple(value.shape):
                raise ValueError(f"{kind} checkpoint {path}: {key} has shape {tuple(value.shape)}, "
                                 f"the model expects {tuple(own[key].shape)}")
            else:
                loaded[key] = value
    model.load_state_dict(loaded, strict=False, assign=_on_meta(model))
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


def _on_meta(model) -> bool:
    return any(p.is_meta for p in model.parameters())


# ---------------------------------------------------------------- trained parts
def trained_state_dict(model) -> dict[str, torch.Tensor]:
    """Only what trains: LoRA (peft adapter keys) and the fully trained modules."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if "lora_" in k or any(k.startswith(name + ".") for name in model.trainable_modules())}


def save_trained(model, out_dir: str | Path, tokenizer=None) -> Path:
    """config.json + ``calico_trained.safetensors`` (+ the frozen base when the config names no base checkpoints,
    as for ``calico-tiny`` whose frozen parts are random) + the tokenizer."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out)
    trained = trained_state_dict(model)
    save_file(trained, str(out / TRAINED_FILE))
    if not model.config.base_checkpoints:
        base = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in trained}
        save_file(base, str(out / BASE_FILE))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def load_trained(path: str | Path, device: str | torch.device = "cpu", **base_paths):
    """The model saved by :func:`save_trained`, rebuilt on its base checkpoints (``base_paths`` override the config's)."""
    from safetensors.torch import load_file

    from calico_baseline.modeling import CalicoForCausalLM

    path = Path(path)
    config = CalicoConfig.from_pretrained(path)
    model = CalicoForCausalLM(config)
    if (path / BASE_FILE).is_file():
        model.load_state_dict(load_file(str(path / BASE_FILE)), strict=False)
    else:
        paths = {**config.base_checkpoints, **{k: v for k, v in base_paths.items() if v is not None}}
        load_base_checkpoints(model, **paths)
    trained = load_file(str(path / TRAINED_FILE))
    result = model.load_state_dict(trained, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{path / TRAINED_FILE}: unexpected keys {result.unexpected_keys[:10]}")
    return model.to(device).eval()
