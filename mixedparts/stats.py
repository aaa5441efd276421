"""Dataset statistics: counts per split x source x task, masks and images per sample, frequent labels,
and a histogram picture. Computed with pyarrow over the shards (masks are never decoded; for a local
folder only the label, kind and category fields are read)."""

from __future__ import annotations

import os
from collections import Counter, defaultdict

import numpy as np

from mixedparts.schema import SOURCES, SPLITS, TASKS

COLUMNS_LOCAL = ["split", "source", "task", "images.list.element.width", "objects.list.element.category",
                 "segments.list.element.label", "segments.list.element.kind"]
COLUMNS_HUB = ["split", "source", "task", "images", "objects", "segments"]


def _grouped_counts(table, keys: list[str]) -> list[tuple]:
    grouped = table.group_by(keys).aggregate([([], "count_all")])
    columns = [grouped[k].to_pylist() for k in keys] + [grouped["count_all"].to_pylist()]
    return list(zip(*columns))


def compute_stats(path: str | os.PathLike | None, splits: list[str] | None = None, top: int = 20) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    from mixedparts.loader import iter_tables, resolve
    from pathlib import Path

    where = resolve(path)
    columns = COLUMNS_LOCAL if isinstance(where, Path) else COLUMNS_HUB
    counts: dict = defaultdict(lambda: defaultdict(Counter))  # split -> source -> task -> n
    masks_hist: dict = defaultdict(Counter)  # task -> masks per sample -> samples
    images_hist: Counter = Counter()
    labels: dict = defaultdict(Counter)  # kind -> label -> segments
    categories: Counter = Counter()
    for table in iter_tables(path, splits, columns):
        if table.num_rows == 0:
            continue
        keys = ["split", "source", "task"]
        for split, source, task, n in _grouped_counts(table.select(keys), keys):
            counts[split][source][task] += n
        shape = pa.table({"task": table["task"], "masks": pc.list_value_length(table["segments"]),
                          "images": pc.list_value_length(table["images"])})
        for task, masks, n in _grouped_counts(shape, ["task", "masks"]):
            masks_hist[task][int(masks)] += n
        for images, n in _grouped_counts(shape, ["images"]):
            images_hist[int(images)] += n
        segments = pc.list_flatten(table["segments"])
        pairs = pa.table({"kind": pc.struct_field(segments, "kind"), "label": pc.struct_field(segments, "label")})
        for kind, label, n in _grouped_counts(pairs, ["kind", "label"]):
            labels[kind][label] += n
        objects = pc.list_flatten(table["objects"])
        for category, n in _grouped_counts(pa.table({"category": pc.struct_field(objects, "category")}), ["category"]):
            categories[category] += n

    def ordered(keys, known):
        return [k for k in known if k in keys] + sorted(set(keys) - set(known))

    split_names = ordered(counts, SPLITS)
    per_split = {s: {src: {t: counts[s][src][t] for t in ordered(counts[s][src], TASKS)}
                     for src in ordered(counts[s], SOURCES)} for s in split_names}
    masks = {}
    for task in ordered(masks_hist, TASKS):
        hist = masks_hist[task]
        values = np.array(sorted(hist), dtype=np.int64)
        weights = np.array([hist[v] for v in values], dtype=np.int64)
        cumulative = np.cumsum(weights)
        masks[task] = {"samples": int(weights.sum()), "min": int(values.min()), "max": int(values.max()),
                       "mean": float((values * weights).sum() / weights.sum()),
                       "median": int(values[np.searchsorted(cumulative, (weights.sum() + 1) // 2)]),
                       "histogram": {int(v): int(w) for v, w in zip(values, weights)}}
    part_labels = Counter()
    for kind, counter in labels.items():
        if kind != "object":
            part_labels.update(counter)
    return {
        "dataset": str(where),
        "samples": {s: sum(n for src in per_split[s].values() for n in src.values()) for s in split_names},
        "counts": per_split,
        "masks_per_sample": masks,
        "images_per_sample": {int(k): int(v) for k, v in sorted(images_hist.items())},
        "segments_per_kind": {kind: int(sum(c.values())) for kind, c in sorted(labels.items())},
        "distinct_labels": {kind: len(c) for kind, c in sorted(labels.items())},
        "top_object_labels": labels["object"].most_common(top),
        "top_part_labels": part_labels.most_common(top),
        "top_categories": categories.most_common(top),
    }


def format_stats(stats: dict) -> str:
    """The human-readable report."""
    lines = [f"MixedParts statistics of {stats['dataset']}", ""]
    splits = list(stats["counts"])
    header = f"{'source':16s} {'task':14s} " + " ".join(f"{s:>10s}" for s in splits)
    lines += [header, "-" * len(header)]
    pairs = []
    for s in splits:
        for source, tasks in stats["counts"][s].items():
            for task in tasks:
                if (source, task) not in pairs:
                    pairs.append((source, task))
    pairs.sort(key=lambda p: (SOURCES.index(p[0]) if p[0] in SOURCES else 99,
                              TASKS.index(p[1]) if p[1] in TASKS else 99))
    for source, task in pairs:
        lines.append(f"{source:16s} {task:14s} " + " ".join(
            f"{stats['counts'][s].get(source, {}).get(task, 0):>10,}" for s in splits))
    lines.append(f"{'all':16s} {'':14s} " + " ".join(f"{stats['samples'][s]:>10,}" for s in splits))
    lines += ["", "masks per sample:"]
    for task, m in stats["masks_per_sample"].items():
        lines.append(f"  {task:14s} mean {m['mean']:5.2f}  median {m['median']:3d}  min {m['min']:3d}  "
                     f"max {m['max']:3d}"
                     f"  ({m['samples']:,} samples)")
    lines.append("images per sample: " + ", ".join(f"{k}: {v:,}" for k, v in stats["images_per_sample"].items()))
    lines.append("segments: " + ", ".join(f"{k} {v:,} ({stats['distinct_labels'][k]} labels)"
                                          for k, v in stats["segments_per_kind"].items()))
    for title, key in (("most frequent object labels", "top_object_labels"),
                       ("most frequent part labels", "top_part_labels")):
        lines += ["", f"{title} (segments):"]
        items = stats[key]
        for i in range(0, len(items), 4):
            lines.append("  " + "  ".join(f"{label[:18]:18s} {n:>8,}" for label, n in items[i:i + 4]))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- the picture

TASK_COLOURS = {"common_object": (0, 130, 200), "common_parts": (60, 180, 75), "unique_parts": (230, 25, 75)}


def draw_histograms(stats: dict, width: int = 1100):
    """Masks-per-sample histogram (bars per task) and the most frequent part and object labels."""
    from PIL import Image, ImageDraw, ImageFont

    font, small, bold = (ImageFont.load_default(size=s) for s in (14, 12, 17))
    margin, panel_height = 60, 300
    label_rows = max(len(stats["top_part_labels"]), len(stats["top_object_labels"]), 1)
    bar_height = 18
    height = margin + panel_height + 100 + label_rows * bar_height + 30
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    total = sum(stats["samples"].values())
    draw.text((margin, 15), f"MixedParts: {total:,} samples ("
              + ", ".join(f"{s} {n:,}" for s, n in stats["samples"].items()) + ")", fill=(0, 0, 0), font=bold)

    # Panel 1: masks per sample, grouped bars per task, share of the task's samples.
    histograms = stats["masks_per_sample"]
    top = margin + 10
    left, right, bottom = margin + 10, width - margin, top + panel_height
    draw.text((margin, top - 22), "masks per sample (share of each task's samples)", fill=(0, 0, 0), font=font)
    values = sorted({int(v) for h in histograms.values() for v in h["histogram"]})
    if values:
        xs = list(range(min(values), max(values) + 1))
        shares = {t: {int(v): n / h["samples"] for v, n in h["histogram"].items()} for t, h in histograms.items()}
        peak = max(max(s.values()) for s in shares.values())
        slot = (right - left) / len(xs)
        bar = max(1.0, slot * 0.8 / max(1, len(histograms)))
        draw.line((left, bottom, right, bottom), fill=(0, 0, 0))
        for step in range(0, 5):
            y = bottom - (bottom - top) * step / 4
            draw.line((left - 4, y, left, y), fill=(0, 0, 0))
            draw.text((4, y - 7), f"{peak * step / 4:.0%}", fill=(60, 60, 60), font=small)
        for i, x in enumerate(xs):
            x0 = left + i * slot + slot * 0.1
            for j, task in enumerate(histograms):
                share = shares[task].get(x, 0.0)
                y = bottom - (bottom - top) * share / peak
                colour = TASK_COLOURS.get(task, (120, 120, 120))
                if share:
                    draw.rectangle((x0 + j * bar, y, x0 + (j + 1) * bar - 1, bottom), fill=colour)
            if len(xs) <= 40 or i % max(1, len(xs) // 20) == 0:
                draw.text((left + i * slot + slot / 2 - 4, bottom + 4), str(x), fill=(0, 0, 0), font=small)
        legend_x = left
        for task in histograms:
            draw.rectangle((legend_x, bottom + 26, legend_x + 12, bottom + 38), fill=TASK_COLOURS.get(task, (120,) * 3))
            text = f"{task} (mean {histograms[task]['mean']:.1f})"
            draw.text((legend_x + 16, bottom + 24), text, fill=(0, 0, 0), font=font)
            legend_x += 30 + int(draw.textlength(text, font=font))

    # Panels 2 and 3: most frequent part labels and object labels, horizontal bars.
    y0 = bottom + 70
    half = (width - 2 * margin) // 2
    for column, (title, key, colour) in enumerate((("most frequent part labels (segments)", "top_part_labels",
                                                    (60, 180, 75)),
                                                   ("most frequent object labels (segments)", "top_object_labels",
                                                    (0, 130, 200)))):
        x_left = margin + column * half
        draw.text((x_left, y0), title, fill=(0, 0, 0), font=font)
        items = stats[key]
        if not items:
            continue
        most = max(n for _, n in items)
        name_width = 170
        span = half - name_width - 80
        for i, (label, n) in enumerate(items):
            y = y0 + 24 + i * bar_height
            draw.text((x_left, y), label if len(label) <= 26 else label[:24] + "..", fill=(0, 0, 0), font=small)
            length = max(1, int(span * n / most))
            draw.rectangle((x_left + name_width, y + 2, x_left + name_width + length, y + bar_height - 4), fill=colour)
            draw.text((x_left + name_width + length + 4, y), f"{n:,}", fill=(60, 60, 60), font=small)
    return canvas
