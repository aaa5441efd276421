"""``CalicoConfig``: one composite Hugging Face config for the whole model, with the presets ``calico-7b`` and
``calico-tiny``.

As in ``Blip2Config`` / ``LlavaConfig``, each transformers sub-model has a config object built once in
``__init__`` (from a dict, or taken as given) and written out by ``to_dict``: ``vision_config``
(Blip2VisionConfig: EVA-CLIP ViT-g), ``qformer_config`` (Blip2QFormerConfig, its ``encoder_hidden_size`` set
to the vision width), ``dino_config`` (Dinov2Config) and ``text_config`` (LlamaConfig). A dict naming a
``model_type`` gets that type's config class. ``sam_config`` stays a dict of segment-anything sizes: SAM is
built by segment-anything's own code, for which transformers has no config class.
``base_checkpoints`` names the local folders the frozen weights come from (docs/checkpoints.md).
Every ablation of the paper is one field: ``use_qformer``, ``use_dino``, ``use_cem``, ``use_cam``, ``cam_layers``.
With checkpoint folders named, their own files give the sizes and a preset fills the rest (docs/checkpoints.md).
See ``docs/model.md`` for where each default comes from.
"""

from __future__ import annotations

import copy

from transformers import AutoConfig, Blip2QFormerConfig, Dinov2Config, LlamaConfig, PretrainedConfig

IMAGE_PLACEHOLDER_ID = -200
"""Id written in ``input_ids`` at every visual-token slot (LLaVA's ``IMAGE_TOKEN_INDEX``); the model swaps in embeddings."""

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAM_MEAN = (123.675, 116.28, 103.53)  # on the 0-255 scale
SAM_STD = (58.395, 57.12, 57.375)

SAM_VIT_H = {"image_size": 1024, "patch_size": 16, "encoder_embed_dim": 1280, "encoder_depth": 32,
             "encoder_num_heads": 16, "encoder_global_attn_indexes": [7, 15, 23, 31], "window_size": 14,
             "prompt_embed_dim": 256, "decoder_depth": 2, "decoder_mlp_dim": 2048, "decoder_num_heads": 8,
             "iou_head_depth": 3, "iou_head_hidden_dim": 256}

