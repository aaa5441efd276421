"""MixedParts: part-focused semantic co-segmentation — sources, dataset builder, loader and metrics."""

__version__ = "0.1.0"
