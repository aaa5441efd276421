"""MiniLM run through transformers gives sentence-transformers' embeddings of the same model folder."""

from __future__ import annotations

import numpy as np
import pytest

from mixedparts.metrics.text_models import MiniLM, _minilm_path


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
