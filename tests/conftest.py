import os

import pytest

# Never let a test wait on the Hub: everything loads from local paths.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory):
    """``tiny_sources(seed)`` -> the release roots of a tiny synthetic copy, drawn once per seed and session."""
    from mixedparts.synth import source_paths, synthesize

    drawn: dict[int, dict] = {}

    def get(seed: int = 0) -> dict:
        if seed not in drawn:
            root = tmp_path_factory.mktemp(f"tiny-sources-{seed}") / "sources"
            synthesize(root, scale="tiny", seed=seed)
            drawn[seed] = source_paths(root)
        return drawn[seed]

    return get


@pytest.fixture(scope="session")
def build_tiny(tiny_sources):
    """``build_tiny(out, options=BuildOptions(), sources_seed=0)`` -> ``out``, a dataset built from all
    three tiny synthetic releases (read-only shared sources; the build itself is the caller's)."""
    from mixedparts.build import build
    from mixedparts.build.options import BuildOptions
    from mixedparts.sources import open_readers

    def make(out, options=None, sources_seed: int = 0, workers: int = 1):
        paths = tiny_sources(sources_seed)
        readers = open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                               partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])
        build(readers, out, options or BuildOptions(), workers=workers, progress=False)
        return out

    return make


@pytest.fixture
def one_thread():
    """torch on one thread: small models on a shared 2-core machine run several times faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
