"""``mask_loss_resolution``: the mask loss at the decoder's own resolution (calico-tiny's CPU option)."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from calico_baseline import modeling
from calico_baseline.config import CalicoConfig
from calico_baseline.losses import mask_losses
from calico_baseline.sam import crop_low_res, decode_low_res_masks, decode_prompts
from calico_baseline.testing import synthetic_sample, tiny_setup

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def batch_of(processor, n=2):
    return processor.collate([processor(*synthetic_sample(i), train=True) for i in range(n)])


def test_paper_default_is_full_resolution_and_bad_values_are_refused():
    assert CalicoConfig().mask_loss_resolution == "full"
    with pytest.raises(ValueError, match="mask_loss_resolution"):
        CalicoConfig(mask_loss_resolution="half")


def test_crop_keeps_the_resized_image_region_of_the_padded_square():
    sam = tiny_setup(sam_config={"image_size": 64, "patch_size": 8})[0].grounding_encoder
    low = torch.arange(32 * 32, dtype=torch.float).reshape(1, 1, 32, 32)  # 4× the 8×8 grid
    # a 48×64 input in the 64-px square covers its top 3/4: 24 of the 32 low-res rows, all columns
    assert torch.equal(crop_low_res(sam, low, (48, 64)), low[:, 0, :24, :32])
    # a partial low-res row is kept (ceil): 46/64 of 32 rows = 23.0, 47/64 of 32 = 23.5 -> 24
    assert crop_low_res(sam, low, (46, 64)).shape == (1, 23, 32)
    assert crop_low_res(sam, low, (47, 64)).shape == (1, 24, 32)


def test_low_resolution_loss_scores_the_decoder_logits_against_area_downsampled_masks(monkeypatch):
    full_model, _, processor = tiny_setup(mask_loss_resolution="full")
    low_model, _, _ = tiny_setup(mask_loss_resolution="low")  # same seed: the same weights
    batch = batch_of(processor)
    decoder_outputs = []

    def recorded(*args):
        logits = decode_prompts(*args)
        decoder_outputs.extend(logits[:, None])  # one 1×1×L×L entry per prompt, in batch order
        return logits

    monkeypatch.setattr(modeling, "decode_prompts", recorded)
    full, low = full_model(**batch), low_model(**batch)
    assert len(decoder_outputs) == 8  # 2 samples × 2 images × one [SEG] each, once per model
    decoder_outputs = decoder_outputs[4:]

    # the text side and the returned full-size masks (what validation scores) do not change
    assert torch.equal(full.ce_loss, low.ce_loss)
    for full_masks, low_masks in zip(full.pred_masks, low.pred_masks):
        for a, b in zip(full_masks, low_masks):
            assert a.shape == b.shape and torch.allclose(a, b)

    # recompute the low-resolution terms by hand: decoder logits cropped to the image, ground truth averaged
    # over each low-res pixel's footprint (each sample: one [SEG] per image)
    preds, targets = [], []
    for n, logits in enumerate(decoder_outputs):
        b, k = divmod(n, 2)
        h, w = (int(v) for v in batch["sam_input_sizes"][n])
        side, square = logits.shape[-1], low_model.grounding_encoder.image_encoder.img_size
        crop = logits[0, 0, : -(-h * side // square), : -(-w * side // square)]
        preds.append(crop)
        targets.append(F.interpolate(batch["gt_masks"][b][k][None, None].float(), tuple(crop.shape), mode="area")[0, 0])
    mask_term, dice_term, count = mask_losses(preds, targets, "focal")
    assert count == low.num_masks == 4
    assert torch.allclose(low.mask_loss, mask_term) and torch.allclose(low.dice_loss, dice_term)
    # and they measure what the full-size terms measure (upsampling is smooth): close, not equal
    assert not torch.equal(low.mask_loss, full.mask_loss)
    assert abs(float(low.mask_loss) / float(full.mask_loss) - 1) < 0.1
    assert abs(float(low.dice_loss) / float(full.dice_loss) - 1) < 0.1


def test_low_resolution_loss_trains_the_mask_decoder():
    model, _, processor = tiny_setup(mask_loss_resolution="low")
    out = model(**batch_of(processor))
    out.loss.backward()
    grads = [p.grad for n, p in model.trainable_parameters().items() if "mask_decoder" in n]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_one_decoder_pass_over_all_prompts_equals_segment_anythings_decoder_image_by_image():
    """decode_prompts re-runs the steps of segment-anything's MaskDecoder.predict_masks on per-prompt image
    embeddings; the reference is the upstream module itself (``sam.mask_decoder(...)``, built by segment-anything's
    own classes), called once per image as GLaMM does."""
    torch.manual_seed(0)
    sam = tiny_setup(sam_config={"image_size": 64, "patch_size": 8})[0].grounding_encoder
    for p in sam.parameters():  # away from the zero-initialised values, so every weight shows in the output
        torch.nn.init.normal_(p, std=0.2)
    embeddings = torch.randn(3, sam.prompt_encoder.embed_dim, 8, 8)
    prompt_image = [0, 2, 0, 1, 2, 2]  # prompts of three images, interleaved
    prompts = torch.randn(len(prompt_image), sam.prompt_encoder.embed_dim)
    batched = decode_prompts(sam, embeddings[prompt_image], prompts)
    assert batched.shape == (6, 1, 32, 32)
    for image in range(3):
        rows = [i for i, k in enumerate(prompt_image) if k == image]
        upstream = decode_low_res_masks(sam, embeddings[image : image + 1], prompts[rows])
        assert torch.allclose(batched[rows], upstream, atol=1e-5, rtol=1e-4)
    # and the gradients reach the prompts and the decoder's weights as through the upstream call
    prompts.requires_grad_(True)
    decode_prompts(sam, embeddings[prompt_image], prompts).square().sum().backward()
    ours = {"prompts": prompts.grad.clone(), **{n: p.grad.clone() for n, p in sam.named_parameters()
                                                 if p.grad is not None}}
    sam.zero_grad(set_to_none=True)
    prompts.grad = None
    sum(decode_low_res_masks(sam, embeddings[k : k + 1], prompts[i : i + 1]).square().sum()
        for i, k in enumerate(prompt_image)).backward()
    theirs = {"prompts": prompts.grad, **{n: p.grad for n, p in sam.named_parameters() if p.grad is not None}}
    assert any(n.startswith("mask_decoder.transformer.") for n in ours)  # the decoder trains (its prompt encoder not)
    assert "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight" in ours
    for name, grad in theirs.items():
        if name in ours:
            assert torch.allclose(ours[name], grad, atol=1e-4, rtol=1e-3), name
        else:  # only the dropped masks' hypernetworks, whose upstream gradient is zero
            assert re.match(r"mask_decoder\.output_hypernetworks_mlps\.[1-9]\.", name) and not grad.any(), name
    assert set(ours) <= set(theirs)


def test_training_forward_skips_the_full_size_masks_only_when_asked():
    model, _, processor = tiny_setup(mask_loss_resolution="low")
    batch = batch_of(processor)
    kept, skipped = model(**batch), model(**batch, full_size_masks=False)
    assert torch.equal(kept.loss, skipped.loss)
    assert all(m is not None for masks in kept.pred_masks for m in masks)
    assert all(m is None for masks in skipped.pred_masks for m in masks) and sum(map(len, skipped.pred_masks)) == 4
