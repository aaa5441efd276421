"""A build that fails or is stopped leaves a folder the same (or the corrected) command finishes.

Each test reproduces one way a run went wrong before: state written before the sources were read,
so the corrected command was refused; a Ctrl-C while a finished build was being verified deleted
its manifest; temporary state files outlived the run; files written through a temporary file came
out 0600 whatever the umask.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mixedparts.build import build
from mixedparts.build import writer as writer_module
from mixedparts.build.options import BuildOptions
from mixedparts.cli import main
from mixedparts.errors import MixedPartsError
from mixedparts.sources import open_readers

SMALL = BuildOptions(max_samples_per_split=30, shard_rows=10)  # several shards per split


def paco_copy(tiny_sources, tmp_path) -> Path:
    root = tmp_path / "paco"
    shutil.copytree(tiny_sources(0)["paco_lvis"], root)
    return root


def build_paco(paco: Path, coco: Path, out: Path, options=SMALL):
    return build(open_readers(paco=paco, coco_images=coco), out, options, progress=False)


def test_a_build_that_fails_on_bad_input_leaves_nothing_that_refuses_the_fixed_command(tiny_sources, tmp_path):
    paco, coco, out = paco_copy(tiny_sources, tmp_path), tiny_sources(0)["coco_images"], tmp_path / "dataset"
    annotations = paco / "annotations" / "paco_lvis_v1_val.json"
    good = annotations.read_text()
    broken = json.loads(good)
    broken["annotations"][0]["category_id"] = 999999  # found while reading, after the readers opened
    annotations.write_text(json.dumps(broken))
    with pytest.raises(MixedPartsError, match="unknown category_id 999999"):
        build_paco(paco, coco, out)
    assert not out.exists()
    annotations.write_text(good)
    result = build_paco(paco, coco, out)
    assert (out / "manifest.json").is_file() and sum(result.split_rows.values()) > 0


def test_a_state_without_finished_shards_does_not_block_another_build(tiny_sources, tmp_path):
    """What a run of an older version left after failing on bad input: a state and nothing else."""
    out = tmp_path / "dataset"
    out.mkdir()
    (out / ".build-state.json").write_text(json.dumps({"fingerprint": {"other": "inputs"}, "shards": {}}))
    build_paco(paco_copy(tiny_sources, tmp_path), tiny_sources(0)["coco_images"], out)
    assert (out / "manifest.json").is_file()


def test_other_inputs_are_still_refused_once_shards_are_done(build_tiny, tmp_path):
    out = build_tiny(tmp_path / "dataset", SMALL)
    with pytest.raises(MixedPartsError, match="holds a build with other sources or options"):
        build_tiny(out, BuildOptions(max_samples_per_split=30, shard_rows=10, seed=5))


def test_ctrl_c_while_a_finished_build_is_verified_keeps_its_manifest(build_tiny, tmp_path, monkeypatch):
    out = build_tiny(tmp_path / "dataset", SMALL)
    manifest = (out / "manifest.json").read_bytes()

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_module, "sha256_of", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_tiny(out, SMALL)
    assert (out / "manifest.json").read_bytes() == manifest


def test_ctrl_c_mid_build_says_the_same_command_resumes_and_it_does(tiny_sources, tmp_path, monkeypatch, capsys):
    paths = tiny_sources(0)
    out = tmp_path / "dataset"
    command = ["build", "--paco", str(paths["paco_lvis"]), "--coco-images", str(paths["coco_images"]),
               "--out", str(out), "--max-samples-per-split", "30", "--shard-rows", "10", "--workers", "1", "--quiet"]
    real_write_shard, written = writer_module.write_shard, []

    def stop_after_two(rows, path):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path.name)
        return real_write_shard(rows, path)

    monkeypatch.setattr(writer_module, "write_shard", stop_after_two)
    assert main(command) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted: run the same command again to resume (finished shards are verified and kept)"
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(writer_module, "write_shard", real_write_shard)
    assert main(command) == 0
    assert "[7 shards written, 2 verified and kept]" in capsys.readouterr().out


def test_a_rerun_removes_the_temporary_files_of_an_interrupted_run(build_tiny, tmp_path):
    out = build_tiny(tmp_path / "dataset", SMALL)
    leftovers = [out / "..build-state.json.k2j4h1", out / ".manifest.json.x9q2", out / "data" / ".val-00000-of-00003"
                 ".parquet.tmp-4242"]
    for path in leftovers:
        path.write_text("{")
    build_tiny(out, SMALL)
    assert not [p for p in leftovers if p.exists()]
    assert sorted(p.name for p in out.iterdir()) == [".build-state.json", "README.md", "data", "manifest.json"]


UMASK_PROBE = r"""
import sys
from mixedparts.build import build
from mixedparts.build.options import BuildOptions
from mixedparts.predictions import write_predictions
from mixedparts.sources import open_readers

paco, coco, out = sys.argv[1:4]
build(open_readers(paco=paco, coco_images=coco), out, BuildOptions(max_samples_per_split=5), progress=False)
write_predictions(out + "-predictions.json", [], model="m", split="test")
"""


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_follow_the_umask_like_the_shards(tiny_sources, tmp_path, umask, mode):
    paths, out = tiny_sources(0), tmp_path / "dataset"
    subprocess.run([sys.executable, "-c", UMASK_PROBE, str(paths["paco_lvis"]), str(paths["coco_images"]), str(out)],
                   check=True, preexec_fn=lambda: os.umask(umask),
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    files = [out / "manifest.json", out / ".build-state.json", out / "README.md",
             *sorted((out / "data").glob("*.parquet")), tmp_path / "dataset-predictions.json"]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: oct(mode) for p in files}


def test_a_writer_process_failing_stops_the_build_and_keeps_the_finished_shards(tmp_path):
    # The shards of one split are written by forked workers while later splits are still being added;
    # the error of a worker must reach the caller, and the state must list only shards that exist.
    out = tmp_path / "dataset"
    state = writer_module.prepare_output(out, {"test": 1})

    def rows_of(split, start, end, payload):
        if payload == "bad":
            raise OSError("disk full")
        return []

    with pytest.raises(OSError, match="disk full"):
        with writer_module.ShardWriter(out, state, rows_of, shard_rows=10, workers=2, progress=False) as writer:
            writer.add("val", 30, lambda start, end: "fine")
            writer.add("test", 20, lambda start, end: "bad" if start else "fine")
            writer.wait()
    recorded = json.loads((out / writer_module.STATE_FILE).read_text())["shards"]
    assert recorded and set(recorded) <= {p.name for p in (out / "data").glob("*.parquet")}
    assert "test-00001-of-00002.parquet" not in recorded
