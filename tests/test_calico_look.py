"""The look stage of calico-train: its rows, its mixing into the task, its schedule and a short run through it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from calico_baseline.checkpoints import TRAINED_FILE
from calico_baseline.look import LOOK_QUESTION, MixedDataset, look_answer, look_row, look_rows
from mixedparts import markup

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def row():
    """A common-parts row as the builder writes it (mixedparts.schema: objects, segments with kind and label)."""
    answer = ("The objects in the images are <p> an armchair </p> [SEG] (IMAGE1) and <p> a stool </p> [SEG] (IMAGE2). "
              "The shared parts are <p> the seat </p> [SEG] (IMAGE1) [SEG] (IMAGE2) and <p> a leg </p> [SEG] (IMAGE1) "
              "[SEG] (IMAGE2).")
    segments = [{"label": "armchair", "kind": "object", "image_index": 0},
                {"label": "stool", "kind": "object", "image_index": 1},
                {"label": "seat", "kind": "common_part", "image_index": 0},
                {"label": "seat", "kind": "common_part", "image_index": 1},
                {"label": "leg", "kind": "common_part", "image_index": 0},
                {"label": "leg", "kind": "common_part", "image_index": 1}]
    return {"sample_id": "s", "task": "common_parts", "images": [{"file_name": "a.jpg"}, {"file_name": "b.jpg"}],
            "objects": [{"image_index": 0, "category": "armchair"}, {"image_index": 1, "category": "stool"}],
            "question": "What parts are shared?", "answer": answer, "segments": segments}


def test_look_answer_names_each_images_object_and_its_parts_sorted():
    assert look_answer(row()) == ("IMAGE1 shows <p> armchair </p> with <p> leg </p> and <p> seat </p>. "
                                  "IMAGE2 shows <p> stool </p> with <p> leg </p> and <p> seat </p>.")
    assert look_answer(row(), with_parts=False) == "IMAGE1 shows <p> armchair </p>. IMAGE2 shows <p> stool </p>."
    unique = row()
    unique["segments"] = unique["segments"][:2] + [{"label": "back", "kind": "unique_part", "image_index": 1},
                                                   {"label": "arm", "kind": "unique_part", "image_index": 1},
                                                   {"label": "arm", "kind": "unique_part", "image_index": 1}]
    assert look_answer(unique) == ("IMAGE1 shows <p> armchair </p>. "
                                   "IMAGE2 shows <p> stool </p> with <p> arm </p> and <p> back </p>.")


def test_look_row_keeps_the_images_and_has_no_masks():
    original = row()
    looked = look_row(original)
    assert looked["images"] == original["images"] and looked["question"] == LOOK_QUESTION
    assert looked["segments"] == [] and markup.seg_count(looked["answer"]) == 0
    assert [p.phrase for p in markup.parse(looked["answer"])] == ["armchair", "leg", "seat", "stool", "leg", "seat"]
    assert original["segments"] and original["question"] == "What parts are shared?"  # the task row is untouched
    assert look_rows([original], "objects")[0]["answer"].count("<p>") == 2
    with pytest.raises(ValueError, match="look_answer"):
        look_rows([original], "parts")


def test_mixed_dataset_adds_a_seeded_share_of_look_samples():
    task, look = [f"t{i}" for i in range(10)], [f"l{i}" for i in range(4)]
    mixed = MixedDataset(task, look, 0.5, seed=3)
    items = [mixed[i] for i in range(len(mixed))]
    assert len(mixed) == 15 and items[:10] == task and all(item in look for item in items[10:])
    assert [MixedDataset(task, look, 0.5, seed=3)[i] for i in range(15)] == items
    assert len(MixedDataset(task, look, 0.0)) == 10
    with pytest.raises(ValueError, match="look_mix"):
        MixedDataset(task, look, -1)


def test_the_task_restarts_the_schedule_after_the_look_stage():
    from calico_baseline.train import lr_lambda

    f = lr_lambda(10, 110, look_steps=50)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(30) == pytest.approx(0.5)
    assert f(50) == pytest.approx(0.1) and f(59) == pytest.approx(1.0) and f(110) == pytest.approx(0.5)
    assert f(160) == 0
    assert [lr_lambda(10, 110)(s) for s in range(120)] == [lr_lambda(10, 110, 0)(s) for s in range(120)]


@pytest.fixture(scope="module")
def dataset(build_tiny, tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("calico-look") / "dataset")


LOOK_STEPS = 24


def look_args(dataset, out, *extra):
    return ["--config", str(Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"),
            "--set", f"data.path={dataset}", "--set", f"train.output_dir={out}", "--set", "data.limit=16",
            "--set", f"train.look_steps={LOOK_STEPS}", "--set", "train.max_steps=2", "--set", "train.log_every=6",
            "--set", "train.save_every=1000", "--set", "train.warmup_steps=2", "--set", "train.progress=false",
            "--set", "train.tensorboard=false", "--set", "train.val_every=0", "--set", "train.threads=1", *extra]


def test_a_run_with_the_look_stage_learns_it_then_trains_the_task_and_resumes_exactly(dataset, tmp_path):
    from calico_baseline import train
    from calico_baseline.curves import read_metrics

    run = tmp_path / "run"
    assert train.main(look_args(dataset, run)) == 0
    logged = {r["step"]: r for r in read_metrics(run) if r["phase"] == "train"}
    assert sorted(logged) == [6, 12, 18, 24, 26]
    # the look answers have no [SEG]: no mask loss until the task starts
    assert all(logged[s]["mask_loss"] == 0 for s in (6, 12, 18, 24)) and logged[26]["mask_loss"] > 0
    # measured (16 demo rows, seed 0): text loss 5.82 over steps 1-6, 3.92 over steps 19-24
    assert logged[24]["ce_loss"] < logged[6]["ce_loss"] - 1.5, logged
    # the stage's last step is a checkpoint, and resuming from it reproduces the uninterrupted run
    boundary = run / "checkpoints" / f"step-{LOOK_STEPS}"
    assert boundary.is_dir()
    reference = load_file(str(run / "final" / TRAINED_FILE))
    shutil.rmtree(run / "checkpoints" / f"step-{LOOK_STEPS + 2}")
    shutil.rmtree(run / "final")
    assert train.main(look_args(dataset, run, "--resume")) == 0
    resumed = load_file(str(run / "final" / TRAINED_FILE))
    assert set(resumed) == set(reference) and all(torch.equal(resumed[k], reference[k]) for k in reference)



def test_look_mix_puts_look_samples_among_the_tasks(dataset):
    from calico_baseline.data import read_rows
    from calico_baseline.testing import tiny_setup
    from calico_baseline.train import load_config, training_datasets

    _, tokenizer, processor = tiny_setup()
    rows = read_rows(dataset, "train", 8)
    tiny = Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"
    config = load_config(tiny, [f"data.path={dataset}", "train.look_steps=0", "data.look_mix=0.5"])
    task, look = training_datasets(config, rows, processor)
    assert len(task) == 12 and len(look) == 8
    items = [task[i] for i in range(len(task))]
    assert all(item["gt_masks"] for item in items[:8])  # the rows themselves, with their masks
    assert all(item["gt_masks"] == [] for item in items[8:])  # look samples: no [SEG], no masks
    question = tokenizer.decode([i for i in items[8]["input_ids"] if i >= 0])
    assert LOOK_QUESTION in question
    without_mix = load_config(tiny, [f"data.path={dataset}", "train.look_steps=0", "data.look_mix=0"])
    plain, none = training_datasets(without_mix, rows, processor)
    assert len(plain) == 8 and none is None
