"""Multi-Image LISA and Multi-Image GLaMM built from the ``calico_baseline`` blocks (docs/model.md).

Same interleaved k-image prompt, ``[SEG]`` -> SAM decoding per image and loss (1·CE + 2·mask + 0.5·Dice)
as Calico, with their own visual path and no Q-Former, CEM or CAM:

- LISA (``xinlai/LISA-7B-v1``): CLIP ViT-L/14 at 224, second-to-last layer, patch tokens (CLS dropped)
  -> **256 tokens per image**, LLaVA-v1 linear ``mm_projector``.
- GLaMM (``MBZUAI/GLaMM-GranD-Pretrained``): CLIP ViT-L/14-336 -> **576 tokens per image**, LLaVA-1.5
  two-layer GELU ``mm_projector``; the region encoder is not built (bboxes are None).

Trainable, as in both repositories: LoRA (r 8, alpha 16, q/v), the SAM mask decoder,
``text_hidden_fcs``, ``lm_head`` and ``embed_tokens`` (about 290M at 7B); CLIP, the projector and SAM's
image encoder stay frozen.

Official checkpoints load by key map (:func:`map_official`): ``model.vision_tower[.vision_tower].vision_model.*``
-> ``visual.vision_tower.vision_model.*``; ``model.mm_projector.*`` -> ``visual.mm_projector.*``; the LLM,
SAM (LISA ``model.visual_model.*``, GLaMM ``model.grounding_encoder.*``) and ``model.text_hidden_fcs.*``
through :func:`calico_baseline.checkpoints.map_glamm`; ``model.region_encoder.*`` is unused. A separate
transformers CLIP checkpoint (``CLIPModel`` or ``CLIPVisionModel``: ``vision_model.*``) can supply the
tower when the official file lacks it.

``mixedparts-baseline lisa|glamm`` runs inference (:func:`load_model`); ``mixedparts-baseline train
lisa|glamm`` fine-tunes on MixedParts (:mod:`baselines.train`); :class:`LisaSegmenter` is the cascade's
single-image referring segmenter ("Can you segment the {name} in this image?").
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from calico_baseline.config import VICUNA_7B, CalicoConfig
from calico_baseline.modeling import CalicoForCausalLM

from baselines.multi_image_llava_options import configure  # noqa: F401  (kept importable from here)

CLIP_L14 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "patch_size": 14, "image_size": 224}
SYSTEMS = {
    "lisa": {"vision_config": {**CLIP_L14, "image_size": 224}, "mm_projector_type": "linear",
             "text_config": {**VICUNA_7B, "max_position_embeddings": 2048}},
    "glamm": {"vision_config": {**CLIP_L14, "image_size": 336}, "mm_projector_type": "mlp2x_gelu",
              "text_config": VICUNA_7B},
}
# mask loss: LISA's model/LISA.py and GLaMM's model/GLaMM.py train sigmoid BCE (+ Dice), not focal;
# vision_preprocess "clip": both feed their CLIP towers through CLIPImageProcessor (shortest side, centre crop)
COMMON = dict(use_qformer=False, use_dino=False, use_cem=False, use_cam=False, train_mask_decoder=True,
              train_seg_projection=True, lora_r=8, lora_alpha=16, lora_target_modules=("q_proj", "v_proj"),
              mask_loss="bce", vision_preprocess="clip")


def baseline_config(system: str, **overrides) -> CalicoConfig:
    """Full-size config of ``lisa`` or ``glamm``; ``overrides`` as for :class:`CalicoConfig` (sub-configs merged)."""
    settings = {**copy.deepcopy(SYSTEMS[system]), **COMMON, "baseline": system}
    for key, value in overrides.items():
        if key.endswith("_config") and isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return CalicoConfig(**settings)


class ClipVisualTokenizer(nn.Module):
    """N images -> N×P×d_llm: CLIP second-to-last layer, patch tokens (CLS dropped), then ``mm_projector``."""

    def __init__(self, config: CalicoConfig):
        super().__init__()
        v = config.vision_config
        self.vision_tower = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
            num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
            image_size=v.image_size, patch_size=v.patch_size))
        d_v, d_llm = v.hidden_size, config.text_config.hidden_size
        kind = getattr(config, "mm_projector_type", "linear")
        if kind == "linear":
            self.mm_projector = nn.Linear(d_v, d_llm)
        elif kind == "mlp2x_gelu":
            self.mm_projector = nn.Sequential(nn.Linear(d_v, d_llm), nn.GELU(), nn.Linear(d_llm, d_llm))
        else:
            raise ValueError(f"mm_projector_type must be 'linear' or 'mlp2x_gelu', got {kind!r}")

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = self.vision_tower.get_input_embeddings().weight.dtype
        out = self.vision_tower(pixel_values=pixel_values.to(dtype), output_hidden_states=True)
        return out.hidden_states[-2]  # LLaVA's mm_vision_select_layer = -2

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        return self.mm_projector(features[:, 1:])  # mm_vision_select_feature = "patch"


class MultiImageLlavaForCausalLM(CalicoForCausalLM):
    """Calico's LLM, [SEG] head, SAM and loss with LISA's or GLaMM's CLIP + projector visual path."""

    def __init__(self, config: CalicoConfig, verbose: bool = False):
        if config.use_qformer or config.use_cam or config.cem_enabled:
            raise ValueError("Multi-Image LISA/GLaMM have no Q-Former, CEM or CAM")
        super().__init__(config)
        self.visual = ClipVisualTokenizer(config)  # replaces the EVA path built by Calico
        self.set_trainable()
        if verbose:
            print(self.trainable_summary())

    def trainable_summary(self) -> str:
        name = {"lisa": "Multi-Image LISA", "glamm": "Multi-Image GLaMM"}.get(self.config.baseline,
                                                                            str(self.config.baseline))
        return name + super().trainable_summary().removeprefix("Calico")

    def load_base_checkpoints(self, strict: bool = True, dtype: torch.dtype | None = None) -> dict:
        """The official LISA/GLaMM file (``base_checkpoints["checkpoint"]``) and maybe a CLIP one (``"clip"``)."""
        bases = self.config.base_checkpoints
        unknown = sorted(set(bases) - {"checkpoint", "clip"})
        if unknown or not bases.get("checkpoint"):
            raise ValueError(f"base_checkpoints {sorted(bases)}: Multi-Image LISA/GLaMM need 'checkpoint' (the "
                             "official file) and maybe 'clip'")
        return load_official(self, bases["checkpoint"], bases.get("clip"), strict=strict, dtype=dtype)

    def trainable_modules(self) -> dict[str, nn.Module]:
        # keys are state-dict prefixes: checkpoints.trained_state_dict saves the parameters under them
        names = {id(module): name for name, module in self.named_modules()}
        modules = {"grounding_encoder.mask_decoder": self.grounding_encoder.mask_decoder,
                   "text_hidden_fcs": self.text_hidden_fcs}
        for module in (self.llm.lm_head, self.llm.model.embed_tokens):
            modules[names[id(module)]] = module
        for name in self.config.extra_trainable:
            modules[name] = self.get_submodule(name)
        return modules


