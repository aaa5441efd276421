"""Prompt template and tokenization (docs/model.md).

Vicuna v1 conversation as in GLaMM/LISA; each image is written ``IMAGEk <im_start><image><im_end>``
and every ``<image>`` becomes ``visual_tokens_per_image`` slots holding ``IMAGE_PLACEHOLDER_ID`` (-200).
IMAGE1/IMAGE2 are plain text. The real model uses GLaMM's tokenizer (``[SEG]``, ``<p>``, ``</p>``,
``<im_start>``, ``<im_end>`` already in its vocabulary); ``calico-tiny`` trains a small byte-level BPE.
"""

from __future__ import annotations

from collections.abc import Iterable

from calico_baseline.config import IMAGE_PLACEHOLDER_ID

# the llava_v1 template that GLaMM (model/llava/conversation.py) and LISA (model/llava/conversation.py) train
# with: "curious human ... the human's questions", roles USER / ASSISTANT
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the human's questions.")
GROUNDING_TOKENS = ["<im_start>", "<im_end>", "<bbox>", "<point>", "[SEG]", "<p>", "</p>"]  # GLaMM order
NEEDED_TOKENS = ["<im_start>", "<im_end>", "[SEG]", "<p>", "</p>"]  # what the prompt and answers use, GLaMM's order
IMAGE = "<image>"


def image_intro(k: int) -> str:
    """``The IMAGE1 <im_start><image><im_end> and IMAGE2 <im_start><image><im_end> provide an overview of the pictures.``"""
    names = [f"IMAGE{i + 1} <im_start>{IMAGE}<im_end>" for i in range(k)]
    listed = names[0] if k == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"The {listed} provide{'s' if k == 1 else ''} an overview of the picture{'' if k == 1 else 's'}."


def prompt_text(question: str, k: int, system: str = SYSTEM) -> str:
    return f"{system} USER: {image_intro(k)}\n{question} ASSISTANT:"


def encode_prompt(tokenizer, question: str, k: int, visual_tokens_per_image: int) -> list[int]:
    """BOS + prompt ids, each ``<image>`` expanded to ``visual_tokens_per_image`` placeholder ids."""
    chunks = prompt_text(question, k).split(IMAGE)
    ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for i, chunk in enumerate(chunks):
        if i:
            ids += [IMAGE_PLACEHOLDER_ID] * visual_tokens_per_image
        ids += tokenizer(chunk, add_special_tokens=False)["input_ids"]
    return ids


def encode_answer(tokenizer, answer: str) -> list[int]:
    """Answer ids + EOS (the supervised part)."""
    return tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def decode_answer(tokenizer, ids: Iterable[int]) -> str:
    """Generated ids → answer text, keeping ``<p>``, ``</p>``, ``[SEG]``; EOS/PAD removed; spaces normalised."""
    drop = {tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id}
    text = tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)
    return " ".join(text.split())


def add_grounding_tokens(tokenizer) -> list[str]:
    """Add the grounding tokens the prompts and answers use that a published tokenizer lacks, in GLaMM's order, as GLaMM's train.py adds them
    (``add_tokens(..., special_tokens=True)``); returns those added. LISA-7B-v1's tokenizer has ``[SEG]``,
    ``<im_start>``, ``<im_end>`` (LISA's train_ds.py) and gains ``<p>``, ``</p>``; GLaMM's has all seven. The
    model's embedding and LM-head rows grow to match when the checkpoint loads
    (:func:`calico_baseline.checkpoints.grow_vocabulary`). A missing pad token becomes ``unk``, as both do."""
    unk = tokenizer.unk_token_id
    missing = [t for t in NEEDED_TOKENS if tokenizer.convert_tokens_to_ids(t) in (None, unk)]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None and tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    return missing


def check_tokenizer(tokenizer) -> None:
    missing = [t for t in ("[SEG]", "<p>", "</p>", "<im_start>", "<im_end>")
               if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
    if missing:
        raise ValueError(f"tokenizer lacks the grounding tokens {missing} (use GLaMM's tokenizer)")


def build_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 600):
    """A byte-level BPE trained on ``texts`` (questions and answers), with the grounding tokens; offline, ~0.1 s."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"] + GROUNDING_TOKENS
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = list(texts) + [SYSTEM, prompt_text("", 2), prompt_text("", 3)]
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", additional_special_tokens=GROUNDING_TOKENS)
    return fast


def config_overrides(tokenizer) -> dict:
    """Config fields that must agree with the tokenizer (vocab size, [SEG] and special ids)."""
    return {"seg_token_id": tokenizer.convert_tokens_to_ids("[SEG]"),
            "phrase_token_ids": tokenizer.convert_tokens_to_ids(["<p>", "</p>"]),
            "text_config": {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}}
