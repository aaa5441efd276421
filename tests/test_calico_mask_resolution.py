"""``mask_loss_resolution``: the mask loss at the decoder's own resolution (calico-tiny's CPU option)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from calico_baseline.config import CalicoConfig
from calico_baseline.losses import mask_losses
from calico_baseline.sam import crop_low_res
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


def test_low_resolution_loss_scores_the_decoder_logits_against_area_downsampled_masks():
    full_model, _, processor = tiny_setup(mask_loss_resolution="full")
    low_model, _, _ = tiny_setup(mask_loss_resolution="low")  # same seed: the same weights
    batch = batch_of(processor)
    decoder_outputs = []
    hook = low_model.grounding_encoder.mask_decoder.register_forward_hook(
        lambda module, args, output: decoder_outputs.append(output[0]))
    full, low = full_model(**batch), low_model(**batch)
    hook.remove()

    # the text side and the returned full-size masks (what validation scores) do not change
    assert torch.equal(full.ce_loss, low.ce_loss)
    for full_masks, low_masks in zip(full.pred_masks, low.pred_masks):
        for a, b in zip(full_masks, low_masks):
            assert a.shape == b.shape and torch.allclose(a, b)

    # recompute the low-resolution terms by hand: decoder logits cropped to the image, ground truth averaged
    # over each low-res pixel's footprint (each sample: one [SEG] per image, decoded one image at a time)
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
