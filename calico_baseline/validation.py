"""The quick validation pass of ``calico-train``: teacher-forced scores on a fixed subset of the val split.

Teacher forcing (the ground-truth answer is fed in, as in training) makes the pass cheap and its numbers
comparable from step to step: no generation, the same samples and the same [SEG] positions every time.
Reported, each over the whole subset:

- ``mask_iou``: mean IoU of the thresholded mask (logit > 0) of every ground-truth ``[SEG]`` with its mask;
- ``label_accuracy``: share of ``<p> … </p>`` phrases whose every token is the model's top prediction;
- ``token_accuracy``: the same over all answer tokens;
- ``loss``, ``ce_loss``, ``mask_loss``, ``dice_loss``: the training objective and its terms.

Free generation (what ``calico-predict`` and ``mixedparts-eval`` score) is left to the end of training.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import torch

LOSS_TERMS = ("loss", "ce_loss", "mask_loss", "dice_loss")


def fixed_subset(rows: list[dict], size: int, seed: int = 0) -> list[dict]:
    """``size`` rows drawn once with ``seed`` (in their dataset order): the same subset at every validation."""
    if size >= len(rows):
        return list(rows)
    chosen = sorted(random.Random(seed).sample(range(len(rows)), size))
    return [rows[i] for i in chosen]


@contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode and no autograd for the pass, then every module's own train/eval flag back as it was
    (training may keep frozen parts in eval mode: a plain ``model.train()`` would undo that)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def mask_ious(pred_masks: list[list[torch.Tensor]], gt_masks: list[list[torch.Tensor]]) -> list[float]:
    """IoU of every predicted mask (logits, > 0 is foreground) with its ground truth; two empty masks count 1."""
    ious = []
    for predicted, truths in zip(pred_masks, gt_masks):
        for logits, truth in zip(predicted, truths):
            p, g = logits.detach() > 0, truth.to(logits.device) > 0
            union = int((p | g).sum())
            ious.append(int((p & g).sum()) / union if union else 1.0)
    return ious


def phrase_spans(labels: list[int], open_id: int, close_id: int) -> list[tuple[int, int]]:
    """(start, end) positions, end exclusive, of the tokens between each ``<p>`` and its ``</p>`` in ``labels``."""
    spans, start = [], None
    for position, token in enumerate(labels):
        if token == open_id:
            start = position + 1
        elif token == close_id and start is not None:
            if position > start:
                spans.append((start, position))
            start = None
    return spans


def text_scores(logits: torch.Tensor, labels: torch.Tensor, open_id: int, close_id: int) -> tuple[int, int, int, int]:
    """(correct tokens, answer tokens, correct phrases, phrases) of a teacher-forced batch; the prediction of the
    token at position p is the argmax of the logits at p − 1."""
    predicted = torch.full_like(labels, -1)
    predicted[:, 1:] = logits[:, :-1].argmax(-1)
    supervised = labels != -100
    tokens_right = int(((predicted == labels) & supervised).sum())
    phrases = phrases_right = 0
    for row_labels, row_predicted in zip(labels.tolist(), predicted.tolist()):
        for start, end in phrase_spans(row_labels, open_id, close_id):
            phrases += 1
            phrases_right += row_labels[start:end] == row_predicted[start:end]
    return tokens_right, int(supervised.sum()), phrases_right, phrases


class Validator:
    """Scores a model on a fixed list of rows; the batches are built once and reused at every call."""

    def __init__(self, dataset, collate, tokenizer, batch_size: int = 8):
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size
        self.open_id = tokenizer.convert_tokens_to_ids("<p>")
        self.close_id = tokenizer.convert_tokens_to_ids("</p>")
        self._batches: list[dict] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self) -> list[dict]:
        if self._batches is None:
            indices = list(range(len(self.dataset)))
            self._batches = [self.collate([self.dataset[i] for i in indices[start:start + self.batch_size]])
                             for start in range(0, len(indices), self.batch_size)]
        return self._batches

    def __call__(self, model: torch.nn.Module, device: torch.device | str | None = None) -> dict[str, float]:
        totals = dict.fromkeys(LOSS_TERMS, 0.0)
        ious: list[float] = []
        tokens_right = tokens = phrases_right = phrases = 0
        with evaluating(model):
            for batch in self.batches():
                if device is not None:
                    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                output = model(**batch)
                for key in LOSS_TERMS:
                    totals[key] += float(getattr(output, key)) * len(batch["sample_ids"])
                ious += mask_ious(output.pred_masks, batch["gt_masks"])
                counts = text_scores(output.logits, batch["labels"], self.open_id, self.close_id)
                tokens_right, tokens = tokens_right + counts[0], tokens + counts[1]
                phrases_right, phrases = phrases_right + counts[2], phrases + counts[3]
        n = max(1, len(self.dataset))
        scores = {key: value / n for key, value in totals.items()}
        scores.update(mask_iou=sum(ious) / max(1, len(ious)), label_accuracy=phrases_right / max(1, phrases),
                      token_accuracy=tokens_right / max(1, tokens))
        return scores


def validator_for(config: dict, processor, say=print) -> Validator | None:
    """The validator of a ``calico-train`` config: ``data.val_samples`` rows of ``data.val_split``, drawn with
    ``train.seed``; ``None`` (and a note) when the dataset has no such split."""
    from calico_baseline.data import CalicoDataset, image_roots_for, read_rows

    d = config["data"]
    rows = read_rows(d["path"], d["val_split"]) if d.get("val_split") else []
    if not rows:
        say(f"no validation: {d['path']} has no {d.get('val_split')!r} split")
        return None
    subset = fixed_subset(rows, int(d["val_samples"]), config["train"]["seed"])
    dataset = CalicoDataset(subset, processor, image_roots_for(d["path"], d["image_roots"]))
    return Validator(dataset, processor.collate, processor.tokenizer, batch_size=int(config["train"]["batch_size"]))
