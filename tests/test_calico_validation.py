"""calico-train's validation pass and curves: teacher-forced scores, metrics.jsonl, --plot; the tiny preset learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from calico_baseline.curves import MetricsLog, plot_run, read_metrics
from calico_baseline.validation import evaluating, fixed_subset, mask_ious, phrase_spans, text_scores

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

OPEN, CLOSE, SEG = 5, 6, 7


def test_text_scores_count_phrases_only_when_every_token_is_right():
    # answer: <p> 10 11 </p> [SEG] <p> 12 </p> [SEG]; prompt positions are -100
    labels = torch.tensor([[-100, -100, OPEN, 10, 11, CLOSE, SEG, OPEN, 12, CLOSE, SEG]])
    assert phrase_spans(labels[0].tolist(), OPEN, CLOSE) == [(3, 5), (8, 9)]
    logits = torch.full((1, 11, 20), -1.0)
    for position in range(1, 11):  # the model predicts token p at p-1: all right ...
        logits[0, position - 1, labels[0, position].clamp(min=0)] = 1.0
    assert text_scores(logits, labels, OPEN, CLOSE) == (9, 9, 2, 2)
    logits[0, 3, 11] = -5.0  # ... but token 11 (inside the first phrase) now wrong
    logits[0, 3, 13] = 2.0
    assert text_scores(logits, labels, OPEN, CLOSE) == (8, 9, 1, 2)


def test_mask_ious():
    truth = torch.zeros(4, 4)
    truth[:2] = 1
    perfect, half, empty = truth * 20 - 10, torch.full((4, 4), -1.0), torch.full((4, 4), -1.0)
    half[0] = 1.0
    assert mask_ious([[perfect, half]], [[truth, truth]]) == [1.0, 0.5]
    assert mask_ious([[empty]], [[torch.zeros(4, 4)]]) == [1.0]


def test_fixed_subset_is_seeded_and_ordered():
    rows = [{"i": i} for i in range(100)]
    a, b = fixed_subset(rows, 10, seed=3), fixed_subset(rows, 10, seed=3)
    assert a == b and len(a) == 10 and [r["i"] for r in a] == sorted(r["i"] for r in a)
    assert fixed_subset(rows, 10, seed=4) != a and fixed_subset(rows, 500) == rows


def test_evaluating_restores_each_module_mode():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model.train()
    model[0].eval()  # a frozen part kept in eval mode during training
    with evaluating(model):
        assert not model.training and not model[1].training and not torch.is_grad_enabled()
    assert model.training and model[1].training and not model[0].training


def test_metrics_log_resume_and_plot(tmp_path):
    log = MetricsLog(tmp_path)
    for step in (0, 10, 20):
        log.write("train", step, {"loss": 3.0 - step / 10, "ce_loss": 2.0, "mask_loss": 0.5, "dice_loss": 0.5})
        log.write("val", step, {"loss": 3.1, "mask_iou": step / 40, "label_accuracy": step / 30,
                                "token_accuracy": 0.5})
    MetricsLog(tmp_path, resume_step=10)  # resuming at step 10 drops the lines of step 20
    assert [(r["step"], r["phase"]) for r in read_metrics(tmp_path)] == [(0, "train"), (0, "val"), (10, "train"),
                                                                        (10, "val")]
    picture = plot_run(tmp_path)
    assert picture == tmp_path / "curves.png" and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="'step' and 'phase'"):
        read_metrics(tmp_path)


def test_plot_command_and_its_errors(tmp_path, capsys):
    from calico_baseline import train

    assert train.main(["--plot", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    MetricsLog(tmp_path).write("val", 0, {"mask_iou": 0.1})
    out = tmp_path / "curve.png"
    assert train.main(["--plot", str(tmp_path), "--plot-out", str(out)]) == 0
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def four_samples(build_tiny, tmp_path_factory):
    from mixedparts.build.options import BuildOptions

    return build_tiny(tmp_path_factory.mktemp("calico-learns") / "dataset", BuildOptions(max_samples_per_split=4))


@pytest.mark.slow
def test_tiny_config_learns_what_it_is_shown(four_samples, tmp_path):
    """configs/calico-tiny.yaml, briefly, on four samples that are also its validation subset: the
    validation pass and metrics.jsonl see the untrained model's chance-level masks and text turn into
    real ones: the mask path can fit what it is shown (held out: the next test)."""
    from calico_baseline import train

    steps = 100
    config = Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"
    assert train.main(["--config", str(config), "--set", f"data.path={four_samples}", "--set", "data.split=val",
                       "--set", f"train.output_dir={tmp_path}", "--set", f"train.max_steps={steps}",
                       "--set", "train.val_every=50", "--set", "train.warmup_steps=10", "--set", "train.batch_size=4",
                       "--set", "data.val_samples=4", "--set", "train.save_every=1000", "--set", "train.progress=false",
                       "--set", "train.tensorboard=false",
                       "--set", "train.threads=1",
                       "--set", "train.look_steps=0"]) == 0  # what the task alone fits; the look stage: next test
    val = {r["step"]: r for r in read_metrics(tmp_path) if r["phase"] == "val"}
    assert sorted(val) == [0, 50, steps]
    # measured (seeded, one thread): mask IoU 0.052 -> 0.306 (step 50) -> 0.397, tokens 0.00 -> 1.00,
    # labels 0.00 -> 1.00, loss 10.92 -> 2.31 (round three's config, std-0.02 initialisation and the full-size mask
    # loss: mask IoU 0.061 -> 0.502; the config before it, BCE 2 + Dice 2 at one learning rate: 0.114 -> 0.227)
    assert val[steps]["mask_iou"] >= val[0]["mask_iou"] + 0.3, json.dumps(val)
    assert val[steps]["token_accuracy"] >= 0.8 and val[0]["token_accuracy"] < 0.1, json.dumps(val)
    assert val[steps]["label_accuracy"] >= 0.5 > val[0]["label_accuracy"], json.dumps(val)
    assert val[steps]["loss"] < 0.3 * val[0]["loss"]


def test_mask_scores_report_the_trivial_baselines_beside_the_iou():
    from calico_baseline.validation import box_of, mask_scores

    truth = torch.zeros(4, 4)
    truth[1:3, 1] = 1  # 2 pixels in a 2×1 box
    truth[1, 2] = 1  # now 3 pixels in a 2×2 box
    all_on = torch.full((4, 4), 3.0)
    [row] = mask_scores([[all_on]], [[truth]])
    # a predictor that switches everything on scores exactly the mask's share of the image: the untrained
    # decoder's step-0 value, so the curve's "above step 0" has to mean "above this line"
    assert row == {"iou": 3 / 16, "all_on_iou": 3 / 16, "box_iou": 3 / 4, "pred_area": 1.0, "gt_area": 3 / 16}
    assert box_of(torch.zeros(3, 3, dtype=torch.bool)).sum() == 0
    [empty] = mask_scores([[-all_on]], [[truth]])
    assert empty["iou"] == 0.0 and empty["pred_area"] == 0.0


def test_parameter_groups_scale_the_named_modules_and_reject_unknown_ones():
    from calico_baseline.train import parameter_groups
    from mixedparts.errors import MixedPartsError

    model = torch.nn.ModuleDict({"decoder": torch.nn.Linear(2, 2), "head": torch.nn.Linear(2, 2),
                                 "frozen": torch.nn.Linear(2, 2)})
    model["frozen"].requires_grad_(False)
    groups = parameter_groups(model, 1e-3, {"decoder": 5, "decoder.bias": 2})
    assert [(g["lr"], len(g["params"])) for g in groups] == [(1e-3, 2), (5e-3, 1), (2e-3, 1)]
    assert groups[2]["params"][0] is model["decoder"].bias  # the longest matching path wins
    assert [len(g["params"]) for g in parameter_groups(model, 1e-3, {})] == [4]
    assert [len(g["params"]) for g in parameter_groups(model, 1e-3, {"frozen": 2})] == [4]  # frozen: no effect
    for bad in ("dec", "decoder.weights"):
        with pytest.raises(MixedPartsError, match="names no parameters"):
            parameter_groups(model, 1e-3, {bad: 2})
    with pytest.raises(MixedPartsError, match="is not a number"):
        parameter_groups(model, 1e-3, {"decoder:5": None})  # YAML's reading of `{decoder:5}`


@pytest.fixture(scope="module")
def demo_dataset(build_tiny, tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("calico-held-out") / "dataset")


@pytest.mark.slow
def test_tiny_config_masks_improve_on_held_out_images(demo_dataset, tmp_path):
    """configs/calico-tiny.yaml, briefly, on the demo's train split, scored on its val split (other images):
    the held-out mask IoU climbs well above the untrained model's and above the all-pixels-on line."""
    from calico_baseline import train

    steps = HELD_OUT_STEPS
    config = Path(__file__).parents[1] / "configs" / "calico-tiny.yaml"
    look = train.load_config(config)["train"]["look_steps"]  # the config's look stage runs first, as it is
    assert train.main(["--config", str(config), "--set", f"data.path={demo_dataset}",
                       "--set", f"train.output_dir={tmp_path}", "--set", f"train.max_steps={steps}",
                       "--set", f"train.val_every={look + steps // 2}", "--set", "train.warmup_steps=10",
                       "--set", "data.val_samples=16", "--set", "data.train_eval_samples=0",
                       "--set", "train.save_every=1000", "--set", "train.progress=false",
                       "--set", "train.tensorboard=false", "--set", "train.threads=1"]) == 0
    val = {r["step"]: r for r in read_metrics(tmp_path) if r["phase"] == "val"}
    assert sorted(val) == sorted({0, look, look + steps // 2, look + steps})
    # measured (seeded, one thread): see HELD_OUT_STEPS. The untrained decoder's share of pixels on depends on
    # the initialisation, so the bar is the higher of its IoU and the all-pixels-on line; the look stage trains
    # no mask, so it is measured from the start of the task
    start = max(val[0]["mask_iou"], val[look]["mask_iou"], val[0]["all_on_iou"])
    assert val[look + steps]["mask_iou"] >= start + 0.025, json.dumps(val)
    assert val[look + steps]["pred_area"] < 0.5, json.dumps(val)  # not by switching everything on


# measured with the config's look stage (450 steps) first (seed 0, one thread, about 200 CPU-s): held-out mask IoU
# 0.121 (all pixels on: 0.121) -> 0.158 (task step 120) -> 0.148 (task step 240), pred_area 1.00 -> 0.18. With
# train.seed 1 and 2 (other initialisations and val subsets): +0.041 and +0.032 over the line, so the bar +0.025
# holds for the three seeds, with 0.002 to spare for seed 0. The config before the look stage (round three's) gave
# 0.159 here; 120 task steps were too few for it (docs/model.md)
HELD_OUT_STEPS = 240


def test_zero_val_samples_means_no_validation_pass_not_a_line_of_zeros():
    from calico_baseline.validation import validator_for

    said = []
    config = {"data": {"path": "never-read", "val_split": "val", "val_samples": 0}, "train": {"seed": 0}}
    assert validator_for(config, processor=None, say=said.append) is None
    assert said == ["no validation: data.val_samples is 0"]
