"""``CalicoForCausalLM``: the whole model (docs/model.md) with explicit shapes.

Batch layout (built by :mod:`calico_baseline.data`), B samples with N images in total, T tokens:
  input_ids        B×T   text ids; every visual-token slot holds ``config.image_placeholder_id`` (-200)
  attention_mask   B×T   1 = real token
  labels           B×T   answer ids (+ eos), -100 elsewhere (optional)
  instruction_positions  (B,)  last prompt token of each sample (CAM instruction token)
  clip_pixels      N×3×S×S     EVA-CLIP view       dino_pixels N×3×S_d×S_d   DINOv2 view
  sam_pixels       N×3×S_sam×S_sam  SAM view (padded), sam_input_sizes N×2 (resized h', w'),
  original_sizes   N×2 (H, W)    image_sample (N,) sample index of each image (images in prompt order)
  seg_images       list (B) of lists: 0-based image index of each [SEG] of the answer (training)
  gt_masks         list (B) of lists of H×W 0/1 tensors, one per [SEG] (training)
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Model, LlamaForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from calico_baseline import checkpoints
from calico_baseline.cam import CamContext, CorrespondenceAdaptation, install_cam_layers
from calico_baseline.cem import CorrespondenceExtraction
from calico_baseline.config import CalicoConfig
from calico_baseline.losses import mask_losses
from calico_baseline.sam import build_sam, crop_low_res, decode_prompts, upscale_masks
from calico_baseline.vision import VisualTokenizer


@dataclass
class CalicoOutput(ModelOutput):
    loss: torch.Tensor | None = None
    ce_loss: torch.Tensor | None = None
    mask_loss: torch.Tensor | None = None
    dice_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # B×T×V
    hidden_states: torch.Tensor | None = None  # B×T×d, last layer after the final norm
    pred_masks: list | None = None  # per sample: list of H×W logits, one per [SEG]
    num_masks: int | None = None


def _cache_kwarg() -> str:
    from transformers.models.llama.modeling_llama import LlamaModel
    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


CACHE_KWARG = _cache_kwarg()


def _grad_if_trained(module: nn.Module):
    """No autograd graph through a frozen encoder (the paper's setting); calico-tiny trains its random encoders."""
    return torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()))


