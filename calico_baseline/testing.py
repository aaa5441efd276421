"""Synthetic MixedParts rows and images and a calico-tiny setup, for tests and quick experiments (no dataset build)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mixedparts import markup, masks


def synthetic_sample(index: int, sizes=((48, 64), (40, 56)), seed: int = 0):
    """(row, images): two images with a coloured rectangle (the object) and its top half (a part)."""
    rng = np.random.default_rng(seed + index)
    images, segments = [], []
    for k, (h, w) in enumerate(sizes):
        array = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        y0, x0 = int(rng.integers(2, h // 3)), int(rng.integers(2, w // 3))
        y1, x1 = y0 + h // 2, x0 + w // 2
        array[y0:y1, x0:x1] = (200, 40 + 60 * k, 40)
        images.append(Image.fromarray(array))
        obj = np.zeros((h, w), bool)
        obj[y0:y1, x0:x1] = True
        segments.append({"label": "box", "kind": "object", "image_index": k, "mask": masks.encode(obj)})
    answer = f"The images show {markup.grounded('a box', [0, 1])}."
    row = {"sample_id": f"synthetic-{index}", "source": "synthetic", "split": "train", "task": "common_object",
           "images": [{"image_id": f"{index}-{k}", "file_name": f"{index}-{k}.png", "width": w, "height": h}
                      for k, (h, w) in enumerate(sizes)],
           "objects": [{"image_index": k, "category": "box"} for k in range(len(sizes))],
           "question": "Which object do the images share?", "answer": answer, "segments": segments}
    return row, images


def tiny_setup(**overrides):
    """(model, tokenizer, processor) for calico-tiny with a tokenizer trained on synthetic texts."""
    import torch

    from calico_baseline.config import preset
    from calico_baseline.data import CalicoProcessor
    from calico_baseline.modeling import CalicoForCausalLM
    from calico_baseline.tokenization import build_tiny_tokenizer, config_overrides

    rows = [synthetic_sample(i)[0] for i in range(2)]
    tokenizer = build_tiny_tokenizer([r["question"] for r in rows] + [r["answer"] for r in rows], vocab_size=400)
    tok = config_overrides(tokenizer)
    text = {**tok.pop("text_config"), **overrides.pop("text_config", {})}
    torch.manual_seed(0)
    config = preset("calico-tiny", text_config=text, **tok, **overrides)
    model = CalicoForCausalLM(config)
    return model, tokenizer, CalicoProcessor(tokenizer, config)
