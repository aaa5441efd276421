"""CAM, the Correspondence Adaptation Module, and the decoder layer that applies it (docs/model.md).

A CAM at layer ℓ changes the hidden states *entering* decoder layer ℓ:
  instr = h_ℓ[last prompt token]                                  B×d
  q     = queries + Linear_in(instr)                              per image: Q×d_q
  delta = Linear_out(Q-Former(q over F_cem of the image))         per image: Q×d
  h_ℓ[image slots] += delta
Linear_in and Linear_out start at zero (Cheetah's ``zero_module``), so the model starts as the base model.

It runs only when a :class:`CamContext` is passed to the LLM call (the prefill, or a training forward).
Cached decoding steps pass none: their tokens attend to the cached, already-updated image keys/values,
and since the instruction token is the last *prompt* token, prefill + cached decoding equals one full
forward over prompt + answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaDecoderLayer


class CorrespondenceAdaptation(nn.Module):
    def __init__(self, llm_dim: int, qformer_dim: int, num_queries: int, init_queries: torch.Tensor | None = None):
        super().__init__()
        self.linear_in = nn.Linear(llm_dim, qformer_dim)
        self.linear_out = nn.Linear(qformer_dim, llm_dim)
        self.queries = nn.Parameter(torch.zeros(1, num_queries, qformer_dim))
        for linear in (self.linear_in, self.linear_out):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        if init_queries is not None:
            with torch.no_grad():
                self.queries.copy_(init_queries)


@dataclass
class CamContext:
    """What the CAMs need during one prefill/training forward. N images over B samples, Q slots each.

    cams: ``{layer index (str): CorrespondenceAdaptation}``; run_qformer(queries N×Q×d_q, features) → N×Q×d_q;
    features: N×L×d_v (CEM output, or EVA features without CEM); image_sample: (N,) sample of each image;
    slot_positions: N×Q positions of each image's visual tokens in the sequence;
    instruction_positions: (B,) position of each sample's last prompt token.
    """

    cams: nn.ModuleDict
    run_qformer: object
    features: torch.Tensor
    image_sample: torch.Tensor
    slot_positions: torch.Tensor
    instruction_positions: torch.Tensor

    def apply(self, layer_index: int, hidden: torch.Tensor) -> torch.Tensor:
        cam = self.cams[str(layer_index)]
        batch = torch.arange(hidden.shape[0], device=hidden.device)
        instr = hidden[batch, self.instruction_positions]  # B×d
        shift = cam.linear_in(instr.to(cam.linear_in.weight.dtype))  # B×d_q
        queries = cam.queries + shift[self.image_sample][:, None, :]  # N×Q×d_q
        delta = cam.linear_out(self.run_qformer(queries, self.features))  # N×Q×d
        rows = self.image_sample[:, None].expand_as(self.slot_positions)
        return hidden.index_put((rows, self.slot_positions), delta.to(hidden.dtype), accumulate=True)


class CamDecoderLayer(LlamaDecoderLayer):
    """A Llama decoder layer that first applies its CAM when the call carries a ``cam_context``.

    Same parameters and state-dict keys as ``LlamaDecoderLayer``; the CAM weights live in the Calico model.
    Works under gradient checkpointing: the context travels with the call's arguments.
    """

    def forward(self, hidden_states, *args, cam_context: CamContext | None = None, **kwargs):
        if cam_context is not None:
            hidden_states = cam_context.apply(self.cam_layer_index, hidden_states)
        return super().forward(hidden_states, *args, **kwargs)


def install_cam_layers(llm, layer_indices: list[int]) -> None:
    """Swap decoder layers ``layer_indices`` of a ``LlamaForCausalLM`` for :class:`CamDecoderLayer` (weights kept)."""
    layers = llm.model.layers
    for index in layer_indices:
        old = layers[index]
        device = next(old.parameters()).device
        with torch.device(device):
            new = CamDecoderLayer(llm.config, index)
        new.load_state_dict(old.state_dict(), assign=True)
        new.cam_layer_index = index
        layers[index] = new
