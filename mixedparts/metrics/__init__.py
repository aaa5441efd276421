"""The MixedParts metric suite: AP50, mIoU, Recall, SS and S-IoU as docs/metrics.md defines them.

One module per metric (``ap50``, ``miou``, ``recall``, ``semantic``), the pairing rules they share
(``matching``), label normalization (``labels``), text embedders (``text_models``), ground-truth
loading (``ground_truth``), reading it with the predictions (``inputs``), scoring of units (``units``), aggregation (``evaluate``), re-scoring
resampled samples for intervals and paired tests (``resampling``), the printed table (``report``) and
``mixedparts-eval`` (``cli``). Entry point for code: :func:`evaluate.evaluate`.
"""
