"""A dataset path that does not exist is named at once, never sent to the Hub.

Before: ``mixedparts-demo/datset`` (a typo) matched ``org/name``, went to ``datasets.load_dataset``
as a Hub id and came back after six retries and ~25 s with a Hub error that never named the folder.
"""

import datasets
import pytest

from mixedparts.cli import main
from mixedparts.loader import DatasetLoadError, load_dataset, resolve


@pytest.fixture
def no_hub(monkeypatch):
    """Fails the test if anything reaches datasets.load_dataset (the Hub path)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"datasets.load_dataset was called with {args}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A working directory holding ``mixedparts-demo/dataset`` (only the folder matters here)."""
    (tmp_path / "mixedparts-demo" / "dataset").mkdir(parents=True)
    (tmp_path / "mixedparts-demo" / "sources").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("offline", [True, False])
def test_a_typo_under_a_local_folder_is_folder_not_found(demo, no_hub, monkeypatch, offline):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(DatasetLoadError) as error:
        load_dataset("mixedparts-demo/datset", split="test")
    message = str(error.value)
    assert message.startswith("mixedparts-demo/datset: folder not found") and "\n" not in message
    assert "mixedparts-demo holds dataset, sources" in message


def test_explicit_paths_never_go_to_the_hub(demo, no_hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for path in ("./org/name", str(demo / "org" / "name"), "~/surely-not-here-mixedparts/x"):
        with pytest.raises(DatasetLoadError, match="folder not found"):
            resolve(path)


def test_offline_an_uncached_hub_id_is_folder_not_found(demo, no_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    with pytest.raises(DatasetLoadError, match=r"^someone/mixedparts: folder not found.*not in the local Hub cache"):
        resolve("someone/mixedparts")
    (tmp_path / "hf-datasets" / "someone___mixedparts").mkdir(parents=True)  # datasets' own cache layout
    assert resolve("someone/mixedparts") == "someone/mixedparts"


def test_online_a_hub_id_is_still_a_hub_id(demo, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert resolve("someone/mixedparts") == "someone/mixedparts"


def test_the_command_line_says_it_in_one_line(demo, no_hub, capsys):
    assert main(["show", "--data", "mixedparts-demo/datset", "--out", "x.png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: mixedparts-demo/datset: folder not found")
