"""The cascade's LISA segmenter: one image, LISA's prompt, the first [SEG]'s mask; end to end through the cascade
against the scripted chat server on loopback, by name (``--segmenter lisa --segmenter-model DIR``)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.cascade import LISA_PROMPT, load_segmenter
from baselines.cli import main
from baselines.multi_image_llava import LisaSegmenter, MultiImageLlavaForCausalLM, baseline_config
from calico_baseline.config import calico_tiny
from calico_baseline.data import CalicoProcessor
from calico_baseline.tokenization import build_tiny_tokenizer, config_overrides
from mixedparts import masks
from test_baselines_cascade import cascade, server, structure  # noqa: F401  (server is a fixture)
from test_baselines_llava import TINY_CLIP

NAMES = ["dog", "cat", "head", "leg", "tail", "wing"]
H, W = 40, 56


def boxed(index: int):
    """(image, box mask): a red box on a dark noisy background."""
    rng = np.random.default_rng(index)
    array = (rng.random((H, W, 3)) * 60).astype(np.uint8)
    y0, x0 = int(rng.integers(2, 12)), int(rng.integers(2, 16))
    array[y0:y0 + 20, x0:x0 + 28] = (200, 40, 40)
    box = np.zeros((H, W), bool)
    box[y0:y0 + 20, x0:x0 + 28] = True
    return Image.fromarray(array), box


def iou(a, b) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LISA taught LISA's single-image answer "Sure, it is [SEG]." with the box as the mask; saved."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows, images = [], []
    for i, name in enumerate(NAMES):
        image, box = boxed(i)
        rows.append({"sample_id": f"s{i}", "question": LISA_PROMPT.format(name=name), "answer": "Sure, it is [SEG].",
                     "images": [{"height": H, "width": W}],
                     "segments": [{"label": name, "image_index": 0, "mask": masks.encode(box)}]})
        images.append([image])
    tokenizer = build_tiny_tokenizer([r["question"] for r in rows] + [r["answer"] for r in rows], vocab_size=300)
    tok = config_overrides(tokenizer)
    tiny = calico_tiny(**tok).to_dict()
    config = baseline_config("lisa", vision_config=TINY_CLIP, text_config=tiny["text_config"],
                             sam_config=tiny["sam_config"], seg_token_id=tok["seg_token_id"], lora_dropout=0.0,
                             **{k: v for k, v in tok.items() if k not in ("text_config", "seg_token_id")})
    torch.manual_seed(0)
    model = MultiImageLlavaForCausalLM(config)
    processor = CalicoProcessor(tokenizer, config)
    batch = processor.collate([processor(r, im) for r, im in zip(rows, images)])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95))
    model.train()
    for _ in range(60):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    path = tmp_path_factory.mktemp("lisa-seg") / "lisa-tiny"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    yield model, tokenizer, path
    torch.set_num_threads(threads)


class Recording(CalicoProcessor):
    def __init__(self, tokenizer, config):
        super().__init__(tokenizer, config)
        self.calls = []

    def __call__(self, row, images, train=True):
        self.calls.append((row["question"], len(row["images"]), len(images), train))
        return super().__call__(row, images, train)


def test_lisa_segmenter_prompts_one_image_and_returns_the_seg_mask(trained):
    model, tokenizer, _ = trained
    segmenter = LisaSegmenter(model, tokenizer, max_new_tokens=12)
    segmenter.processor = Recording(tokenizer, model.config)
    for index, name in enumerate(NAMES):
        image, box = boxed(index)
        mask = segmenter.segment(image, name)
        assert segmenter.processor.calls[-1] == (f"Can you segment the {name} in this image?", 1, 1, False)
        assert "[SEG]" in segmenter.answers[-1]
        assert mask.dtype == bool and mask.shape == (H, W)
        assert iou(mask, box) >= 0.5, (name, iou(mask, box))
    segmenter.max_new_tokens = 0  # an answer without [SEG]: no mask
    assert segmenter.segment(boxed(0)[0], "dog") is None and segmenter.answers[-1] == ""


def test_cascade_with_lisa_by_name_against_the_loopback_server(trained, server):  # noqa: F811
    _, _, path = trained
    args = argparse.Namespace(segmenter_model=str(path), segmenter_checkpoint=None, segmenter_clip=None,
                              segmenter_tokenizer=None, segmenter_max_new_tokens=12, device="cpu")
    segmenter = load_segmenter("lisa", args)
    assert isinstance(segmenter, LisaSegmenter)
    server.replies = ["A dog with a tail, and a cat with wings.", "{not json", structure()]
    pictures = [boxed(0), boxed(1)]
    row = {"sample_id": "s-unique", "task": "unique_parts", "question": "Which parts differ in these images?",
           "images": [{"height": H, "width": W}] * 2}
    prediction = cascade(server, segmenter).predict(row, [p for p, _ in pictures])
    got = [(s["label"], s["image_index"]) for s in prediction["segments"]]
    assert got == [("dog", 0), ("cat", 1), ("tail", 0), ("wing", 1)]
    for segment in prediction["segments"]:
        assert iou(masks.decode(segment["mask"]).astype(bool), pictures[segment["image_index"]][1]) >= 0.5
    assert len(segmenter.answers) == 4 and all("[SEG]" in a for a in segmenter.answers)
    with pytest.raises(Exception, match="--segmenter-model"):
        load_segmenter("lisa", argparse.Namespace(segmenter_model=None, segmenter_checkpoint=None))


def test_cascade_cli_with_segmenter_lisa_writes_scorable_predictions(build_tiny, trained, server, tmp_path, monkeypatch):  # noqa: F811
    from mixedparts.build.options import BuildOptions
    from mixedparts.metrics.cli import main as eval_main
    from mixedparts.predictions import read_predictions

    _, _, path = trained
    calls, segment = [], LisaSegmenter.segment

    def recorded(self, image, name):
        mask = segment(self, image, name)
        calls.append(name)
        assert mask is None or (mask.dtype == bool and mask.shape == (image.height, image.width))
        return mask

    monkeypatch.setattr(LisaSegmenter, "segment", recorded)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the structurer's key (--structurer-key-env's default)
    build_tiny(tmp_path / "dataset", BuildOptions(max_samples_per_split=2))
    server.replies = ["desc", structure(), "desc", structure()]
    out = tmp_path / "cascade.json"
    assert main(["cascade", "--data", str(tmp_path / "dataset"), "--out", str(out), "--describer-url", server.url,
                 "--structurer-url", server.url, "--timeout", "5", "--retries", "0", "--segmenter", "lisa",
                 "--segmenter-model", str(path), "--segmenter-max-new-tokens", "8"]) == 0
    predictions = read_predictions(out)
    assert len(predictions.by_sample) == 2 and not predictions.mismatched
    assert calls and set(calls) <= {"dog", "cat", "head", "tail", "wing"}  # the structure's names, via LISA
    assert eval_main([str(out), "--data", str(tmp_path / "dataset"), "--split", "test"]) == 0
    assert main(["cascade", "--data", str(tmp_path / "dataset"), "--out", str(out), "--describer-url", server.url,
                 "--segmenter", "lisa"]) == 2  # neither --segmenter-model nor --segmenter-checkpoint
