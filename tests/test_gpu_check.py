"""``benchmarks/gpu_check.py`` runs its GPU code path at tiny size on CPU, so it cannot rot before a GPU is lent."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def load_script():
    path = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_the_table_and_one_json_line(capsys):
    gpu_check = load_script()
    assert gpu_check.main(["--size", "tiny", "--device", "cpu", "--steps", "3", "--new-tokens", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["model", "params", "M"]
    assert [line.split()[0] for line in lines[2:5]] == ["Calico", "Multi-Image", "Multi-Image"]
    report = json.loads(lines[-1])
    assert report["benchmark"] == "gpu_check" and report["size"] == "tiny"
    by_model = {r["model"]: r for r in report["results"]}
    assert set(by_model) == {"Calico", "Multi-Image GLaMM", "Multi-Image LISA"}
    for result in by_model.values():
        assert result["new_tokens"] == 5  # EOS is ignored: every model generates the same count
        assert result["prefill_s"] > 0 and result["generate_s"] > result["prefill_s"]
        assert result["peak_inference_gb"] is None  # no CUDA: peak memory is not measured
    calico = by_model["Calico"]
    assert calico["train_steps"] == 3 and calico["step_s"] > 0
    assert calico["loss_first"] == calico["loss_first"] and calico["loss_last"] < calico["loss_first"]
    assert "train_steps" not in by_model["Multi-Image LISA"]


def test_full_size_without_a_gpu_is_a_clear_error(capsys):
    gpu_check = load_script()
    assert gpu_check.main(["--size", "full", "--device", "cpu"]) == 2
    assert "needs a GPU" in capsys.readouterr().err