DINOV2 = {  # facebook/dinov2-{small,base,large,giant}
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
    "giant": {"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24, "use_swiglu_ffn": True},
}

VICUNA_7B = {"vocab_size": 32007, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
             "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
             "tie_word_embeddings": False}


SUB_CONFIG_TYPES = {
    # the model_type of a sub-config given as a dict that names none (every config.json written before the
    # sub-configs were objects: their dicts held only the sizes, read as these classes)
    "vision_config": "blip_2_vision_model",
    "qformer_config": "blip_2_qformer",
    "dino_config": "dinov2",
    "text_config": "llama",
}


def sub_config(value: dict | PretrainedConfig | None, key: str) -> PretrainedConfig:
    """A sub-config object: ``value`` itself when it is one, else the class of its ``model_type`` (or the default
    of ``key``) built from the dict, as ``LlavaConfig`` builds its ``vision_config``."""
    if isinstance(value, PretrainedConfig):
        return value
    settings = dict(value or {})
    model_type = settings.pop("model_type", SUB_CONFIG_TYPES[key])
    return AutoConfig.for_model(model_type, **settings)


class CalicoConfig(PretrainedConfig):
    model_type = "calico"
    # transformers walks these (attention implementation, dtype) and serialises each through its own to_dict
    sub_configs = {"vision_config": AutoConfig, "qformer_config": Blip2QFormerConfig, "dino_config": Dinov2Config,
                   "text_config": LlamaConfig}

    def __init__(
        self,
        vision_config: dict | PretrainedConfig | None = None,
        qformer_config: dict | PretrainedConfig | None = None,
        num_query_tokens: int = 32,
        dino_config: dict | PretrainedConfig | None = None,
        text_config: dict | PretrainedConfig | None = None,
        sam_config: dict | None = None,
        # ablations
        use_qformer: bool = True,
        use_dino: bool = True,
        use_cem: bool = True,
        use_cam: bool = True,
        cam_layers: list[int] | tuple[int, ...] = (11, 22),
        cam_own_queries: bool = True,
        cem_joint: bool = False,
        cem_num_heads: int = 16,
        # LoRA (peft)
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: list[str] | tuple[str, ...] = ("q_proj", "v_proj"),
        # what trains besides LoRA, CEM and CAMs
        train_mask_decoder: bool = True,
        train_seg_projection: bool = False,
        train_language_projection: bool = False,
        extra_trainable: list[str] | tuple[str, ...] = (),
        # tokens
        seg_token: str = "[SEG]",
        seg_token_id: int | None = 32004,
        image_placeholder_id: int = IMAGE_PLACEHOLDER_ID,
        # loss
        ce_loss_weight: float = 1.0,
        # the text loss's weight on the tokens between <p> and </p> (the names) relative to the others (GLaMM,
        # LISA and the paper: 1, a plain mean); a model learning from scratch gets the answer's form from almost
        # every token and which object and part it is from a few
        phrase_token_weight: float = 1.0,
        phrase_token_ids: list[int] | tuple[int, int] | None = None,  # (<p>, </p>), set from the tokenizer
        mask_loss_weight: float = 2.0,
        dice_loss_weight: float = 0.5,
        mask_loss: str = "focal",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        # "full": masks scored at the image's original size (GLaMM/LISA, the paper); "low": at the mask decoder's
        # own resolution against area-downsampled ground truth (cheaper, for CPU training)
        mask_loss_resolution: str = "full",
        # where the frozen base weights come from: {"glamm": path, "blip2": path, "dino": path} (local paths)
        base_checkpoints: dict | None = None,
        **kwargs,
    ):
        self.vision_config = sub_config(vision_config, "vision_config")
        self.qformer_config = sub_config(qformer_config, "qformer_config")
        self.qformer_config.encoder_hidden_size = self.vision_config.hidden_size  # as Blip2Config
        self.num_query_tokens = int(num_query_tokens)
        self.dino_config = sub_config(dino_config or DINOV2["giant"], "dino_config")
        self.text_config = sub_config(text_config or VICUNA_7B, "text_config")
        self.sam_config = {**SAM_VIT_H, **(sam_config or {})}
        self.use_qformer = bool(use_qformer)
        self.use_dino = bool(use_dino)
        self.use_cem = bool(use_cem)
        self.use_cam = bool(use_cam)
        self.cam_layers = [int(i) for i in cam_layers]
        self.cam_own_queries = bool(cam_own_queries)
        self.cem_joint = bool(cem_joint)
        self.cem_num_heads = int(cem_num_heads)
        self.lora_r = int(lora_r)
        self.lora_alpha = int(lora_alpha)
        self.lora_dropout = float(lora_dropout)
        self.lora_target_modules = list(lora_target_modules)
        self.train_mask_decoder = bool(train_mask_decoder)
        self.train_seg_projection = bool(train_seg_projection)
        self.train_language_projection = bool(train_language_projection)
        self.extra_trainable = list(extra_trainable)
        self.seg_token = seg_token
        self.seg_token_id = seg_token_id
        self.image_placeholder_id = int(image_placeholder_id)
        self.ce_loss_weight = float(ce_loss_weight)
        self.phrase_token_weight = float(phrase_token_weight)
        self.phrase_token_ids = [int(i) for i in phrase_token_ids] if phrase_token_ids is not None else None
        if self.phrase_token_weight != 1.0 and (self.phrase_token_ids is None or len(self.phrase_token_ids) != 2):
            raise ValueError("phrase_token_weight needs phrase_token_ids: the ids of <p> and </p>")
        self.mask_loss_weight = float(mask_loss_weight)
        self.dice_loss_weight = float(dice_loss_weight)
        if mask_loss not in ("focal", "bce"):
            raise ValueError(f"mask_loss must be 'focal' or 'bce', got {mask_loss!r}")
        self.mask_loss = mask_loss
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        if mask_loss_resolution not in ("full", "low"):
            raise ValueError(f"mask_loss_resolution must be 'full' or 'low', got {mask_loss_resolution!r}")
        self.mask_loss_resolution = mask_loss_resolution
        self.base_checkpoints = {k: str(v) for k, v in (base_checkpoints or {}).items() if v is not None}
        super().__init__(**kwargs)
        n_layers = self.text_config.num_hidden_layers
        if self.use_cam:
            if not self.use_qformer:
                raise ValueError("use_cam needs use_qformer: a CAM adds its Q-Former output onto the image's "
                                 "query-token slots, which do not exist with the patch-token projector")
            bad = [i for i in self.cam_layers if not 0 <= i < n_layers]
            if bad:
                raise ValueError(f"cam_layers {bad} outside the LLM's {n_layers} decoder layers")

    # ---------------------------------------------------------------- derived settings
    @property
    def cem_enabled(self) -> bool:
        """DINOv2 + CEM only feed the CAMs: without CAMs they are not built."""
        return self.use_dino and self.use_cem and self.use_cam

    @property
    def active_cam_layers(self) -> list[int]:
        return sorted(set(self.cam_layers)) if self.use_cam else []

    @property
    def needs_qformer(self) -> bool:
        return self.use_qformer or self.use_cam

    @property
    def visual_tokens_per_image(self) -> int:
        if self.use_qformer:
            return self.num_query_tokens
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2


def calico_7b(**overrides) -> CalicoConfig:
    """Paper sizes: EVA ViT-g + BLIP-2 Q-Former (32 queries), DINOv2-giant, Vicuna-7B (GLaMM), SAM ViT-H.

    ≈29.2M trainable (LoRA 4.19M + SAM decoder 4.06M + 2 CAMs 12.64M + CEM 8.30M), see docs/model.md.
    """
    return CalicoConfig(**overrides)


TINY = dict(
    vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "image_size": 32, "patch_size": 8},
    qformer_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                    "cross_attention_frequency": 1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    num_query_tokens=4,
    dino_config={"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "mlp_ratio": 2,
                 "image_size": 32, "patch_size": 8},
    text_config={"vocab_size": 600, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                 "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
                 "rms_norm_eps": 1e-5, "tie_word_embeddings": False},
    sam_config={"image_size": 64, "patch_size": 16, "encoder_embed_dim": 32, "encoder_depth": 2,
                "encoder_num_heads": 2, "encoder_global_attn_indexes": [1], "window_size": 2,
                "prompt_embed_dim": 32, "decoder_depth": 2, "decoder_mlp_dim": 64, "decoder_num_heads": 2,
                "iou_head_depth": 2, "iou_head_hidden_dim": 32},
    cam_layers=(1, 3),
    cem_num_heads=4,
    lora_dropout=0.0,
    seg_token_id=None,  # set from the tokenizer
)


