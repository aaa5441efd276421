"""MixedParts sample rows → Calico model inputs (numpy/PIL preprocessing, no torchvision) and a collate function.

A row follows ``mixedparts.schema.SAMPLE_FEATURES``; its i-th ``[SEG]`` is its i-th segment, whose
``image_index`` says which image the mask belongs to (``mixedparts.markup``). Masks are COCO RLE
decoded with ``mixedparts.loader.decode_masks`` at each image's full resolution (a malformed RLE raises
``MaskError`` naming the sample and segment); images are found and opened by ``mixedparts.images.ImageResolver``
(roots from the dataset's ``manifest.json``, overridable per source).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from calico_baseline.config import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, SAM_MEAN, SAM_STD, CalicoConfig
from calico_baseline.tokenization import encode_answer, encode_prompt
from mixedparts import markup
from mixedparts.images import ImageResolver
from mixedparts.loader import MaskError, decode_masks


# ---------------------------------------------------------------- image views
def resized_view(image: Image.Image, size: int, mean, std) -> np.ndarray:
    """Square bicubic resize (no crop), /255, normalise → 3×size×size float32 (BLIP eval / DINOv2 views)."""
    array = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    return ((array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1)


def clip_processor(size: int):
    """transformers' CLIPImageProcessor (its PIL backend: no torchvision) at ``size``: shortest side → ``size``
    (bicubic), centre crop ``size``², CLIP mean/std — the preprocessing LISA and GLaMM give their CLIP towers."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                 image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def sam_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """segment-anything's ``ResizeLongestSide.get_preprocess_shape``."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def sam_view(image: Image.Image, long_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Longest side → ``long_side``, SAM pixel mean/std on 0–255, zero-pad bottom/right → 3×L×L and (h′, w′)."""
    h, w = sam_shape(image.height, image.width, long_side)
    array = np.asarray(image.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32)
    array = (array - np.asarray(SAM_MEAN, np.float32)) / np.asarray(SAM_STD, np.float32)
    padded = np.zeros((long_side, long_side, 3), np.float32)
    padded[:h, :w] = array
    return padded.transpose(2, 0, 1), (h, w)