def _tower_key(model, key: str) -> str:
    """``vision_model.X`` (official layout) -> our tower key; transformers 5 flattened ``CLIPVisionModel``."""
    if hasattr(model.visual.vision_tower, "vision_model"):
        return "visual.vision_tower." + key
    return "visual.vision_tower." + key[len("vision_model."):]


def map_official(model, state: dict) -> tuple[dict, list[str]]:
    """LISA / GLaMM checkpoint keys -> model keys; returns (mapped, unused keys)."""
    from calico_baseline.checkpoints import map_glamm

    mapped, unused, rest = {}, [], {}
    for key, value in state.items():
        if key.startswith("model.vision_tower."):
            inner = key[len("model.vision_tower."):]
            inner = inner[len("vision_tower."):] if inner.startswith("vision_tower.") else inner
            if inner.startswith("vision_model."):
                mapped[_tower_key(model, inner)] = value
            else:
                unused.append(key)
        elif key.startswith("model.mm_projector."):
            mapped["visual.mm_projector." + key[len("model.mm_projector."):]] = value
        else:
            rest[key] = value
    more, skipped = map_glamm(model, rest)
    return {**mapped, **more}, unused + skipped


CLIP_TOWER_PARTS = ("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")


def map_clip(model, state: dict) -> tuple[dict, list[str]]:
    """transformers CLIP keys -> the vision tower: ``vision_model.*`` of a ``CLIPModel`` file (the hub's
    openai/clip-vit-large-patch14[-336]) or of a 4.x ``CLIPVisionModel``; the unprefixed ``embeddings.*`` /
    ``encoder.*`` of a ``CLIPVisionModel`` saved by transformers 5. The text tower and projections are unused."""
    mapped, unused = {}, []
    for key, value in state.items():
        if key.startswith("vision_model."):
            mapped[_tower_key(model, key)] = value
        elif key.startswith(CLIP_TOWER_PARTS):
            mapped[_tower_key(model, "vision_model." + key)] = value
        else:
            unused.append(key)
    return mapped, unused


