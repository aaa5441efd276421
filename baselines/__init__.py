"""Comparison systems writing MixedParts predictions; run any with ``mixedparts-baseline NAME`` (:mod:`baselines.cli`).

- ``oracle``, ``simple``: weight-free references (:mod:`baselines.reference`)
- ``dino-coseg``: DINOv2 feature co-segmentation (:mod:`baselines.dino_coseg`)
- ``vlpart``, ``partglee``: per-image part detector + the multi-image recipe (:mod:`baselines.part_detector`)
- ``cascade``: describer -> structurer -> referring segmenter (:mod:`baselines.cascade`)
- ``lisa``, ``glamm``: Multi-Image LISA / GLaMM from calico_baseline blocks (:mod:`baselines.multi_image_llava`)
"""
