"""benchmarks/calico_image_use.py: the image swaps and the oracle's label-accuracy line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import calico_image_use  # noqa: E402


def test_shuffled_images_belong_to_another_sample_and_blank_ones_are_zero():
    views = torch.arange(4.0)[:, None, None, None].expand(4, 3, 2, 2).clone()  # image n is filled with n
    batch = {"clip_pixels": views, "dino_pixels": views + 10, "sam_pixels": views,
             "image_sample": torch.tensor([0, 0, 1, 1])}
    shuffled = calico_image_use.altered(batch, "shuffled")
    assert shuffled["clip_pixels"][:, 0, 0, 0].tolist() == [2, 3, 0, 1]  # sample 0 sees sample 1's two images
    assert shuffled["dino_pixels"][:, 0, 0, 0].tolist() == [12, 13, 10, 11]
    assert shuffled["sam_pixels"] is views  # the mask path is not what is being tested
    blank = calico_image_use.altered(batch, "blank")
    assert not blank["clip_pixels"].any() and not blank["dino_pixels"].any()
    assert calico_image_use.altered(batch, "real")["clip_pixels"] is views


def test_oracle_knows_the_labels_but_not_their_order_or_the_random_article():
    from mixedparts.build import language
    from mixedparts.build.language import Label

    rng = np.random.default_rng(0)  # the builder's own sentences (its random choices do not change the oracle)
    common_object = {"task": "common_object", "images": [{}, {}], "objects": [{"category": "lamp"}] * 2,
                     "answer": language.common_object_answer("lamp", 2, rng)[0]}
    parts = [Label("seat", "common_part", (0, 1)), Label("leg", "common_part", (0, 1))]
    common_parts = {"task": "common_parts", "images": [{}, {}], "objects": [{"category": "stool"}] * 2,
                    "answer": language.object_sentence(["stool", "stool"], rng)[0] + " "
                              + language.parts_sentence(parts, "common_part", rng)}
    unique_part = {"task": "unique_parts", "images": [{}, {}],
                   "objects": [{"category": "armchair"}, {"category": "stool"}],
                   "answer": language.object_sentence(["armchair", "stool"], rng)[0] + " "
                             + language.parts_sentence([Label("arm", "unique_part", (0,))], "unique_part", rng)}
    oracle = calico_image_use.oracle_label_accuracy
    assert oracle([common_object]) == 0.5  # "the" or "a": a coin
    # the object is known; the first of two shuffled parts is a coin twice (which part, which article), the second sure
    assert oracle([common_parts]) == pytest.approx((1 + 0.25 + 1) / 3), common_parts["answer"]
    assert oracle([unique_part]) == 1.0, unique_part["answer"]  # a singular unique part always says "the"
    assert oracle([common_object, common_parts, unique_part]) == pytest.approx((0.5 + 2.25 + 3) / 7)


def test_a_folder_that_is_not_a_checkpoint_is_one_error_line(tmp_path, capsys):
    assert calico_image_use.main([str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err


def test_look_rows_are_the_look_stages_own(tmp_path, capsys):
    from calico_baseline import look

    assert calico_image_use.LOOK_ANSWERS == look.LOOK_ANSWERS  # spelt out there so that --help needs no torch
    assert calico_image_use.main([str(tmp_path), "--data", str(tmp_path), "--look", "parts"]) == 2
    assert "invalid choice" in capsys.readouterr().err
