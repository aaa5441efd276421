"""MixedParts: part-focused semantic co-segmentation — sources, dataset builder, loader and metrics."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_dataset"]


def __getattr__(name: str):
    # Lazy: ``import mixedparts`` stays instant; ``datasets`` is imported on first use of the loader.
    if name == "load_dataset":
        from mixedparts.loader import load_dataset

        return load_dataset
    raise AttributeError(f"module 'mixedparts' has no attribute {name!r}")
