"""PyTorch batches of MixedParts samples: variable image sizes and mask counts, nothing lost.

    from torch.utils.data import DataLoader
    from mixedparts import load_dataset
    from mixedparts.torch_data import collate

    ds = load_dataset("mixedparts", split="train", decode_images=True, decode_masks=True)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=4, collate_fn=collate)

A batch of B samples holding N images in all and M masks in all (images and masks flattened in
sample order, then image / segment order) is a dict:

- per sample (lists of length B): ``sample_id``, ``source``, ``split``, ``task``, ``question``,
  ``answer``, ``images`` (the rows' image records), ``objects``, ``segments`` (with their RLE masks);
- ``images_per_sample`` / ``masks_per_sample``: long tensors (B,);
- per image: ``pixel_values`` uint8 (N, 3, H, W) zero-padded at the bottom and right to the largest
  image of the batch (with ``pad=False``: a list of (3, h, w) tensors), ``image_sizes`` long (N, 2)
  as (height, width), ``image_sample`` and ``image_index`` long (N,): the sample in the batch and
  the image's index within it;
- per mask: ``masks`` bool (M, H, W), each in its image's frame and padded like it (``pad=False``:
  a list of (h, w) tensors), ``mask_image`` long (M,) into the flat image list, ``mask_sample``
  long (M,), ``labels`` and ``kinds`` (lists of length M).

``pixel_values`` is present only when the rows carry decoded images (``pil_images``, from
``decode_images=True``); masks are taken from ``masks`` (``decode_masks=True``) or decoded here from
the segments' RLE. :func:`uncollate` inverts :func:`collate` (the tests check the round trip).
torch is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mixedparts.loader import IMAGES_COLUMN, MASKS_COLUMN, decode_masks

TEXT_FIELDS = ("sample_id", "source", "split", "task", "question", "answer")
RECORD_FIELDS = ("images", "objects", "segments")


def _image_array(image) -> np.ndarray:
    """PIL image or (h, w, 3) array -> (h, w, 3) uint8 array."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (PIL RGB or arrays), got {array.dtype}")
    return array


class Collator:
    """``collate_fn`` for ``torch.utils.data.DataLoader``; ``pad=False`` keeps per-image tensors in lists."""

    def __init__(self, pad: bool = True):
        self.pad = pad

    def __call__(self, samples: Sequence[Mapping]) -> dict:
        import torch

        if not samples:
            raise ValueError("cannot collate an empty batch")
        fields = [field for field in TEXT_FIELDS + RECORD_FIELDS if field in samples[0]]
        batch: dict = {field: [s[field] for s in samples] for field in fields}

        sizes, image_sample, image_index = [], [], []
        for b, sample in enumerate(samples):
            for k, meta in enumerate(sample["images"]):
                sizes.append((int(meta["height"]), int(meta["width"])))
                image_sample.append(b)
                image_index.append(k)
        first_image = [0]
        for sample in samples:
            first_image.append(first_image[-1] + len(sample["images"]))
        batch["images_per_sample"] = torch.tensor([len(s["images"]) for s in samples], dtype=torch.long)
        batch["image_sizes"] = torch.tensor(sizes, dtype=torch.long).reshape(-1, 2)
        batch["image_sample"] = torch.tensor(image_sample, dtype=torch.long)
        batch["image_index"] = torch.tensor(image_index, dtype=torch.long)
        height = max((h for h, _ in sizes), default=0)
        width = max((w for _, w in sizes), default=0)

        if IMAGES_COLUMN in samples[0]:
            arrays = [_image_array(image) for sample in samples for image in sample[IMAGES_COLUMN]]
            for array, (h, w) in zip(arrays, sizes):
                if array.shape[:2] != (h, w):
                    raise ValueError(f"an image is {array.shape[1]}x{array.shape[0]} but its record says {w}x{h}")
            if self.pad:
                pixels = np.zeros((len(arrays), 3, height, width), dtype=np.uint8)
                for n, array in enumerate(arrays):
                    pixels[n, :, :array.shape[0], :array.shape[1]] = array.transpose(2, 0, 1)
                batch["pixel_values"] = torch.from_numpy(pixels)
            else:
                batch["pixel_values"] = [torch.from_numpy(np.array(a.transpose(2, 0, 1), order="C")) for a in arrays]

        mask_arrays, mask_image, mask_sample, labels, kinds = [], [], [], [], []
        for b, sample in enumerate(samples):
            segments = sample["segments"]
            decoded = sample[MASKS_COLUMN] if MASKS_COLUMN in sample else decode_masks(segments)
            for segment, mask in zip(segments, decoded):
                mask_arrays.append(np.asarray(mask, dtype=bool))
                mask_image.append(first_image[b] + int(segment["image_index"]))
                mask_sample.append(b)
                labels.append(segment["label"])
                kinds.append(segment["kind"])
        batch["masks_per_sample"] = torch.tensor([len(s["segments"]) for s in samples], dtype=torch.long)
        batch["mask_image"] = torch.tensor(mask_image, dtype=torch.long)
        batch["mask_sample"] = torch.tensor(mask_sample, dtype=torch.long)
        batch["labels"] = labels
        batch["kinds"] = kinds
        for mask, n in zip(mask_arrays, mask_image):
            if mask.shape != sizes[n]:
                raise ValueError(f"a mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                                 f"{sizes[n][1]}x{sizes[n][0]} (width x height)")
        if self.pad:
            masks = np.zeros((len(mask_arrays), height, width), dtype=bool)
            for m, mask in enumerate(mask_arrays):
                masks[m, :mask.shape[0], :mask.shape[1]] = mask
            batch["masks"] = torch.from_numpy(masks)
        else:
            batch["masks"] = [torch.from_numpy(np.array(mask, dtype=bool, order="C")) for mask in mask_arrays]
        return batch


collate = Collator()
"""The default collate function (padded tensors)."""


def uncollate(batch: Mapping) -> list[dict]:
    """The samples of a batch from :func:`collate`, images as (h, w, 3) uint8 arrays and masks as bool
    arrays, cropped back to their image sizes (the inverse of :func:`collate`)."""
    sizes = batch["image_sizes"].tolist()
    image_sample = batch["image_sample"].tolist()
    mask_image = batch["mask_image"].tolist()
    count = len(batch["images_per_sample"])
    samples: list[dict] = [{} for _ in range(count)]
    for field in TEXT_FIELDS + RECORD_FIELDS:
        if field in batch:
            for sample, value in zip(samples, batch[field]):
                sample[field] = value
    for sample in samples:
        sample["masks"], sample["labels"], sample["kinds"] = [], [], []
        if "pixel_values" in batch:
            sample["pixel_images"] = []
    if "pixel_values" in batch:
        for n, (h, w) in enumerate(sizes):
            samples[image_sample[n]]["pixel_images"].append(
                batch["pixel_values"][n][:, :h, :w].permute(1, 2, 0).numpy())
    for m, n in enumerate(mask_image):
        h, w = sizes[n]
        sample = samples[image_sample[n]]
        sample["masks"].append(batch["masks"][m][:h, :w].numpy())
        sample["labels"].append(batch["labels"][m])
        sample["kinds"].append(batch["kinds"][m])
    return samples