# ---------------------------------------------------------------- one sample
class CalicoProcessor:
    """Turns a sample row and its PIL images into one feature dict; :meth:`collate` batches them."""

    def __init__(self, tokenizer, config: CalicoConfig, max_length: int = 1024):
        self.tokenizer = tokenizer
        self.config = config
        self.max_length = max_length
        self.per_image = config.visual_tokens_per_image
        # "square": BLIP-2's eval processor (Calico's EVA view); "clip": CLIPImageProcessor (LISA / GLaMM towers)
        self.vision_preprocess = getattr(config, "vision_preprocess", "square")
        self._clip_processor = None

    def clip_pixels(self, images: list[Image.Image], size: int) -> np.ndarray:
        if self.vision_preprocess == "clip":
            if self._clip_processor is None:
                self._clip_processor = clip_processor(size)
            rgb = [im.convert("RGB") for im in images]
            return np.asarray(self._clip_processor(images=rgb, return_tensors="np")["pixel_values"], np.float32)
        return np.stack([resized_view(im, size, CLIP_MEAN, CLIP_STD) for im in images])

    def images(self, images: list[Image.Image]) -> dict:
        c = self.config
        clip_size = c.vision_config.image_size
        out = {"clip_pixels": self.clip_pixels(images, clip_size),
               "original_sizes": [(im.height, im.width) for im in images]}
        if c.cem_enabled:
            # same size as the EVA view so the patch grids line up (docs/model.md); DINOv2 interpolates positions
            out["dino_pixels"] = np.stack([resized_view(im, clip_size, IMAGENET_MEAN, IMAGENET_STD) for im in images])
        views = [sam_view(im, c.sam_config["image_size"]) for im in images]
        out["sam_pixels"] = np.stack([v for v, _ in views])
        out["sam_input_sizes"] = [size for _, size in views]
        return out

    def __call__(self, row: dict, images: list[Image.Image], train: bool = True) -> dict:
        k = len(row["images"])
        if len(images) != k:
            raise ValueError(f"sample {row['sample_id']}: {k} images in the row, {len(images)} given")
        prompt = encode_prompt(self.tokenizer, row["question"], k, self.per_image)
        feature = {"sample_id": row["sample_id"], "num_images": k, **self.images(images)}
        if not train:
            feature.update(input_ids=prompt, labels=None, instruction_position=len(prompt) - 1)
            return feature
        answer = encode_answer(self.tokenizer, row["answer"])
        room = self.max_length - len(prompt)
        if room <= 0:
            raise ValueError(f"sample {row['sample_id']}: prompt of {len(prompt)} tokens exceeds max_length")
        answer = answer[:room]
        segments = row["segments"]
        if markup.seg_count(row["answer"]) != len(segments):
            raise ValueError(f"sample {row['sample_id']}: {markup.seg_count(row['answer'])} [SEG] in the answer, "
                             f"{len(segments)} segments")
        kept = sum(1 for t in answer if t == self.config.seg_token_id)
        try:
            decoded = decode_masks(segments[:kept])
        except MaskError as error:
            raise MaskError(f"sample {row['sample_id']}: {error}") from None
        feature.update(
            input_ids=prompt + answer, labels=[-100] * len(prompt) + answer, instruction_position=len(prompt) - 1,
            seg_images=[int(s["image_index"]) for s in segments[:kept]],
            gt_masks=[np.ascontiguousarray(m, dtype=np.uint8) for m in decoded])
        return feature

    def collate(self, features: list[dict], padding_side: str | None = None) -> dict:
        """Pad to the longest sample (right for training, left when there are no labels: generation)."""
        train = features[0].get("labels") is not None
        side = padding_side or ("right" if train else "left")
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        length = max(len(f["input_ids"]) for f in features)
        ids, attention, labels, instruction = [], [], [], []
        for f in features:
            n = length - len(f["input_ids"])
            left = n if side == "left" else 0
            pad = [pad_id] * n
            ids.append(pad + f["input_ids"] if left else f["input_ids"] + pad)
            attention.append([0] * n + [1] * len(f["input_ids"]) if left else [1] * len(f["input_ids"]) + [0] * n)
            if train:
                labels.append([-100] * n + f["labels"] if left else f["labels"] + [-100] * n)
            instruction.append(f["instruction_position"] + left)
        batch = {
            "input_ids": torch.tensor(ids), "attention_mask": torch.tensor(attention),
            "instruction_positions": torch.tensor(instruction),
            "image_sample": torch.repeat_interleave(torch.arange(len(features)),
                                                    torch.tensor([f["num_images"] for f in features])),
            "clip_pixels": torch.from_numpy(np.concatenate([f["clip_pixels"] for f in features])),
            "sam_pixels": torch.from_numpy(np.concatenate([f["sam_pixels"] for f in features])),
            "sam_input_sizes": torch.tensor([s for f in features for s in f["sam_input_sizes"]]),
            "original_sizes": torch.tensor([s for f in features for s in f["original_sizes"]]),
            "sample_ids": [f["sample_id"] for f in features],
        }
        if "dino_pixels" in features[0]:
            batch["dino_pixels"] = torch.from_numpy(np.concatenate([f["dino_pixels"] for f in features]))
        if train:
            batch["labels"] = torch.tensor(labels)
            batch["seg_images"] = [f["seg_images"] for f in features]
            batch["gt_masks"] = [[torch.from_numpy(m) for m in f["gt_masks"]] for f in features]
        return batch


# ---------------------------------------------------------------- rows and images on disk
def read_rows(data_dir: str | Path, split: str, limit: int | None = None) -> list[dict]:
    """Sample rows of ``split`` (:func:`mixedparts.loader.read_rows`), stopping once ``limit`` rows are read."""
    from mixedparts.loader import read_rows as read_split

    return read_split(data_dir, split, limit=limit)


class CalicoDataset(torch.utils.data.Dataset):
    """Rows + an :class:`~mixedparts.images.ImageResolver` (or a plain ``{source: root}`` dict) → processed features.

    Every (source, split) of the rows must have an existing image root: checked here, before any worker starts.
    """

    def __init__(self, rows: list[dict], processor: CalicoProcessor, image_roots, train: bool = True):
        self.rows, self.processor, self.train = rows, processor, train
        self.resolver = image_roots if isinstance(image_roots, ImageResolver) else ImageResolver(user_roots=image_roots)
        for source, split in sorted({(r["source"], r["split"]) for r in rows}):
            self.resolver.check_root(source, split)

    @property
    def image_roots(self) -> ImageResolver:
        return self.resolver

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        images = self.resolver.open_all(row["source"], row["split"], row["images"])
        return self.processor(row, images, train=self.train)


def image_roots_for(data_dir: str | Path, overrides: dict | None = None) -> ImageResolver:
    """The dataset's image roots (``manifest.json``), with ``overrides`` (``{source: root}``) taking precedence."""
    from mixedparts.loader import image_resolver

    return image_resolver(data_dir, overrides or {})