class CalicoForCausalLM(PreTrainedModel):
    config_class = CalicoConfig
    base_model_prefix = "calico"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "CamDecoderLayer"]

    def __init__(self, config: CalicoConfig, verbose: bool = False):
        super().__init__(config)
        text = config.text_config
        d_llm = text.hidden_size
        d_vision = config.vision_config.hidden_size
        # frozen EVA-CLIP → Q-Former → Linear (visual tokens)
        self.visual = VisualTokenizer(config)
        # frozen DINOv2 + trainable CEM
        if config.cem_enabled:
            self.dino = Dinov2Model(config.dino_config)
            self.cem = CorrespondenceExtraction(d_vision, config.dino_config.hidden_size, config.cem_num_heads,
                                                joint=config.cem_joint)
        # trainable CAMs (own linears and queries per layer)
        if config.active_cam_layers:
            qformer_dim = config.qformer_config.hidden_size
            self.cams = nn.ModuleDict({
                str(i): CorrespondenceAdaptation(d_llm, qformer_dim, config.num_query_tokens,
                                                 self.visual.query_tokens.detach() if config.cam_own_queries else None)
                for i in config.active_cam_layers})
        # LLM with CAM layers, then LoRA
        llm = LlamaForCausalLM(text)
        install_cam_layers(llm, config.active_cam_layers)
        self.language_model = self._add_lora(llm)
        # [SEG] projection (GLaMM's text_hidden_fcs) and SAM
        sam_dim = config.sam_config["prompt_embed_dim"]
        self.text_hidden_fcs = nn.ModuleList([nn.Sequential(nn.Linear(d_llm, d_llm), nn.ReLU(inplace=True),
                                                            nn.Linear(d_llm, sam_dim), nn.Dropout(0.0))])
        self.grounding_encoder = build_sam(config.sam_config)
        self.post_init()
        self._zero_lora_b()
        self.set_trainable()
        if verbose:
            print(self.trainable_summary())

    def _init_weights(self, module):
        """Every component initialises itself on construction (zero-init CEM/CAM outputs must stay zero)."""

    def _zero_lora_b(self) -> None:
        """LoRA starts as the identity (B = 0, as peft initialises it): ``post_init`` runs the Llama initialiser over
        the peft-wrapped LLM, which would otherwise draw B at random."""
        with torch.no_grad():
            for module in self.language_model.modules():
                for linear in getattr(module, "lora_B", {}).values() if hasattr(module, "lora_A") else ():
                    if not linear.weight.is_meta:
                        linear.weight.zero_()

    def _add_lora(self, llm):
        from peft import LoraConfig, get_peft_model
        c = self.config
        if c.lora_r <= 0:
            return llm
        lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          target_modules=list(c.lora_target_modules), bias="none")
        return get_peft_model(llm, lora)

    # ---------------------------------------------------------------- modules by role
    @property
    def llm(self) -> LlamaForCausalLM:
        """The (LoRA-injected) ``LlamaForCausalLM``."""
        model = self.language_model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules trained in full (besides LoRA)."""
        c = self.config
        modules = {}
        if c.cem_enabled:
            modules["cem"] = self.cem
        if c.active_cam_layers:
            modules["cams"] = self.cams
        if c.train_mask_decoder:
            modules["grounding_encoder.mask_decoder"] = self.grounding_encoder.mask_decoder
        if c.train_seg_projection:
            modules["text_hidden_fcs"] = self.text_hidden_fcs
        if c.use_qformer and c.train_language_projection:
            modules["visual.language_projection"] = self.visual.language_projection
        if not c.use_qformer:  # the patch-token projector is new: it must train
            modules["visual.mm_projector"] = self.visual.mm_projector
        for name in c.extra_trainable:
            modules[name] = self.get_submodule(name)
        return modules

    def set_trainable(self) -> None:
        for name, param in self.named_parameters():
            param.requires_grad = "lora_" in name
        for module in self.trainable_modules().values():
            module.requires_grad_(True)

    def train(self, mode: bool = True):
        """Trained parts train; every frozen part (EVA-CLIP, the Q-Former with its 0.1 dropout, DINOv2, SAM's image
        and prompt encoders, a frozen ``text_hidden_fcs``, a CLIP tower) stays in eval mode, so the visual tokens
        are the same on every pass — as GLaMM/LISA, which only ever call ``.train()`` on their trained modules.
        The LLM keeps ``training`` (LoRA dropout, and transformers runs gradient checkpointing only in training)."""
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
        return self

    def frozen_modules(self) -> list[nn.Module]:
        """The largest sub-modules outside the LLM that hold parameters, none of them trainable."""
        frozen = []

        def visit(module: nn.Module) -> None:
            for child in module.children():
                if child is self.language_model:
                    continue
                params = list(child.parameters())
                if params and not any(p.requires_grad for p in params):
                    frozen.append(child)
                elif params:  # a parameterless child of a trained module (its dropout) trains with it
                    visit(child)

        visit(self)
        return frozen

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def trainable_summary(self) -> str:
        total = sum(p.numel() for p in self.parameters())
        groups: dict[str, int] = {}
        for name, p in self.trainable_parameters().items():
            key = "lora" if "lora_" in name else name.split(".")[0]
            groups[key] = groups.get(key, 0) + p.numel()
        trainable = sum(groups.values())
        detail = ", ".join(f"{k} {v:,}" for k, v in sorted(groups.items()))
        return f"Calico trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%): {detail}"

    # ---------------------------------------------------------------- pieces of the forward
    def encode_images(self, clip_pixels, dino_pixels=None, image_sample=None):
        """→ (visual tokens N×Q×d_llm, CAM features N×L×d_v or None)."""
        # The image encoder itself: EVA-CLIP's vision_model, or a LLaVA-style baseline's CLIP vision_tower.
        encoder = getattr(self.visual, "vision_model", None) or getattr(self.visual, "vision_tower", self.visual)
        with _grad_if_trained(encoder):
            clip = self.visual.encode(clip_pixels)  # N×L×d_v
        dino = None
        if self.config.cem_enabled:
            with _grad_if_trained(self.dino):
                dino = self.dino(pixel_values=dino_pixels.to(self.dino.dtype)).last_hidden_state  # N×L_d×d_d
        tokens = self.visual.tokens(clip)
        if not self.config.active_cam_layers:
            return tokens, None
        features = self.cem(clip, dino, image_sample) if self.config.cem_enabled else clip
        return tokens, features

    def embed(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor) -> torch.Tensor:
        """B×T ids with -200 slots + N×Q×d visual tokens (in slot order) → B×T×d input embeddings."""
        slots = input_ids == self.config.image_placeholder_id
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(slots, 0))
        flat = visual_tokens.reshape(-1, visual_tokens.shape[-1]).to(embeds.dtype)
        if int(slots.sum()) != flat.shape[0]:
            raise ValueError(f"{int(slots.sum())} visual-token slots in input_ids but {flat.shape[0]} visual tokens")
        return embeds.masked_scatter(slots[..., None], flat)

    def slot_positions(self, input_ids: torch.Tensor, image_sample: torch.Tensor, per_image: int) -> torch.Tensor:
        """N×Q positions of each image's slots (images of a sample in prompt order)."""
        rows, cols = (input_ids == self.config.image_placeholder_id).nonzero(as_tuple=True)
        # nonzero is row-major: sample by sample, left to right, which is the image order of image_sample
        return cols.reshape(-1, per_image)

    def run_llm(self, inputs_embeds, attention_mask, position_ids=None, cam_context=None, cache=None,
                use_cache=False):
        """Decoder stack → (last hidden states B×T×d after the final norm, cache)."""
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        kwargs = {CACHE_KWARG: cache} if cache is not None else {}
        if cam_context is not None:
            kwargs["cam_context"] = cam_context
        out = self.llm.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=use_cache, **kwargs)
        return out.last_hidden_state, getattr(out, "past_key_values", None) or getattr(out, "cache", None)

    def seg_embeddings(self, hidden: torch.Tensor) -> torch.Tensor:
        """n×d [SEG] hidden states → n×C SAM prompt embeddings (frozen text_hidden_fcs)."""
        return self.text_hidden_fcs[0](hidden.to(self.text_hidden_fcs[0][0].weight.dtype))

    def sam_embeddings(self, sam_pixels: torch.Tensor) -> torch.Tensor:
        """N×3×S×S → N×C×g×g; frozen unless configured to train (calico-tiny).

        GLaMM runs the frozen ViT-H one image at a time, under no_grad, to bound its activations; a trained encoder
        (calico-tiny) runs on all images at once: one call instead of N is 4x faster there, its backward included."""
        encoder = self.grounding_encoder.image_encoder
        pixels = sam_pixels.to(encoder.patch_embed.proj.weight.dtype)
        with _grad_if_trained(encoder):
            if any(p.requires_grad for p in encoder.parameters()):
                return encoder(pixels)
            return torch.cat([encoder(p[None]) for p in pixels])

    def masks_for(self, seg_states: list[torch.Tensor], seg_images: list[list[int]], image_sample: torch.Tensor,
                  sam_pixels, sam_input_sizes, original_sizes, low_res: list | None = None,
                  full_size: bool = True) -> list[list[torch.Tensor]]:
        """Per sample: the [SEG] states (n_b×d) and their 0-based image indices → list of H×W mask logits.

        Every prompt of the batch is decoded in one mask-decoder pass (:func:`~calico_baseline.sam.decode_prompts`).
        With a ``low_res`` list, also fills it per sample with the decoder's own logits cropped to the image
        (h×w), with their graph; the H×W masks are then computed from them without one (scoring only), or not at
        all with ``full_size=False`` (a training step, which reads only the low-res logits: entries ``None``)."""
        image_embeddings = self.sam_embeddings(sam_pixels)
        first_image = {}
        for n, b in enumerate(image_sample.tolist()):
            first_image.setdefault(b, n)
        prompt_image = [first_image[b] + k for b, images in enumerate(seg_images) for k in images]
        results = [[None] * len(images) for images in seg_images]
        small = [[None] * len(images) for images in seg_images]
        if prompt_image:
            states = torch.cat([s[: len(images)] for s, images in zip(seg_states, seg_images)])
            which = torch.tensor(prompt_image, device=image_embeddings.device)
            logits = decode_prompts(self.grounding_encoder, image_embeddings[which], self.seg_embeddings(states))
            # the prompts of one image of one sample share its sizes: cropped and upscaled together.
            # groups[(sample, image)]: (the prompts' rows in logits, their slots in the sample's list)
            groups: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
            for row, (b, i, k) in enumerate((b, i, k) for b, images in enumerate(seg_images)
                                            for i, k in enumerate(images)):
                rows, slots = groups.setdefault((b, k), ([], []))
                rows.append(row)
                slots.append(i)
            for (b, k), (rows, slots) in groups.items():
                n = first_image[b] + k
                input_size = tuple(int(v) for v in sam_input_sizes[n])
                group = logits[rows]
                if low_res is not None:
                    for i, mask in zip(slots, crop_low_res(self.grounding_encoder, group, input_size)):
                        small[b][i] = mask
                    group = group.detach()
                    if not full_size:
                        continue
                decoded = upscale_masks(self.grounding_encoder, group, input_size,
                                        tuple(int(v) for v in original_sizes[n]))
                for i, mask in zip(slots, decoded):
                    results[b][i] = mask
        if low_res is not None:
            low_res.extend(small)
        return results

    def prefill_inputs(self, batch: dict):
        """Embeddings and CAM context of a batch (shared by training forward and generation)."""
        image_sample = batch["image_sample"]
        tokens, features = self.encode_images(batch["clip_pixels"], batch.get("dino_pixels"), image_sample)
        embeds = self.embed(batch["input_ids"], tokens)
        context = None
        if features is not None:
            context = CamContext(self.cams, self.visual.run_qformer, features, image_sample,
                                 self.slot_positions(batch["input_ids"], image_sample, tokens.shape[1]),
                                 batch["instruction_positions"])
        return embeds, context

    # ---------------------------------------------------------------- training forward
    def forward(self, input_ids, attention_mask, clip_pixels, image_sample, instruction_positions, labels=None,
                dino_pixels=None, sam_pixels=None, sam_input_sizes=None, original_sizes=None, seg_images=None,
                gt_masks=None, full_size_masks: bool = True, **_) -> CalicoOutput:
        """Teacher-forced forward; with ``labels``, the losses. ``full_size_masks=False`` (the training loop's)
        leaves ``pred_masks`` entries ``None`` when the mask loss is scored at low resolution, which then needs no
        full-size masks."""
        batch = dict(input_ids=input_ids, clip_pixels=clip_pixels, dino_pixels=dino_pixels, image_sample=image_sample,
                     instruction_positions=instruction_positions)
        embeds, context = self.prefill_inputs(batch)
        hidden, _ = self.run_llm(embeds, attention_mask, cam_context=context)  # B×T×d
        logits = self.llm.lm_head(hidden)  # B×T×V
        if labels is None:
            return CalicoOutput(logits=logits, hidden_states=hidden)
        c = self.config
        if c.phrase_token_weight == 1.0:
            ce = text_loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                             ignore_index=-100)
        else:
            text_loss, ce = weighted_text_loss(logits, labels, c)
        # the state *predicting* [SEG] (GLaMM/LISA shift): position p where token p+1 is a target [SEG]
        is_seg = torch.zeros_like(labels, dtype=torch.bool)
        is_seg[:, :-1] = labels[:, 1:] == c.seg_token_id
        seg_states = [hidden[b][is_seg[b]] for b in range(hidden.shape[0])]
        seg_images = [list(images)[: len(s)] for images, s in zip(seg_images or [[]] * len(seg_states), seg_states)]
        total = text_loss * c.ce_loss_weight
        mask_term = dice_term = hidden.sum() * 0
        pred_masks, num_masks = [[] for _ in seg_states], 0
        if sam_pixels is not None and any(len(s) for s in seg_images):
            low_res = [] if c.mask_loss_resolution == "low" else None
            pred_masks = self.masks_for(seg_states, seg_images, image_sample, sam_pixels, sam_input_sizes,
                                        original_sizes, low_res, full_size=full_size_masks)
            preds = [m for masks in (low_res if low_res is not None else pred_masks) for m in masks]
            targets = [g for b, masks in enumerate(pred_masks) for g in list(gt_masks[b])[: len(masks)]]
            if low_res is not None:
                # area interpolation: each low-res target pixel is the share of its footprint the mask covers
                targets = [F.interpolate(g[None, None].float(), tuple(p.shape), mode="area")[0, 0]
                           for p, g in zip(preds, targets)]
            mask_term, dice_term, num_masks = mask_losses(preds, targets, c.mask_loss, c.focal_alpha, c.focal_gamma)
            total = total + c.mask_loss_weight * mask_term + c.dice_loss_weight * dice_term
        return CalicoOutput(loss=total, ce_loss=ce.detach(), mask_loss=mask_term.detach(),
                            dice_loss=dice_term.detach(), logits=logits, hidden_states=hidden,
                            pred_masks=pred_masks, num_masks=num_masks)

    # ---------------------------------------------------------------- persistence (PreTrainedModel's contract)
    def load_base_checkpoints(self, strict: bool = True, dtype: torch.dtype | None = None) -> dict:
        """Load the frozen (and pretrained trainable) weights from ``config.base_checkpoints`` into this model;
        the report of :func:`calico_baseline.checkpoints.load_base_checkpoints`. Subclasses with other base
        checkpoints (the LISA/GLaMM baselines) override this one method."""
        unknown = sorted(set(self.config.base_checkpoints) - set(checkpoints.BASE_KINDS))
        if unknown:
            raise ValueError(f"base_checkpoints {unknown}: Calico's are {', '.join(checkpoints.BASE_KINDS)}")
        return checkpoints.load_base_checkpoints(self, strict=strict, dtype=dtype, **self.config.base_checkpoints)

    @classmethod
    def from_base_checkpoints(cls, config: CalicoConfig, *model_args, dtype: torch.dtype | None = None,
                              trainable_dtype: torch.dtype | None = None, strict: bool = True, **kwargs):
        """``(model, report)``: a fresh model on the base checkpoints its config names (before training).

        With ``dtype`` the model is built on the ``meta`` device and each checkpoint tensor is assigned straight
        in ``dtype``, the fresh modules (LoRA, CEM, CAMs) materialised in it: no full-precision copy is ever made.
        ``trainable_dtype`` then casts the trained parameters (e.g. fp32 master weights under autocast)."""
        if dtype is not None:
            with torch.device("meta"):
                model = cls(config, *model_args, **kwargs)
        else:
            model = cls(config, *model_args, **kwargs)
        report = model.load_base_checkpoints(strict=strict, dtype=dtype)
        if trainable_dtype is not None and trainable_dtype != (dtype or torch.float32):
            for param in model.trainable_parameters().values():
                param.data = param.data.to(trainable_dtype)
        return model, report

    def save_pretrained(self, save_directory, is_main_process: bool = True, state_dict: dict | None = None,
                        safe_serialization: bool = True, push_to_hub: bool = False, **kwargs):
        """Write config.json and only what was trained (LoRA + the trained modules), plus the frozen base when the
        config names no base checkpoints (calico-tiny, whose frozen parts are random); see
        :func:`calico_baseline.checkpoints.save_trained`. As in transformers, ``state_dict`` is the full state when
        it had to be gathered first (``accelerator.get_state_dict`` under FSDP / DeepSpeed), only the process with
        ``is_main_process`` writes, and a tokenizer saves itself (``tokenizer.save_pretrained``)."""
        if kwargs or push_to_hub or not safe_serialization:
            unsupported = sorted(kwargs) + ["push_to_hub"] * push_to_hub + ["safe_serialization=False"] * (
                not safe_serialization)
            raise TypeError(f"save_pretrained: {', '.join(unsupported)} not supported (Calico writes safetensors "
                            "to a local folder)")
        if is_main_process:
            checkpoints.save_trained(self, save_directory, state_dict)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config: CalicoConfig | str | None = None,
                        dtype=None, torch_dtype=None, device_map=None, **kwargs):
        """A model written by :meth:`save_pretrained`, rebuilt on its frozen base, in eval mode.

        As ``PreTrainedModel.from_pretrained``: ``config`` replaces the folder's config.json; keyword arguments
        that are config attributes override them (``base_checkpoints`` is merged path by path, ``None`` values
        ignored: the paths of a machine the run was not trained on), the others go to the model's ``__init__``;
        ``dtype`` (or its older name ``torch_dtype``) is a ``torch.dtype`` or its name, ``None`` for fp32;
        ``device_map`` a single device (``"cuda:0"``, ``{"": device}``). The frozen base comes from the folder's
        ``calico_base.safetensors`` or, without it, from the config's ``base_checkpoints``: with a ``dtype``
        through :meth:`from_base_checkpoints` (meta device, low memory), else in fp32. Local folders only;
        config.json files of older versions (sub-configs as plain dicts) load unchanged."""
        path = Path(pretrained_model_name_or_path)
        if not (path / checkpoints.TRAINED_FILE).is_file():
            raise OSError(f"{path}: no {checkpoints.TRAINED_FILE}; from_pretrained reads a local folder written by "
                          "save_pretrained (calico-train's output), nothing is downloaded")
        dtype, device = resolve_dtype(dtype, torch_dtype), resolve_device(device_map)
        paths = kwargs.pop("base_checkpoints", None) or {}
        if isinstance(config, PretrainedConfig):
            config = copy.deepcopy(config)
        else:
            config, kwargs = cls.config_class.from_pretrained(config or path, return_unused_kwargs=True, **kwargs)
        config.base_checkpoints = {**config.base_checkpoints, **{k: str(v) for k, v in paths.items() if v is not None}}
        if moved := sorted(set(kwargs) & set(MOVED_KWARGS)):
            raise TypeError(f"from_pretrained: {', '.join(moved)} is now {', '.join(MOVED_KWARGS[k] for k in moved)}")
        if (path / checkpoints.BASE_FILE).is_file():
            model = cls(config, *model_args, **kwargs)
            checkpoints.load_saved_base(model, path / checkpoints.BASE_FILE)
            if dtype is not None:
                model.to(dtype)
        elif config.base_checkpoints:
            model, _ = cls.from_base_checkpoints(config, *model_args, dtype=dtype, **kwargs)
        else:
            raise OSError(f"{path}: no {checkpoints.BASE_FILE} and its config names no base_checkpoints; pass "
                          "base_checkpoints={...} with the local folders of the frozen weights")
        checkpoints.load_trained_parts(model, path)
        return model.to(device).eval()


