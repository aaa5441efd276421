"""CEM, the Correspondence Extraction Module: EVA-CLIP features attend to DINOv2 features (docs/model.md).

F_cem = F_clip + out_proj(MHA(q = F_clip, k = v = F_dino)), out_proj zero-initialised so CEM starts as the identity.
Per image by default; ``joint=True`` lets each image attend to the DINOv2 tokens of all images of its sample.
"""

from __future__ import annotations

import torch
from torch import nn


class CorrespondenceExtraction(nn.Module):
    def __init__(self, clip_dim: int, dino_dim: int, num_heads: int = 16, joint: bool = False):
        super().__init__()
        self.joint = joint
        self.attention = nn.MultiheadAttention(clip_dim, num_heads, kdim=dino_dim, vdim=dino_dim, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(self, clip: torch.Tensor, dino: torch.Tensor, image_sample: torch.Tensor | None = None) -> torch.Tensor:
        """clip: N×L×d_v, dino: N×L_d×d_d (N images) → N×L×d_v.

        ``image_sample`` (N,) gives each image's sample; needed for ``joint``.
        """
        dino = dino.to(clip.dtype)
        if not self.joint:
            out, _ = self.attention(clip, dino, dino, need_weights=False)
            return clip + out
        outputs = []
        for i in range(clip.shape[0]):
            same = (image_sample == image_sample[i]).nonzero().flatten()
            kv = dino[same].reshape(1, -1, dino.shape[-1])  # 1×(k·L_d)×d_d
            out, _ = self.attention(clip[i : i + 1], kv, kv, need_weights=False)
            outputs.append(out)
        return clip + torch.cat(outputs)
