"""Small command-line frictions a newcomer hit, each reproduced and fixed."""

import subprocess
import sys
from pathlib import Path

import pytest

from mixedparts.build.options import BuildOptions
from mixedparts.cli import build_parser, main
from mixedparts.errors import MixedPartsError
from mixedparts.images import ImageResolver

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(build_tiny, tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("frictions") / "dataset", BuildOptions(max_samples_per_split=20))


def test_an_image_root_for_an_unknown_source_is_an_error(built, capsys):
    with pytest.raises(MixedPartsError, match="unknown source 'paco'; the sources are paco_lvis"):
        ImageResolver(user_roots={"paco": "/data/coco"})
    assert main(["show", "--data", str(built), "--image-root", "paco=/data/coco", "--out", "x.png"]) == 2
    assert "unknown source 'paco'" in capsys.readouterr().err


def test_stats_does_not_create_a_missing_histogram_folder(built, tmp_path, capsys):
    target = tmp_path / "no-such-folder" / "stats.png"
    assert main(["stats", "--data", str(built), "--histogram", str(target)]) == 2
    assert "folder" in capsys.readouterr().err and not target.parent.exists()


def test_build_without_coco_images_says_paco_images_will_not_resolve(tiny_sources, tmp_path, capsys):
    paths = tiny_sources(0)
    assert main(["build", "--paco", str(paths["paco_lvis"]), "--out", str(tmp_path / "d"), "--quiet",
                 "--max-samples-per-split", "5", "--no-check-images"]) == 0
    assert "warning: --paco without --coco-images" in capsys.readouterr().err


def help_texts(parser):
    import argparse

    yield parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from help_texts(sub)


def test_help_shows_defaults_only_where_they_inform():
    texts = "\n".join(help_texts(build_parser()))
    assert "(default: True)" not in texts and "(default: False)" not in texts and "(default: None)" not in texts
    assert "(default: 0.02)" in texts  # real defaults are still shown
    assert "defaults to ~/.cache/mixedparts)" in texts and "~/.cache/mixedparts) (default" not in texts


def test_images_per_sample_help_says_what_works():
    assert "2 to 6" in " ".join(next(h for h in help_texts(build_parser()) if "--images-per-sample" in h).split())


def test_output_into_a_closed_pipe_ends_quietly(built):
    """``mixedparts stats --json | head``: the reader may be gone before the first line is written."""
    import os

    code = "import sys; from mixedparts.cli import main; sys.exit(main(['stats', '--data', sys.argv[1], '--json']))"
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `head` has exited
    try:
        result = subprocess.run([sys.executable, "-c", code, str(built)], stdout=write_end, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(write_end)
    assert result.stderr == "" and result.returncode == 1


def test_synth_shows_progress_per_release_and_split(tmp_path, monkeypatch):
    import tqdm

    from mixedparts.synth import synthesize

    bars = []

    class Recorder(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            bars.append((kwargs.get("desc"), kwargs.get("total")))
            super().__init__(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    record = synthesize(tmp_path / "s", scale="tiny", sources=("partimagenet",), progress=True)
    assert [d for d, _ in bars] == ["drawing PartImageNet train", "drawing PartImageNet val", "drawing PartImageNet test"]
    assert sum(total for _, total in bars) == len(record["partimagenet"])
    bars.clear()
    synthesize(tmp_path / "quiet", scale="tiny", sources=("partimagenet",))
    assert bars == []
