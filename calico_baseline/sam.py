"""SAM (segment-anything 1.0) without torchvision, and the [SEG]-prompted mask decoding of one image.

``import segment_anything`` fails without torchvision (its package ``__init__`` imports the automatic
mask generator), so the modeling sub-package is loaded under a private name from its files; the
classes are the real ones (``Sam``, ``ImageEncoderViT``, ``PromptEncoder``, ``MaskDecoder``).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

_PRIVATE_NAME = "_calico_segment_anything_modeling"


@lru_cache(maxsize=1)
def sam_modeling():
    """The ``segment_anything.modeling`` module, loaded without running ``segment_anything/__init__``."""
    if "segment_anything.modeling" in sys.modules:  # already imported by someone with torchvision
        return sys.modules["segment_anything.modeling"]
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("segment-anything is not installed (pip install segment-anything)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "modeling"
    module_spec = importlib.util.spec_from_file_location(
        _PRIVATE_NAME, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[_PRIVATE_NAME] = module
    module_spec.loader.exec_module(module)
    return module


def build_sam(sam_config: dict) -> nn.Module:
    """A ``Sam`` with the sizes of ``sam_config`` (see ``config.SAM_VIT_H``); keys match the SAM/GLaMM checkpoints."""
    m = sam_modeling()
    c = sam_config
    dim = c["prompt_embed_dim"]
    grid = c["image_size"] // c["patch_size"]
    return m.Sam(
        image_encoder=m.ImageEncoderViT(
            depth=c["encoder_depth"], embed_dim=c["encoder_embed_dim"], img_size=c["image_size"], mlp_ratio=4,
            norm_layer=lambda n: nn.LayerNorm(n, eps=1e-6), num_heads=c["encoder_num_heads"],
            patch_size=c["patch_size"], qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=tuple(c["encoder_global_attn_indexes"]), window_size=c["window_size"],
            out_chans=dim),
        prompt_encoder=m.PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                       input_image_size=(c["image_size"], c["image_size"]), mask_in_chans=16),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(depth=c["decoder_depth"], embedding_dim=dim,
                                            mlp_dim=c["decoder_mlp_dim"], num_heads=c["decoder_num_heads"]),
            transformer_dim=dim, iou_head_depth=c["iou_head_depth"], iou_head_hidden_dim=c["iou_head_hidden_dim"]),
    )


def decode_low_res_masks(sam: nn.Module, image_embedding: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """The mask decoder's own n×1×4g×4g logits over SAM's padded square, for ``n`` [SEG] prompts of one image.

    image_embedding: 1×C×g×g (SAM encoder output); prompts: n×C (projected [SEG] states).
    As GLaMM: sparse prompt = the [SEG] embedding as one token, dense prompt = ``no_mask_embed``.
    """
    n = prompts.shape[0]
    encoder = sam.prompt_encoder
    sparse = prompts[:, None, :].to(image_embedding.dtype)  # n×1×C
    grid = encoder.image_embedding_size
    dense = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(n, -1, grid[0], grid[1])  # n×C×g×g
    low_res, _ = sam.mask_decoder(image_embeddings=image_embedding, image_pe=encoder.get_dense_pe(),
                                  sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                  multimask_output=False)
    return low_res


def decode_prompts(sam: nn.Module, image_embeddings: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """:func:`decode_low_res_masks` of ``n`` prompts over several images in one decoder pass: n×1×4g×4g.

    image_embeddings: n×C×g×g, the embedding of each prompt's own image; prompts: n×C.

    ``MaskDecoder.predict_masks`` repeats its one image embedding for every prompt before its transformer, so it
    takes the prompts of one image per call; a training step of calico-tiny made ~6 such calls (one per image),
    each mostly module overhead at an 8×8 grid. Here the same steps of ``predict_masks`` (segment-anything 1.0,
    ``modeling/mask_decoder.py``) and ``forward``'s single-mask slice run on the per-prompt embeddings, with the
    decoder's own submodules and weights; ``tests/test_calico_mask_resolution.py`` checks the result against
    ``sam.mask_decoder`` called image by image.
    """
    decoder, encoder = sam.mask_decoder, sam.prompt_encoder
    n = prompts.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens[None].expand(n, -1, -1), prompts[:, None, :].to(image_embeddings.dtype)),
                       dim=1)  # n×(1+M+1)×C: IoU token, M mask tokens, the [SEG] prompt (sparse)
    src = image_embeddings + encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)  # the dense prompt: no mask
    pos_src = encoder.get_dense_pe().expand(n, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, tokens)
    mask_token = hs[:, 1, :]  # the first mask token: multimask_output=False keeps mask 0 only
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    # only mask 0's hypernetwork: upstream runs all M and then drops masks 1..M-1, so theirs get zero gradients;
    # here they get none. No output changes (they never reach one), and with weight decay 0 no update either
    hyper_in = decoder.output_hypernetworks_mlps[0](mask_token)  # n×C/8
    b, c, h, w = upscaled.shape
    return (hyper_in[:, None, :] @ upscaled.reshape(b, c, h * w)).reshape(b, 1, h, w)


def crop_low_res(sam: nn.Module, low_res: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """n×1×L×L low-res logits → n×h×w: the part of the padded square the resized image covers, at L/S scale."""
    scale = low_res.shape[-1] / sam.image_encoder.img_size
    h, w = (max(1, math.ceil(v * scale)) for v in input_size)
    return low_res[:, 0, :h, :w]


def upscale_masks(sam: nn.Module, low_res: torch.Tensor, input_size: tuple[int, int],
                  original_size: tuple[int, int]) -> torch.Tensor:
    """n×1×L×L low-res logits → n×H×W at the original size, as segment-anything's ``postprocess_masks``."""
    size = sam.image_encoder.img_size
    masks = F.interpolate(low_res.float(), (size, size), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    masks = F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)
    return masks[:, 0]


def decode_masks(sam: nn.Module, image_embedding: torch.Tensor, prompts: torch.Tensor,
                 input_size: tuple[int, int], original_size: tuple[int, int]) -> torch.Tensor:
    """Masks of one image for ``n`` [SEG] prompts: n×H×W logits at the original size (H, W) = ``original_size``."""
    return upscale_masks(sam, decode_low_res_masks(sam, image_embedding, prompts), input_size, original_size)
