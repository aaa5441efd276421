"""The quick validation pass of ``calico-train``: teacher-forced scores on a fixed subset of the val split.

Teacher forcing (the ground-truth answer is fed in, as in training) makes the pass cheap and its numbers
comparable from step to step: no generation, the same samples and the same [SEG] positions every time.
Reported, each over the whole subset:

- ``mask_iou``: mean IoU of the thresholded mask (logit > 0) of every ground-truth ``[SEG]`` with its mask
  (an empty prediction of a non-empty mask scores 0, two empty masks 1);
- ``all_on_iou``: the same for a trivial predictor that switches every pixel on, i.e. the mean share of the image
  each mask covers. An untrained decoder switches on anything from a few per cent to all of the pixels (its
  initialisation decides), so its step-0 ``mask_iou`` is at or under this line, and ``mask_iou`` only shows
  learnt localisation once it is above it;
- ``box_iou``: the IoU of each mask with its own bounding box (an oracle box, filled): what a predictor that
  knew where the part is but not its shape would reach, a ceiling for "found the right place";
- ``pred_area`` and ``gt_area``: mean share of the image the thresholded prediction and the ground truth cover
  (a decoder that settles on "all background" shows as ``pred_area`` near 0);
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
MASK_BASELINES = ("all_on_iou", "box_iou", "pred_area", "gt_area")


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


def iou(p: torch.Tensor, g: torch.Tensor) -> float:
    """IoU of two boolean masks; two empty masks count 1 (nothing to find, nothing found)."""
    union = int((p | g).sum())
    return int((p & g).sum()) / union if union else 1.0


def box_of(mask: torch.Tensor) -> torch.Tensor:
    """The filled bounding box of a boolean mask (empty for an empty mask)."""
    box = torch.zeros_like(mask)
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    if len(rows):
        box[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1] = True
    return box


def mask_ious(pred_masks: list[list[torch.Tensor]], gt_masks: list[list[torch.Tensor]]) -> list[float]:
    """IoU of every predicted mask (logits, > 0 is foreground) with its ground truth; two empty masks count 1."""
    return [row["iou"] for row in mask_scores(pred_masks, gt_masks)]


def mask_scores(pred_masks: list[list[torch.Tensor]], gt_masks: list[list[torch.Tensor]]) -> list[dict[str, float]]:
    """Per predicted mask: its IoU, the all-on and oracle-box IoUs of its ground truth, and both areas (share of
    the image); see the module docstring."""
    scores = []
    for predicted, truths in zip(pred_masks, gt_masks):
        for logits, truth in zip(predicted, truths):
            p, g = logits.detach() > 0, truth.to(logits.device) > 0
            scores.append({"iou": iou(p, g), "all_on_iou": iou(torch.ones_like(g), g), "box_iou": iou(box_of(g), g),
                           "pred_area": float(p.float().mean()), "gt_area": float(g.float().mean())})
    return scores


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
        masks: list[dict[str, float]] = []
        tokens_right = tokens = phrases_right = phrases = 0
        with evaluating(model):
            for batch in self.batches():
                if device is not None:
                    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                output = model(**batch)
                for key in LOSS_TERMS:
                    totals[key] += float(getattr(output, key)) * len(batch["sample_ids"])
                masks += mask_scores(output.pred_masks, batch["gt_masks"])
                counts = text_scores(output.logits, batch["labels"], self.open_id, self.close_id)
                tokens_right, tokens = tokens_right + counts[0], tokens + counts[1]
                phrases_right, phrases = phrases_right + counts[2], phrases + counts[3]
        n = max(1, len(self.dataset))
        scores = {key: value / n for key, value in totals.items()}
        scores["mask_iou"] = sum(m["iou"] for m in masks) / max(1, len(masks))
        for key in MASK_BASELINES:
            scores[key] = sum(m[key] for m in masks) / max(1, len(masks))
        scores.update(label_accuracy=phrases_right / max(1, phrases), token_accuracy=tokens_right / max(1, tokens))
        return scores


def validator_for(config: dict, processor, say=print) -> Validator | None:
    """The validator of a ``calico-train`` config: ``data.val_samples`` rows of ``data.val_split``, drawn with
    ``train.seed``; ``None`` (and a note) when the dataset has no such split."""
    from calico_baseline.data import read_rows

    d = config["data"]
    if int(d.get("val_samples") or 0) <= 0:
        say("no validation: data.val_samples is 0")
        return None
    rows = read_rows(d["path"], d["val_split"]) if d.get("val_split") else []
    if not rows:
        say(f"no validation: {d['path']} has no {d.get('val_split')!r} split")
        return None
    return _validator(config, rows, int(d["val_samples"]), processor)


def train_subset_validator_for(config: dict, rows: list[dict], processor) -> Validator | None:
    """The same pass on ``data.train_eval_samples`` fixed rows of the *training* split (``None`` when 0): beside
    the val curve it tells "cannot fit even what it sees" (both flat) from "fits but does not generalise"."""
    size = int(config["data"].get("train_eval_samples") or 0)
    return _validator(config, rows, size, processor) if size > 0 and rows else None


def _validator(config: dict, rows: list[dict], size: int, processor) -> Validator:
    from calico_baseline.data import CalicoDataset, image_roots_for

    d = config["data"]
    subset = fixed_subset(rows, size, config["train"]["seed"])
    dataset = CalicoDataset(subset, processor, image_roots_for(d["path"], d["image_roots"]))
    return Validator(dataset, processor.collate, processor.tokenizer, batch_size=int(config["train"]["batch_size"]))
