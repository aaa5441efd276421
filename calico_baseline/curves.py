"""Training curves of a ``calico-train`` run: ``metrics.jsonl`` (written during training) → one PNG.

Each line of ``RUN/metrics.jsonl`` is one JSON object with ``step`` and ``phase`` (``train``: loss terms
averaged since the previous line; ``val``: the teacher-forced pass of :mod:`calico_baseline.validation`;
``train_subset``: the same pass on fixed training rows, when ``data.train_eval_samples`` asks for it).
``calico-train --plot RUN`` draws them: losses (train and val), mask IoU beside the all-pixels-on and
oracle-box lines, label and token accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
TRAIN_SUBSET = "train_subset"  # the phase of the same pass on fixed training rows (data.train_eval_samples)


class MetricsLog:
    """Appends one JSON line per record to ``RUN/metrics.jsonl``; a fresh run starts the file anew, a resumed
    run drops the lines past the step it resumes from (they belong to the interrupted attempt)."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.is_file():
            kept = [record for record in read_metrics(self.path) if record["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def write(self, phase: str, step: int, values: dict) -> None:
        record = {"step": int(step), "phase": phase, **{k: float(v) for k, v in values.items()}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics file (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict) or "step" not in record or "phase" not in record:
                raise ValueError(f"{path}:{number}: a record needs 'step' and 'phase'")
            records.append(record)
    return records


def series(records: list[dict], phase: str, key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if r["phase"] == phase and key in r]
    return [s for s, _ in points], [v for _, v in points]


def plot_run(run: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Draw the curves of ``run`` (folder or metrics file) to ``out`` (default ``RUN/curves.png``)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a training machine
    import matplotlib.pyplot as plt

    run = Path(run)
    records = read_metrics(run)
    if not records:
        raise ValueError(f"{run}: no metrics recorded yet")
    out = Path(out) if out else (run if run.is_dir() else run.parent) / "curves.png"
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    losses, masks, text = axes
    for key, style in (("loss", "-"), ("ce_loss", "--"), ("mask_loss", ":"), ("dice_loss", "-.")):
        steps, values = series(records, "train", key)
        if steps:
            losses.plot(steps, values, style, color="tab:blue", label=f"train {key}")
        steps, values = series(records, "val", key)
        if steps:
            losses.plot(steps, values, style, color="tab:orange", marker="o", markersize=3, label=f"val {key}")
    losses.set_yscale("log")
    losses.set_title("loss terms")
    for phase, style in (("val", "o-"), (TRAIN_SUBSET, "s--")):
        steps, values = series(records, phase, "mask_iou")
        if steps:
            masks.plot(steps, values, style, color="tab:green", markersize=3, label=f"{phase} mask IoU")
    # the trivial predictor's line: IoU above it is localisation, below it a decoder that is not there yet
    for key, style, name in (("all_on_iou", "--", "all pixels on"), ("box_iou", ":", "oracle box")):
        steps, values = series(records, "val", key)
        if steps:
            masks.plot(steps, values, style, color="grey", label=f"val {name}")
    masks.set_ylim(0, 1)
    masks.set_title("mask IoU (teacher-forced)")
    for key, color in (("label_accuracy", "tab:red"), ("token_accuracy", "tab:purple")):
        for phase, style in (("val", "o-"), (TRAIN_SUBSET, "s--")):
            steps, values = series(records, phase, key)
            if steps:
                text.plot(steps, values, style, color=color, markersize=3, label=f"{phase} {key.replace('_', ' ')}")
    text.set_ylim(0, 1)
    text.set_title("text (teacher-forced)")
    for axis in axes:
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
    for axis, size in ((losses, 6), (masks, 7), (text, 7)):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=size, ncol=2 if axis is losses else 1)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out