# the keyword arguments of this from_pretrained before it followed transformers' (checkpoints saved then load as is)
MOVED_KWARGS = {"device": "device_map=", "glamm": "base_checkpoints={'glamm': ...}",
                "blip2": "base_checkpoints={'blip2': ...}", "dino": "base_checkpoints={'dino': ...}"}


def phrase_tokens(targets: torch.Tensor, open_id: int, close_id: int) -> torch.Tensor:
    """B×T bool: the targets strictly between a ``<p>`` and its ``</p>`` (the names; the markers themselves not)."""
    opened = (targets == open_id).cumsum(1)
    closed = (targets == close_id).cumsum(1)
    return (opened > closed) & (targets != open_id)


def weighted_text_loss(logits: torch.Tensor, labels: torch.Tensor,
                       config: CalicoConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(the text loss with the name tokens weighted ``config.phrase_token_weight`` times the others, the plain mean
    that is logged as ``ce_loss``), both from one per-token cross-entropy."""
    targets = labels[:, 1:]
    token_ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                               reduction="none").view_as(targets)
    supervised = (targets != -100).float()
    weights = supervised * (1 + (config.phrase_token_weight - 1) * phrase_tokens(targets, *config.phrase_token_ids))
    plain = (token_ce * supervised).sum() / supervised.sum().clamp(min=1)
    return (token_ce * weights).sum() / weights.sum().clamp(min=1), plain


def resolve_dtype(dtype, torch_dtype=None) -> torch.dtype | None:
    """``dtype`` / ``torch_dtype`` of ``from_pretrained`` (a ``torch.dtype``, its name, or None) → a torch dtype."""
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise ValueError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; pass dtype only")
    value = dtype if dtype is not None else torch_dtype
    if value is None or isinstance(value, torch.dtype):
        return value
    resolved = getattr(torch, str(value), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype {value!r} is no torch dtype (e.g. 'bfloat16', torch.float16)")
    return resolved


def resolve_device(device_map) -> torch.device:
    """``device_map`` of ``from_pretrained`` → the one device the model goes to (Calico is not split over devices)."""
    if isinstance(device_map, dict) and set(device_map) == {""}:
        device_map = device_map[""]
    if device_map is None:
        return torch.device("cpu")
    if isinstance(device_map, int):
        return torch.device("cuda", device_map)
    if isinstance(device_map, (str, torch.device)) and str(device_map) not in ("auto", "balanced", "sequential"):
        return torch.device(device_map)
    raise ValueError(f"device_map {device_map!r}: Calico loads onto one device, e.g. 'cuda:0' or {{'': 'cpu'}}")