def load_official(model, checkpoint, clip=None, strict: bool = True, dtype: torch.dtype | None = None) -> dict:
    """Load an official LISA/GLaMM checkpoint (file or folder) and maybe a CLIP one, one file (shard) at a time;
    returns ``{missing, unexpected, unused, ignored, resized}``.

    Everything but LoRA must be provided; with ``strict`` a missing or unexpected key raises. ``ignored``: the
    non-parameter buffers older transformers saved (``rotary_emb.inv_freq``, ``embeddings.position_ids``);
    ``resized``: embedding / LM-head rows grown for tokens added to the tokenizer. On a model built on the
    ``meta`` device the tensors are assigned in ``dtype`` (no full-precision copy); LoRA is then materialised.
    """
    from calico_baseline.checkpoints import load_mapped_shards

    sources = [(mapper, path, str(path)) for mapper, path in ((map_clip, clip), (map_official, checkpoint))
               if path is not None]
    own, loaded, unexpected, unused, ignored, resized = load_mapped_shards(model, sources, dtype)
    missing = [k for k in own if k not in loaded and "lora_" not in k]
    if strict and (missing or unexpected):
        raise ValueError(f"checkpoint keys do not match: missing {missing[:10]} ({len(missing)}), "
                         f"unexpected {unexpected[:10]} ({len(unexpected)})")
    return {"missing": missing, "unexpected": unexpected, "unused": unused, "ignored": ignored, "resized": resized}


CLIP_HEAD_DIM = 64  # every OpenAI CLIP ViT (B/16, L/14, L/14-336): heads do not show in the weight shapes