def calico_tiny(**overrides) -> CalicoConfig:
    """A few-MB model with the full architecture, for tests and the demo (random frozen parts)."""
    settings = copy.deepcopy(TINY)
    for key, value in overrides.items():
        if key.endswith("_config") and isinstance(value, dict) and key in settings:
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return CalicoConfig(**settings)


PRESETS = {"calico-7b": calico_7b, "calico-tiny": calico_tiny}
PRESET_SUB_CONFIGS = {"calico-7b": {"dino_config": DINOV2["giant"], "text_config": VICUNA_7B}}


def preset(name: str, **overrides) -> CalicoConfig:
    """The preset with ``overrides`` over it; a ``*_config`` override is merged key by key into the preset's, so
    one read from a checkpoint's config.json keeps only the preset values that file does not state."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    for key, base in PRESET_SUB_CONFIGS.get(name, {}).items():
        if isinstance(overrides.get(key), dict):
            overrides[key] = {**base, **overrides[key]}
    return PRESETS[name](**overrides)


def layered(*layers: dict) -> dict:
    """CalicoConfig keywords, later layers over earlier ones, ``*_config`` dicts merged key by key."""
    settings: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key.endswith("_config") and isinstance(value, dict):
                settings[key] = {**settings.get(key, {}), **value}
            else:
                settings[key] = value
    return settings
