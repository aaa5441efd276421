"""benchmarks/flops.py's scaled-down latency models keep the sequence lengths of the real configurations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import flops  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_layer_map_keeps_relative_depth():
    assert flops.layer_map([7, 15, 23, 31], 32, 4) == [1, 3, 5, 7]  # SAM ViT-H's global attention, last stays last
    assert flops.layer_map([11, 22], 32, 4) == [2, 4]  # Calico's CAM layers
    assert flops.layer_map([11, 22], 32, 1) == [11, 22]


def test_scaled_down_systems_keep_token_counts_and_shrink_width_and_depth():
    full, small = flops.configs(), flops.configs(16, 4)
    for name in flops.SYSTEMS:
        assert flops.vision_tokens(small[name]) == flops.vision_tokens(full[name])
        assert small[name].vision_config.image_size == full[name].vision_config.image_size
        assert small[name].sam_config["image_size"] == full[name].sam_config["image_size"] == 1024
        assert small[name].text_config.num_hidden_layers == full[name].text_config.num_hidden_layers // 4
        assert small[name].text_config.hidden_size == full[name].text_config.hidden_size // 16
        assert small[name].sam_config["encoder_depth"] == 8
    assert [flops.vision_tokens(full[n]) for n in flops.SYSTEMS] == [32, 576, 256]
    assert small["Calico"].active_cam_layers == [2, 4]


def test_latency_table_runs_and_reports_cpu_ratios(capsys):
    lengths = {"prompt": 20, "answer": 6, "seg": 2.0}
    result = flops.latency_table(lengths, width_divisor=32, depth_divisor=16, repeats=1)
    assert set(result["cpu_latency_s"]) == set(flops.SYSTEMS)
    for base in ("MI-GLaMM", "MI-LISA"):
        assert set(result["cpu_speedup_vs"][base]) == {"with SAM", "without SAM"}
    out = capsys.readouterr().out
    assert "CPU: Calico vs MI-GLaMM" in out and "paper: +51.3% speedup, GPU" in out