def clip_sizes(shapes: dict[str, tuple], prefix: str) -> dict:
    """CLIP tower sizes read off the weight shapes under ``prefix`` (``vision_model.`` of a CLIP file,
    ``model.vision_tower.vision_tower.vision_model.`` of a LISA/GLaMM file)."""
    s = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    if "embeddings.patch_embedding.weight" not in s:
        return {}
    hidden, _, patch, _ = s["embeddings.patch_embedding.weight"]
    grid = int(round((s["embeddings.position_embedding.weight"][0] - 1) ** 0.5))
    layers = 1 + max(int(k.split(".")[2]) for k in s if k.startswith("encoder.layers."))
    return {"hidden_size": hidden, "intermediate_size": s["encoder.layers.0.mlp.fc1.weight"][0],
            "num_hidden_layers": layers, "num_attention_heads": max(1, hidden // CLIP_HEAD_DIM),
            "image_size": grid * patch, "patch_size": patch}


def sizes_from_official(checkpoint, clip=None) -> dict:
    """``baseline_config`` keywords fixed by the files: the LLM from the checkpoint's config.json, SAM and the
    CLIP tower from the weight shapes (a separate CLIP's config.json first), the projector type from its keys."""
    from calico_baseline.checkpoints import _config_json, checkpoint_shapes, llm_sizes, sam_sizes

    shapes = checkpoint_shapes(checkpoint)
    out: dict = {}
    if text := llm_sizes(checkpoint):
        out["text_config"] = text
    if sam := sam_sizes(shapes):
        out["sam_config"] = sam
    vision = {}
    if clip is not None:
        config = _config_json(clip)
        config = config.get("vision_config", config)
        vision = {k: config[k] for k in CLIP_L14 if k in config}
        if not vision:
            vision = clip_sizes(checkpoint_shapes(clip), "vision_model.")
    vision = vision or clip_sizes(shapes, "model.vision_tower.vision_tower.vision_model.") \
        or clip_sizes(shapes, "model.vision_tower.vision_model.")
    if vision:
        out["vision_config"] = {k: vision[k] for k in CLIP_L14 if k in vision}
    if "model.mm_projector.weight" in shapes:
        out["mm_projector_type"] = "linear"  # LISA-7B-v1 (LLaVA-Lightning): one Linear
    elif "model.mm_projector.0.weight" in shapes:
        out["mm_projector_type"] = "mlp2x_gelu"  # GLaMM (LLaVA-1.5): Linear, GELU, Linear
    return out


def build_official(system: str, checkpoint, clip=None, tokenizer=None, dtype: torch.dtype | None = None,
                   trainable_dtype: torch.dtype | None = None, strict: bool = True, **overrides):
    """(model, report): the model the official files describe (sizes from them, the vocabulary grown to the
    tokenizer's), built on the ``meta`` device when ``dtype`` is given and loaded shard by shard into it."""
    from calico_baseline.config import layered
    from calico_baseline.tokenization import config_overrides

    sizes = sizes_from_official(checkpoint, clip)
    tok = config_overrides(tokenizer) if tokenizer is not None else {}
    if tok:
        tok["text_config"]["vocab_size"] = max(len(tokenizer), sizes.get("text_config", {}).get("vocab_size", 0))
    bases = {k: str(v) for k, v in (("checkpoint", checkpoint), ("clip", clip)) if v is not None}
    config = baseline_config(system, base_checkpoints=bases, **layered(sizes, tok, overrides))
    return MultiImageLlavaForCausalLM.from_base_checkpoints(config, dtype=dtype, trainable_dtype=trainable_dtype,
                                                            strict=strict)


# ------------------------------------------------------------------ loading and the runner


def load_model(system: str, model_dir=None, checkpoint=None, clip=None, tokenizer_path=None, device: str = "cpu",
               dtype: torch.dtype | None = None):
    """(model, tokenizer) for inference, on ``device`` in ``dtype`` (``None``: fp32).

    ``model_dir``: a folder written by ``save_pretrained`` for this model (config.json, the trained parts, the
    tokenizer; the frozen base from its ``calico_base.safetensors`` or from ``checkpoint``/``clip``, which
    override the official files its config names). Without it: zero-shot from the official ``checkpoint`` (and
    ``clip``), the tokenizer from ``tokenizer_path`` or the checkpoint folder. With a ``dtype`` and official
    files the model is built on the ``meta`` device and each shard is loaded straight into ``dtype``.
    """
    import sys
    from pathlib import Path

    from transformers import AutoTokenizer

    from baselines.errors import BaselineError
    from calico_baseline.checkpoints import BASE_FILE, report_line
    from calico_baseline.tokenization import add_grounding_tokens

    try:
        if model_dir is not None:
            path = Path(model_dir)
            config = CalicoConfig.from_pretrained(path)
            if getattr(config, "baseline", None) != system:
                raise BaselineError(f"{path}: holds a {getattr(config, 'baseline', 'calico')!r} model, not {system!r}")
            if not (path / BASE_FILE).is_file() and not (checkpoint or config.base_checkpoints.get("checkpoint")):
                raise BaselineError(f"{path}: no {BASE_FILE}; pass --checkpoint (and --clip) for the frozen base")
            tokenizer = AutoTokenizer.from_pretrained(path)
            # the official files ``mixedparts-baseline train`` recorded in the config, unless given here
            model = MultiImageLlavaForCausalLM.from_pretrained(
                path, config=config, dtype=dtype, base_checkpoints={"checkpoint": checkpoint, "clip": clip})
        elif checkpoint is not None:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or checkpoint)
            add_grounding_tokens(tokenizer)
            model, report = build_official(system, checkpoint, clip, tokenizer, dtype=dtype)
            print(report_line(report), file=sys.stderr)
        else:
            raise BaselineError(f"{system}: pass --model DIR (fine-tuned) or --checkpoint PATH (official weights)")
    except (OSError, ValueError) as error:
        raise BaselineError(f"{system}: cannot load the model: {error}") from None
    if dtype is not None:
        model.to(dtype)
    return model.to(device).eval(), tokenizer


DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _run(system: str, args, rows: list[dict], images) -> list[dict]:
    from calico_baseline.data import CalicoProcessor
    from calico_baseline.generation import predict_batch

    from tqdm import tqdm

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype]
    model, tokenizer = load_model(system, args.model, args.checkpoint, args.clip, args.tokenizer, device, dtype)
    processor = CalicoProcessor(tokenizer, model.config)
    predictions = []
    for start in tqdm(range(0, len(rows), args.batch_size), desc=system, unit="batch"):
        chunk = rows[start:start + args.batch_size]
        batch = processor.collate([processor(row, images.open_all(row), train=False) for row in chunk])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=dtype or torch.float32,
                                             enabled=dtype is not None):
            predictions += predict_batch(model, tokenizer, batch, args.max_new_tokens)
    return predictions


def run_lisa(args, rows, images):
    return _run("lisa", args, rows, images)


def run_glamm(args, rows, images):
    return _run("glamm", args, rows, images)


# ------------------------------------------------------------------ single-image referring segmenter (cascade)


class LisaSegmenter:
    """LISA as a single-image referring segmenter: one image, "Can you segment the {name} in this image?".

    The model answers as LISA does ("Sure, it is [SEG].") and the mask of its first ``[SEG]`` is
    returned (bool H×W at the image's size); no ``[SEG]`` in the answer gives ``None`` (no mask).
    Any Multi-Image LISA/GLaMM model works, k = 1 being the single-image case.
    """

    def __init__(self, model, tokenizer, max_new_tokens: int = 32, device: str = "cpu"):
        from calico_baseline.data import CalicoProcessor

        self.model, self.tokenizer = model, tokenizer
        self.processor = CalicoProcessor(tokenizer, model.config)
        self.max_new_tokens, self.device = max_new_tokens, device
        self.answers: list[str] = []

    def segment(self, image, name: str):
        from calico_baseline.generation import predict_batch
        from mixedparts import masks

        from baselines.cascade import LISA_PROMPT

        row = {"sample_id": f"segment:{name}", "question": LISA_PROMPT.format(name=name),
               "images": [{"height": image.height, "width": image.width}]}
        batch = self.processor.collate([self.processor(row, [image], train=False)])
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.no_grad():
            prediction = predict_batch(self.model, self.tokenizer, batch, self.max_new_tokens)[0]
        self.answers.append(prediction["text"])
        if not prediction["segments"]:
            return None
        return masks.decode(prediction["segments"][0]["mask"]).astype(bool)


def lisa_segmenter(args) -> LisaSegmenter:
    """The cascade's ``--segmenter lisa``: ``--segmenter-model DIR`` or ``--segmenter-checkpoint PATH``."""
    from baselines.errors import BaselineError

    model_dir = getattr(args, "segmenter_model", None)
    checkpoint = getattr(args, "segmenter_checkpoint", None)
    if not model_dir and not checkpoint:
        raise BaselineError("--segmenter lisa needs --segmenter-model DIR or --segmenter-checkpoint PATH "
                            "(LISA-7B-v1)")
    system = "lisa"
    if model_dir:
        try:
            config = CalicoConfig.from_pretrained(model_dir)
        except (OSError, ValueError) as error:
            raise BaselineError(f"--segmenter-model {model_dir}: {error}") from None
        system = getattr(config, "baseline", None) or "lisa"
    model, tokenizer = load_model(system, model_dir, checkpoint, getattr(args, "segmenter_clip", None),
                                  getattr(args, "segmenter_tokenizer", None), getattr(args, "device", "cpu"))
    return LisaSegmenter(model, tokenizer, getattr(args, "segmenter_max_new_tokens", 32),
                         getattr(args, "device", "cpu"))
