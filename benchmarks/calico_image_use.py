"""Does a trained Calico use its images? Teacher-forced scores of the label tokens with the real images, with
each sample given another sample's images, and with blank images.

    python benchmarks/calico_image_use.py CHECKPOINT --data DIR [--splits train val] [--samples 48]

The tokens between ``<p>`` and ``</p>`` name the objects and parts; in the synthetic builds every part is
painted in its own colour, so these names can be read off the pixels. A model whose visual path carries
information scores them better with the real images than with shuffled or blank ones; equal scores mean the
LLM answers from the question and the text prior alone. Per split and image mode it prints the mean
cross-entropy of the label tokens and the share of them that are the top prediction; the last line is one JSON
object with the same figures.

It also prints, per split, the teacher-forced label accuracy (``calico-train``'s ``label_accuracy``) of an oracle
that knows every label of each answer but not the answer's random choices: the builder lists the parts in a
random order and picks "the" or "a" at random (once per part sentence, and for a common object), so the i-th of
n parts of a list is right with probability 1/(n - i + 1) and a random article with 1/2. Label accuracy is to be
read against this line, not against 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

MODES = ("real", "shuffled", "blank")
IMAGE_VIEWS = ("clip_pixels", "dino_pixels")  # what the LLM's visual tokens and CAMs are computed from


def altered(batch: dict, mode: str) -> dict:
    """The batch with its LLM-side image views replaced: rolled by one sample's images (another sample's images
    for every sample, when the batch holds two or more) or set to zero (the normalised mean colour)."""
    import torch

    batch = dict(batch)
    for key in IMAGE_VIEWS:
        if key not in batch or mode == "real":
            continue
        views = batch[key]
        first = int((batch["image_sample"] == 0).sum())
        batch[key] = torch.roll(views, first, 0) if mode == "shuffled" else torch.zeros_like(views)
    return batch


PHRASE = re.compile(r"<p>(.*?)</p>((?:\s*\[SEG\]\s*\(IMAGE\d+\))+)")


def oracle_label_accuracy(rows: list[dict]) -> float:
    """Expected share of ``<p>`` phrases an oracle gets right, teacher-forced (see the module docstring)."""
    expected = phrases = 0.0
    for row in rows:
        found = [(m.group(1).strip(), " ".join(m.group(2).split())) for m in PHRASE.finditer(row["answer"])]
        if row["task"] == "common_object":  # one phrase, "the"/"a" at random
            expected, phrases = expected + 0.5 * len(found), phrases + len(found)
            continue
        # the object sentence: one phrase for one category, else one per image; always "a"/"an"
        objects = 1 if len({o["category"] for o in row["objects"]}) == 1 else len(row["images"])
        expected, phrases = expected + objects, phrases + objects
        lists: list[list[str]] = []  # consecutive part phrases grounded in the same images: one shuffled list
        grounding = None
        for name, where in found[objects:]:
            if where != grounding:
                lists.append([])
                grounding = where
            lists[-1].append(name)
        random_article = not (row["task"] == "unique_parts" and len(found) - objects == 1)
        for k, names in enumerate(lists):
            for i in range(len(names)):
                chance = 1.0 / (len(names) - i)
                expected += chance * (0.5 if random_article and k == 0 and i == 0 else 1.0)
                phrases += 1
    return expected / max(phrases, 1)


def label_scores(model, batches: list[dict], open_id: int, close_id: int, mode: str) -> dict:
    import torch

    from calico_baseline.validation import phrase_spans

    loss = right = total = 0.0
    with torch.no_grad():
        for batch in batches:
            log_probs = torch.log_softmax(model(**altered(batch, mode)).logits.float(), -1)
            for row, labels in enumerate(batch["labels"].tolist()):
                for start, end in phrase_spans(labels, open_id, close_id):
                    for position in range(start, end):  # the logits at p - 1 predict the token at p
                        loss -= float(log_probs[row, position - 1, labels[position]])
                        right += int(log_probs[row, position - 1].argmax()) == labels[position]
                        total += 1
    return {"label_ce": loss / max(total, 1), "label_token_accuracy": right / max(total, 1), "label_tokens": int(total)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a calico-train output folder (e.g. runs/calico-tiny/final)")
    parser.add_argument("--data", required=True, help="the built dataset it was trained on")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--samples", type=int, default=48, help="fixed, seeded rows per split")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--look", nargs="?", const="objects_and_parts", choices=LOOK_ANSWERS,
                        help="score the look stage's rows (calico_baseline.look: each image's object and part names, "
                        "or with `objects` its object only) instead of the task's")
    from mixedparts.errors import parse_and_run

    return parse_and_run(parser, argv, run)


LOOK_ANSWERS = ("objects", "objects_and_parts")  # calico_baseline.look's, not imported: --help stays fast


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixedparts.errors import MixedPartsError

    if not (Path(args.checkpoint) / "config.json").is_file():
        raise MixedPartsError(f"{args.checkpoint}: not a checkpoint folder (no config.json; a calico-train output "
                              f"such as runs/calico-tiny/final)")
    import torch
    from transformers import AutoTokenizer

    from calico_baseline.data import CalicoDataset, CalicoProcessor, image_roots_for, read_rows
    from calico_baseline.look import look_rows
    from calico_baseline.modeling import CalicoForCausalLM
    from calico_baseline.validation import fixed_subset

    torch.set_num_threads(args.threads)
    model = CalicoForCausalLM.from_pretrained(args.checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    processor = CalicoProcessor(tokenizer, model.config, 1024)
    open_id, close_id = tokenizer.convert_tokens_to_ids("<p>"), tokenizer.convert_tokens_to_ids("</p>")
    roots = image_roots_for(args.data)
    results = {}
    for split in args.splits:
        rows = fixed_subset(read_rows(args.data, split), args.samples)
        if args.look:  # sorted names, no articles: an oracle that knows the labels gets every one right
            rows = look_rows(rows, args.look)
        else:
            results[f"{split}/oracle_label_accuracy"] = {"value": oracle_label_accuracy(rows)}
            print(f"{split:>6} oracle label accuracy (knows the labels, not their order): "
                  f"{results[f'{split}/oracle_label_accuracy']['value']:.3f}")
        dataset = CalicoDataset(rows, processor, roots)
        batches = [processor.collate([dataset[i] for i in range(start, min(start + args.batch_size, len(dataset)))])
                   for start in range(0, len(dataset), args.batch_size)]
        for mode in MODES:
            scores = label_scores(model, batches, open_id, close_id, mode)
            results[f"{split}/{mode}"] = scores
            print(f"{split:>6} {mode:>8} images: label-token CE {scores['label_ce']:.3f}, top-1 "
                  f"{scores['label_token_accuracy']:.3f} ({scores['label_tokens']} tokens, {len(dataset)} samples)")
    print(json.dumps({"checkpoint": args.checkpoint, "samples": args.samples, "rows": "look" if args.look else "task",
                      **{k: {m: round(v, 4) for m, v in s.items()} for k, s in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
