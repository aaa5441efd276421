"""The leaderboard table: rows for one view (the macro mean or one task), sorted, and its text formats.

The JSON API returns :func:`build_table`'s dict; ``mixedparts-leaderboard table`` formats that same
dict as Markdown, CSV or JSON, so what a paper's README embeds is exactly what the server shows.
"""

from __future__ import annotations

import csv
import io
import json
import math

from leaderboard.paper import PAPER_NOTE, paper_rows

METRICS = ("AP50", "mIoU", "Recall", "SS", "S-IoU")
TASK_VIEWS = ("mean", "common_object", "common_parts", "unique_parts")
TASK_TITLES = {"mean": "mean of the three tasks", "common_object": "common object",
               "common_parts": "common parts", "unique_parts": "unique parts"}
SORT_KEYS = (*METRICS, "model", "team", "date")
DEFAULT_SORT = "mIoU"
FORMATS = ("markdown", "csv", "json")
TABLE_FORMAT = "mixedparts-leaderboard-table/1"


def default_variant() -> dict:
    from mixedparts.metrics.options import EvalOptions

    return EvalOptions().variant()


def variant_label(variant: dict, paper: bool = False) -> str:
    if paper:
        return "unknown"
    if not variant:
        return "unknown"
    default = default_variant()
    changed = [f"{key.split('_', 1)[0]} {value}" for key, value in variant.items() if default.get(key) != value]
    return "default" if not changed else "; ".join(changed)


def check_view(task: str, sort: str, order: str) -> None:
    from leaderboard.store import StoreError

    if task not in TASK_VIEWS:
        raise StoreError(f"unknown task view {task!r}; expected one of {', '.join(TASK_VIEWS)}")
    if sort not in SORT_KEYS:
        raise StoreError(f"unknown sort key {sort!r}; expected one of {', '.join(SORT_KEYS)}")
    if order not in ("asc", "desc"):
        raise StoreError(f"unknown order {order!r}; expected asc or desc")


def build_table(submissions: list[dict], task: str = "mean", sort: str = DEFAULT_SORT, order: str = "desc",
                include_paper: bool = True, ground_truth: dict | None = None) -> dict:
    """The table for one view: one row per scored submission (plus the paper's rows that have this view)."""
    check_view(task, sort, order)
    default = default_variant()
    rows = []
    for source in [*submissions, *(paper_rows() if include_paper else [])]:
        scores = source["scores"].get(task)
        if not scores:
            continue
        paper = bool(source.get("paper"))
        rows.append({
            "kind": "paper" if paper else "submission",
            "id": source.get("id"),
            "model": source["model"],
            "team": source["team"],
            "url": source.get("url"),
            **{metric: _number(scores.get(metric)) for metric in METRICS},
            "samples": scores.get("samples"),
            "variant": variant_label(source.get("variant") or {}, paper),
            "variant_flags": None if paper else (source.get("variant") or None),
            "default_variant": (not paper) and (source.get("variant") or {}) == default,
            "date": source.get("date", ""),
            "note": source.get("note") or (None if not paper else PAPER_NOTE),
        })
    sort_rows(rows, sort, order)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {"format": TABLE_FORMAT, "task": task, "task_title": TASK_TITLES[task], "sort": sort, "order": order,
            "metrics": list(METRICS), "scale": "percent", "paper_note": PAPER_NOTE,
            "ground_truth": ground_truth, "rows": rows}


def sort_rows(rows: list[dict], key: str, order: str) -> None:
    """Sort in place; missing values last in either order, ties broken by submission order."""
    numeric = key in METRICS
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]

    def value(row):
        v = row[key]
        return v if numeric else str(v).casefold()

    present.sort(key=value, reverse=order == "desc")
    rows[:] = present + missing


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _cell(value) -> str:
    return "–" if value is None else f"{value:.1f}"


# ---------------------------------------------------------------- text formats


def format_table(table: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(table, indent=1, allow_nan=False) + "\n"
    if fmt == "csv":
        return to_csv(table)
    if fmt == "markdown":
        return to_markdown(table)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def _markdown_text(text: str) -> str:
    """Plain text inside a Markdown table cell: no HTML, no links, no column breaks."""
    text = text.replace("\\", "\\\\")
    for char in "|[]*_`<>#!":
        text = text.replace(char, "\\" + char)
    return text.replace("&", "&amp;")


def to_markdown(table: dict) -> str:
    metrics = table["metrics"]
    header = ["#", "Model", "Team", *metrics, "Variant", "Date"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:", "---", "---", *["---:"] * len(metrics),
                                                                "---", "---"]) + "|"]
    paper = False
    for row in table["rows"]:
        name = _markdown_text(row["model"])
        if row.get("url"):
            name = f"[{name}](<{row['url'].replace('>', '%3E').replace('<', '%3C')}>)"
        if row["kind"] == "paper":
            name += " †"
            paper = True
        cells = [str(row["rank"]), name, _markdown_text(row["team"]), *[_cell(row[m]) for m in metrics],
                 _markdown_text(row["variant"]), _markdown_text(row["date"] or "")]
        lines.append("| " + " | ".join(cells) + " |")
    title = f"MixedParts leaderboard — {table.get('task_title', table['task'])}, percent"
    out = [title, "", *lines]
    if paper:
        out += ["", f"† {table.get('paper_note', PAPER_NOTE)}."]
    return "\n".join(out) + "\n"


def _csv_text(value) -> str:
    """Text that a spreadsheet will not read as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(table: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    metrics = table["metrics"]
    writer.writerow(["rank", "kind", "model", "team", *metrics, "samples", "variant", "date", "url", "note"])
    for row in table["rows"]:
        writer.writerow([row["rank"], row["kind"], _csv_text(row["model"]), _csv_text(row["team"]),
                         *["" if row[m] is None else f"{row[m]:.2f}" for m in metrics],
                         "" if row.get("samples") is None else row["samples"], _csv_text(row["variant"]),
                         row["date"], _csv_text(row.get("url")), row.get("note") or ""])
    return out.getvalue()
