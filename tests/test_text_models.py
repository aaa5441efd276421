"""MiniLM run through transformers gives sentence-transformers' embeddings of the same model folder."""

from __future__ import annotations

import numpy as np
import pytest

from mixedparts.metrics.text_models import MiniLM, _minilm_path, embed_distinct


@pytest.mark.slow
def test_minilm_embeddings_equal_sentence_transformers(one_thread):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    # Labels as evaluation sees them: short names, articles, stray spaces and case, one beyond 256 tokens.
    texts = ["leg", "the leg", "  chair ", "back cover", "chest of drawers", "Headlight", "x",
             "a label far longer than any part name " * 40] + [f"part {i} of a thing" for i in range(300)]
    ours = MiniLM().embed(texts)
    model = sentence_transformers.SentenceTransformer(str(_minilm_path()), device="cpu")
    theirs = model.encode(texts, batch_size=256, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(texts), 384)
    # float32 rounding only (batch composition differs); cosine scores are printed to 0.1 points.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_no_text_embeds_to_an_empty_matrix():
    assert MiniLM().embed([]).shape == (0, 384)


def test_two_label_lists_cost_their_distinct_strings():
    # evaluate() embeds normalized SS labels, then only the recall gate's raw labels that are new.
    normalized = [f"part {i}" for i in range(300)] + ["leg", "back cover", "chest of drawers"]
    raw = ["the leg", "a back cover", "leg"] + [f"part {i}" for i in range(0, 300, 7)] + ["Headlight  "]

    class Counting(MiniLM):
        seen: list[str] = []

        def embed(self, texts):
            self.seen.extend(texts)
            return super().embed(texts)

    model = Counting()
    ss, gate = embed_distinct(model, normalized, raw)
    assert sorted(model.seen) == sorted(set(normalized) | set(raw))
    assert np.array_equal(ss, MiniLM().embed(normalized))  # SS rows exactly as embedded alone
    np.testing.assert_allclose(gate, MiniLM().embed(raw), rtol=0, atol=1e-6)
    empty_ss, empty_gate = embed_distinct(MiniLM(), normalized[:3], [])
    assert empty_ss.shape == (3, 384) and empty_gate.shape == (0, 384)
