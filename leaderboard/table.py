"""The leaderboard table: rows for one view (the macro mean or one task), sorted, and its text formats.

The JSON API returns :func:`build_table`'s dict; ``mixedparts-leaderboard table`` formats that same
dict as Markdown, CSV or JSON, so what a paper's README embeds is exactly what the server shows.

The table's rules:

- By default each team shows its best submission per model name (best by the view's mIoU, then
  AP50, then the earliest), with how many submissions it was chosen from; ``best_per_model=False``
  lists every submission. The paper's rows are never filtered.
- Rows whose scores are equal on the sort key share a rank (1, 2, 2, 4); rows without a value for
  it come last and share the last rank.
- A submission whose file (SHA-256) was already scored for an earlier submission carries
  ``duplicate_of``, that earlier submission's id, whichever team posted it.
"""

from __future__ import annotations

import csv
import io
import json
import math

from leaderboard.paper import PAPER_NOTE, paper_rows
from mixedparts.schema import MEAN, METRICS, TASKS

TASK_VIEWS = (MEAN, *TASKS)
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
                include_paper: bool = True, ground_truth: dict | None = None, best_per_model: bool = True) -> dict:
    """The table for one view: each team's best submission per model (or, with ``best_per_model=False``,
    every scored submission), plus the paper's rows that have this view. ``submissions`` in id order."""
    check_view(task, sort, order)
    default = default_variant()
    first_with_file: dict[str, int] = {}
    duplicate_of: dict[int, int] = {}
    for source in submissions:
        digest, submission_id = source.get("sha256"), source.get("id")
        if digest and submission_id is not None:
            if digest in first_with_file:
                duplicate_of[submission_id] = first_with_file[digest]
            else:
                first_with_file[digest] = submission_id
    chosen = [s for s in submissions if s["scores"].get(task)]
    group_sizes: dict[tuple, int] = {}
    if best_per_model:
        chosen, group_sizes = _best_per_model(chosen, task)
    rows = []
    for source in [*chosen, *(paper_rows() if include_paper else [])]:
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
            "sha256": None if paper else source.get("sha256"),
            "duplicate_of": None if paper else duplicate_of.get(source.get("id")),
            "submissions": None if paper else group_sizes.get(_model_key(source), 1),
        })
    sort_rows(rows, sort, order)
    assign_ranks(rows, sort)
    return {"format": TABLE_FORMAT, "task": task, "task_title": TASK_TITLES[task], "sort": sort, "order": order,
            "metrics": list(METRICS), "scale": "percent", "paper_note": PAPER_NOTE,
            "view": "best per team and model" if best_per_model else "all submissions",
            "ground_truth": ground_truth, "rows": rows}


def _model_key(source: dict) -> tuple:
    from leaderboard.store import name_key

    return source["team"], name_key(source["model"])


def _best_per_model(submissions: list[dict], task: str) -> tuple[list[dict], dict[tuple, int]]:
    """Each (team, model name) group's best submission on ``task``, and each group's size."""
    def merit(source):
        scores = source["scores"][task]
        return tuple(-(_number(scores.get(m)) if _number(scores.get(m)) is not None else -math.inf)
                     for m in ("mIoU", "AP50")) + (source.get("id") or 0,)

    best: dict[tuple, dict] = {}
    sizes: dict[tuple, int] = {}
    for source in submissions:
        key = _model_key(source)
        sizes[key] = sizes.get(key, 0) + 1
        if key not in best or merit(source) < merit(best[key]):
            best[key] = source
    kept = {id(source) for source in best.values()}
    return [s for s in submissions if id(s) in kept], sizes


def assign_ranks(rows: list[dict], key: str) -> None:
    """Competition ranking of rows already sorted by ``key``: equal values share a rank (1, 2, 2, 4)."""
    def comparable(row):
        value = row.get(key)
        if value is None:
            return None
        return round(float(value), 9) if key in METRICS else str(value).casefold()

    for index, row in enumerate(rows):
        same = index > 0 and comparable(row) == comparable(rows[index - 1])
        row["rank"] = rows[index - 1]["rank"] if same else index + 1


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
        if row.get("duplicate_of"):
            name += f" (same file as #{int(row['duplicate_of'])})"
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
    writer.writerow(["rank", "kind", "model", "team", *metrics, "samples", "variant", "date", "url", "note",
                     "duplicate_of"])
    for row in table["rows"]:
        writer.writerow([row["rank"], row["kind"], _csv_text(row["model"]), _csv_text(row["team"]),
                         *["" if row[m] is None else f"{row[m]:.2f}" for m in metrics],
                         "" if row.get("samples") is None else row["samples"], _csv_text(row["variant"]),
                         row["date"], _csv_text(row.get("url")), row.get("note") or "",
                         row.get("duplicate_of") or ""])
    return out.getvalue()
