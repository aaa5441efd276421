"""Visual tokens: EVA-CLIP ViT-g (transformers ``Blip2VisionModel``) → Q-Former with learned queries → Linear.

Attribute names follow ``Blip2ForConditionalGeneration`` (``vision_model``, ``qformer``, ``query_tokens``,
``language_projection``) so transformers-format BLIP-2 / InstructBLIP checkpoints load with a prefix strip.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerModel, Blip2VisionModel

from calico_baseline.config import CalicoConfig


class VisualTokenizer(nn.Module):
    """N images → N×Q×d_llm visual tokens (Q = 32 queries), plus the N×L×d_v EVA features for CEM/CAM.

    With ``use_qformer=False`` (ablation): all patch tokens (CLS dropped) through a 2-layer GELU MLP
    projector (LLaVA/GLaMM style), N×P×d_llm with P = (image_size/patch)².
    """

    def __init__(self, config: CalicoConfig):
        super().__init__()
        self.config = config
        vision, d_llm = config.vision_config, config.text_config.hidden_size
        self.vision_model = Blip2VisionModel(vision)
        if config.needs_qformer:
            qformer = config.qformer_config
            self.qformer = Blip2QFormerModel(qformer)
            self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, qformer.hidden_size))
            nn.init.normal_(self.query_tokens, std=0.02)
        if config.use_qformer:
            self.language_projection = nn.Linear(config.qformer_config.hidden_size, d_llm)
        else:
            self.mm_projector = nn.Sequential(nn.Linear(vision.hidden_size, d_llm), nn.GELU(), nn.Linear(d_llm, d_llm))

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """N×3×S×S → N×(1+P)×d_v EVA features (after ``post_layernorm``, BLIP-2's ``ln_vision``)."""
        dtype = self.vision_model.embeddings.patch_embedding.weight.dtype
        return self.vision_model(pixel_values=pixel_values.to(dtype)).last_hidden_state

    def run_qformer(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """queries N×Q×d_q over features N×L×d_v → N×Q×d_q."""
        # every feature token is real: no encoder mask (also keeps meta-device FLOP counting possible)
        return self.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """N×L×d_v EVA features → N×Q×d_llm visual tokens for the LLM."""
        if self.config.use_qformer:
            queries = self.query_tokens.expand(features.shape[0], -1, -1)
            return self.language_projection(self.run_qformer(queries, features))
        return self.mm_projector(features[:, 1:])
