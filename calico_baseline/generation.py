"""Greedy generation with the KV cache, [SEG] states collected on the fly, and masks per tagged image.

The prefill runs the CAMs (a :class:`~calico_baseline.cam.CamContext` is passed); cached steps do not.
The hidden state that *predicts* a ``[SEG]`` is its embedding (GLaMM/LISA), which at step t is the
state of the last position, so no second forward is needed. Each ``[SEG]`` is decoded against the
image named by the ``(IMAGEk)`` tag that follows it in the text (first image if untagged).
"""

from __future__ import annotations

import re

import torch

from calico_baseline.tokenization import decode_answer
from mixedparts import markup, masks

SEG_WITH_TAG = re.compile(r"\[SEG\](\s*\(IMAGE(\d+)\))?")


def seg_assignments(text: str, num_images: int) -> list[tuple[str, int]]:
    """(label, 0-based image index) for every ``[SEG]`` of ``text`` in order.

    The label is the phrase of the ``<p> … </p>`` the [SEG] follows (articles removed), "" if none;
    the image is the ``(IMAGEk)`` tag right after it, the first image when the tag is missing or out of range.
    """
    phrases = [(m.end(), m.group(1)) for m in re.finditer(r"<p>\s*(.*?)\s*</p>", text)]
    out = []
    for m in SEG_WITH_TAG.finditer(text):
        label = ""
        for end, phrase in phrases:
            if end <= m.start():
                label = phrase
        k = int(m.group(2)) - 1 if m.group(2) else 0
        out.append((_bare(label), k if 0 <= k < num_images else 0))
    return out


def _bare(phrase: str) -> str:
    words = phrase.split()
    if words and words[0].lower() in ("a", "an", "the"):
        words = words[1:]
    return " ".join(words)


@torch.no_grad()
def generate(model, batch: dict, max_new_tokens: int = 128, eos_token_id: int | None = None):
    """Greedy decoding of a left-padded batch → (token ids per sample, [SEG] states per sample (n×d))."""
    eos = eos_token_id if eos_token_id is not None else model.config.text_config.eos_token_id
    seg_id = model.config.seg_token_id
    embeds, context = model.prefill_inputs(batch)
    attention = batch["attention_mask"]
    positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
    hidden, cache = model.run_llm(embeds, attention, positions, cam_context=context, use_cache=True)
    last = hidden[:, -1]  # B×d
    next_position = positions[:, -1:] + 1
    bsz = hidden.shape[0]
    tokens = [[] for _ in range(bsz)]
    seg_states = [[] for _ in range(bsz)]
    done = torch.zeros(bsz, dtype=torch.bool, device=hidden.device)
    embed_tokens = model.llm.get_input_embeddings()
    for _ in range(max_new_tokens):
        step = model.llm.lm_head(last).argmax(-1)  # B
        for b in range(bsz):
            if not done[b]:
                tokens[b].append(int(step[b]))
                if int(step[b]) == seg_id:
                    seg_states[b].append(last[b])
        done |= step == eos
        if bool(done.all()):
            break
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
        hidden, cache = model.run_llm(embed_tokens(step[:, None]), attention, next_position, cache=cache,
                                      use_cache=True)
        last = hidden[:, -1]
        next_position = next_position + 1
    states = [torch.stack(s) if s else hidden.new_zeros(0, hidden.shape[-1]) for s in seg_states]
    return tokens, states


@torch.no_grad()
def predict_batch(model, tokenizer, batch: dict, max_new_tokens: int = 128, threshold: float = 0.0) -> list[dict]:
    """One predictions-file entry per sample of a collated inference batch (masks at original size)."""
    tokens, states = generate(model, batch, max_new_tokens, tokenizer.eos_token_id)
    texts = [decode_answer(tokenizer, t) for t in tokens]
    counts = torch.bincount(batch["image_sample"], minlength=len(texts)).tolist()
    assignments = [seg_assignments(text, k) for text, k in zip(texts, counts)]
    # the text's [SEG] count equals the generated [SEG] token count; guard against detokenisation surprises
    states = [s[: len(a)] for s, a in zip(states, assignments)]
    assignments = [a[: len(s)] for s, a in zip(states, assignments)]
    decoded = model.masks_for(states, [[k for _, k in a] for a in assignments], batch["image_sample"],
                              batch["sam_pixels"], batch["sam_input_sizes"], batch["original_sizes"])
    predictions = []
    for sample_id, text, pairs, logits in zip(batch["sample_ids"], texts, assignments, decoded):
        segments = [{"label": label, "image_index": k,
                     "mask": masks.encode((mask > threshold).cpu().numpy()), "score": 1.0}
                    for (label, k), mask in zip(pairs, logits)]
        predictions.append({"sample_id": sample_id, "text": text, "segments": segments})
    return predictions


__all__ = ["generate", "predict_batch", "seg_assignments", "markup"]
