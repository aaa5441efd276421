"""A fourth source release is one registered plug-in: synthesized, built, loaded and scored end to end.

The plug-in (reader, writer, spec) lives in tests/fourth_source.py; nothing in ``mixedparts`` names it.
"""

from __future__ import annotations

import json

import pytest

import fourth_source
from mixedparts import schema
from mixedparts.cli import main
from mixedparts.errors import MixedPartsError
from mixedparts.sources import registry


@pytest.fixture
def toy_source():
    """The Toy Parts release, registered for one test and unregistered after it, whatever happens."""
    before = registry.registered_sources()
    registry.register_source(fourth_source.SPEC)
    try:
        yield fourth_source.SPEC
    finally:
        registry.unregister_source(fourth_source.NAME)
        assert registry.registered_sources() == before


@pytest.fixture
def toy_dataset(toy_source, tmp_path):
    """``mixedparts synth`` then ``mixedparts build`` of the Toy Parts release alone, through the CLI."""
    sources = tmp_path / "sources"
    assert main(["synth", "--out", str(sources), "--sources", fourth_source.NAME, "--quiet"]) == 0
    dataset = tmp_path / "dataset"
    assert main(["build", "--toy-parts", str(sources / "ToyParts"), "--out", str(dataset), "--quiet",
                 "--workers", "2", "--max-samples-per-split", "40"]) == 0
    return sources, dataset


@pytest.mark.slow
def test_registered_source_is_built_loaded_and_scored_end_to_end(toy_dataset, tmp_path, capsys):
    from mixedparts import load_dataset
    from mixedparts.metrics.cli import main as eval_main
    from mixedparts.predictions import write_predictions
    from mixedparts.reference_predictions import predict

    sources, dataset = toy_dataset
    drawn = json.loads((sources / "drawn.json").read_text())[fourth_source.NAME]
    manifest = json.loads((dataset / "manifest.json").read_text())
    # The spec's split map, image folders and annotation files reached the manifest.
    assert manifest["image_roots"][fourth_source.NAME] == {
        split: str((sources / "ToyParts" / "images" / release).resolve())
        for release, split in fourth_source.SPEC.splits.items()}
    assert sorted(manifest["sources"][fourth_source.NAME]["files"]) == [
        f"annotations/{s}.json" for s in sorted(fourth_source.RELEASE_SPLITS)]
    readme = (dataset / "README.md").read_text()
    assert f"| {fourth_source.NAME} | common_object |" in readme

    splits = {}
    for split in ("train", "val", "test"):
        splits[split] = load_dataset(str(dataset), split=split, decode_images=True)
        assert len(splits[split]) > 0, split
    rows = splits["test"]
    assert set(rows["source"]) == {fourth_source.NAME}
    assert set(rows["task"]) == set(schema.TASKS)
    # Every image of the test split is one the writer drew in the release's "eval" split, at its size.
    drawn_eval = {(d["file_name"]): d for d in drawn if d["split"] == "eval"}
    row = rows[0]
    for image, picture in zip(row["images"], row["pil_images"]):
        assert picture.size == (drawn_eval[image["file_name"]]["width"], drawn_eval[image["file_name"]]["height"])
    categories = {o["category"] for r in rows for o in r["objects"]}
    assert categories <= set(fourth_source.DESIGNS)

    plain_rows = [{k: v for k, v in r.items() if k != "pil_images"} for r in rows]
    predictions = write_predictions(tmp_path / "oracle.json", predict("oracle", plain_rows), model="oracle",
                                    split="test")
    scores_file = tmp_path / "scores.json"
    assert eval_main([str(predictions), "--data", str(dataset), "--split", "test", "--json", str(scores_file)]) == 0
    scores = json.loads(scores_file.read_text())["scores"]
    for task in schema.TASKS:
        for metric in schema.METRICS:
            assert scores[task][metric] == pytest.approx(100.0), (task, metric)


def test_registration_reaches_every_table_and_leaves_it_clean(toy_source, tmp_path):
    from mixedparts.build.splits import canonical_split
    from mixedparts.images import ImageResolver
    from mixedparts.sources import open_readers
    from mixedparts.synth import synthesize

    assert fourth_source.NAME in schema.SOURCES
    assert canonical_split(fourth_source.NAME, "dev", "toy_parts:dev-0", 0.1) == "val"
    # A user may give the release folder as the image root: the spec's image folder is found inside it.
    synthesize(tmp_path / "s", sources=(fourth_source.NAME,))
    release = tmp_path / "s" / "ToyParts"
    resolver = ImageResolver(user_roots={fourth_source.NAME: str(release)})
    assert resolver.root(fourth_source.NAME, "test", "eval_0000.png") == release / "images" / "eval"
    readers = open_readers(toy_parts=release)
    assert [type(r).__name__ for r in readers] == ["ToyPartsReader"]
    with pytest.raises(MixedPartsError, match="already registered"):
        registry.register_source(fourth_source.SPEC)


def test_unregistered_source_is_unknown_again(capsys):
    assert fourth_source.NAME not in schema.SOURCES
    assert registry.find_source(fourth_source.NAME) is None
    with pytest.raises(SystemExit) as stopped:  # argparse: no such option any more
        main(["build", "--toy-parts", "x", "--out", "y"])
    assert stopped.value.code == 2
    with pytest.raises(MixedPartsError, match="built in"):
        registry.unregister_source("paco_lvis")


def test_every_built_in_spec_names_a_reader_and_writer_that_agree_with_it():
    for spec in registry.BUILTIN_SOURCES:
        reader = spec.load_reader()
        assert reader.source == spec.name and set(reader.splits) == set(spec.splits), spec.name
        assert callable(spec.load_writer())
        assert set(spec.image_folders) <= {"train", "val", "test"}


def test_a_spec_that_clashes_or_maps_splits_wrongly_is_refused():
    from dataclasses import replace

    with pytest.raises(MixedPartsError, match="--paco"):
        registry.register_source(replace(fourth_source.SPEC, flag="--paco"))
    with pytest.raises(MixedPartsError, match="'coco'"):
        registry.register_source(replace(fourth_source.SPEC, synth_folder="coco"))
    with pytest.raises(ValueError, match="train, val or test"):
        replace(fourth_source.SPEC, splits={"fit": "training"})
    with pytest.raises(ValueError, match="val_from"):
        replace(fourth_source.SPEC, val_from="validation")
    assert registry.find_source(fourth_source.NAME) is None


def test_medium_scale_keeps_small_held_out_images_and_adds_training_ones():
    """A model trained on the medium sources is scored on small's very val and test images: each image is drawn
    from (seed, source, split, index) alone, so equal held-out counts mean equal held-out images (checked by
    hand on the pixels; the release-wide PACO annotation ids shift, train being written first)."""
    from mixedparts.synth import ade20k_part234, paco, partimagenet

    for table, train in ((paco.SCALE_SIZES, "train"), (partimagenet.SCALE_PLAN, "train"),
                         (ade20k_part234.SCALE_SIZES, "training")):
        (small, small_size), (medium, medium_size) = table["small"], table["medium"]
        assert medium_size == small_size
        assert {k: v for k, v in medium.items() if k != train} == {k: v for k, v in small.items() if k != train}
        assert medium[train] == 10 * small[train]
