"""HTML of the report: sections as fragments (no script, no style attribute: the leaderboard embeds them
under a strict Content-Security-Policy) and the standalone offline page that wraps them with its own
stylesheet and a small sorting script. Charts are inline SVG drawn here; nothing is fetched.
"""

from __future__ import annotations

import math
from html import escape

from mixedparts.schema import MEAN, METRICS, TASKS
SECTIONS = ("headline", "tasks", "breakdowns", "errors", "confusions", "histograms", "gallery")
ERROR_TITLES = {"missed": "missed GT segment", "label_wrong": "mask right / label wrong",
                "mask_wrong": "label right / mask wrong", "both_wrong": "mask and label wrong",
                "not_counted": "right but not counted by Recall", "empty_answer": "empty answer",
                "correct": "correct", "extra": "extra predicted segment", "wrong_image": "wrong image tag",
                "paired": "paired"}


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def number(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _value_attr(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _table(table_id: str, header: list[tuple[str, str]], rows: list[list[tuple[str, object]]],
           caption: str = "") -> str:
    """``header``: (title, type "text"/"number"); ``rows``: cells (shown HTML, sort value)."""
    head = "".join(f'<th scope="col" data-type="{kind}"{" class=num" if kind == "number" else ""}>{e(title)}</th>'
                   for title, kind in header)
    body = []
    for cells in rows:
        tds = []
        for (shown, value), (_, kind) in zip(cells, header):
            attr = _value_attr(value) if kind == "number" else e(value)
            tds.append(f'<td data-value="{attr}"{" class=num" if kind == "number" else ""}>{shown}</td>')
        body.append(f"<tr>{''.join(tds)}</tr>")
    cap = f'<caption class="muted">{e(caption)}</caption>' if caption else ""
    return (f'<table id="{e(table_id)}" class="sortable">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _ci(evaluation: dict, row: str, metric: str) -> str:
    ci = (evaluation.get("ci95") or {}).get(row, {}).get(metric)
    if not ci:
        return ""
    return f' <span class="ci">[{number(ci[0])}, {number(ci[1])}]</span>'


def headline_section(document: dict) -> str:
    evaluation = document["eval"]
    mean = evaluation["scores"][MEAN]
    cards = "".join(f'<div class="card"><div class="metric">{e(m)}</div><div class="value" data-metric="{e(m)}">'
                    f'{number(mean.get(m))}</div>{_ci(evaluation, MEAN, m)}</div>' for m in METRICS)
    boot = evaluation.get("bootstrap") or {}
    note = (f"[low, high]: 95% bootstrap interval, {boot.get('replicates')} resamplings of the samples within "
            f"each task (seed {boot.get('seed')})." if boot else "No bootstrap interval (run with --bootstrap N).")
    return (f'<section id="headline"><h2>Headline</h2><p class="muted">Unweighted mean of the per-task scores, '
            f'percent. {e(note)}</p><div class="cards">{cards}</div></section>')


def per_task_section(document: dict) -> str:
    evaluation = document["eval"]
    rows = []
    for task, scores in evaluation["scores"].items():
        cells = [(e(task), task), (e(scores.get("samples")), scores.get("samples")),
                 (e(scores.get("units")), scores.get("units"))]
        cells += [(number(scores.get(m)) + _ci(evaluation, task, m), scores.get(m)) for m in METRICS]
        rows.append(cells)
    header = [("task", "text"), ("samples", "number"), ("units", "number"), *[(m, "number") for m in METRICS]]
    return f'<section id="tasks"><h2>Per task</h2>{_table("per-task-table", header, rows)}</section>'


def _extremes(records: list[dict], key: str, name: str) -> str:
    ranked = [r for r in records if r.get("mIoU") is not None]
    if len(ranked) < 2:
        return ""
    ranked.sort(key=lambda r: (r["mIoU"], str(r[key])))
    worst = ", ".join(f"{e(r[key])} ({number(r['mIoU'])})" for r in ranked[:3])
    best = ", ".join(f"{e(r[key])} ({number(r['mIoU'])})" for r in ranked[::-1][:3])
    return f'<p class="extremes">Worst {e(name)} by mIoU: {worst}. Best: {best}.</p>'


def breakdowns_section(document: dict) -> str:
    parts = ['<section id="breakdowns"><h2>Breakdowns</h2><p class="muted">Worst group first (lowest mIoU); '
             'click a column to sort. Groups of source and category are scored exactly as the tasks are '
             '(their rows: the mean over the tasks they appear in).</p>']
    header = [("group", "text"), ("support (units)", "number"), *[(m, "number") for m in METRICS]]
    for name, records in (document["eval"].get("breakdowns") or {}).items():
        means = sorted((r for r in records if r["task"] == MEAN),
                       key=lambda r: (math.inf if r.get("mIoU") is None else r["mIoU"], str(r[name])))
        rows = [[(e(r[name]), r[name]), (e(r["units"]), r["units"]), *[(number(r.get(m)), r.get(m)) for m in METRICS]]
                for r in means]
        parts.append(f'<h3>By {e(name)}</h3>{_extremes(means, name, name)}'
                     f'{_table(f"by-{name}", header, rows)}')
    labels = document.get("by_label")
    if labels is not None:
        ordered = sorted(labels, key=lambda r: (r["mIoU"], r["label"]))
        rows = [[(e(r["label"]), r["label"]), (e(r["support"]), r["support"]),
                 *[(number(r.get(m)), r.get(m)) for m in METRICS]] for r in ordered]
        parts.append('<h3>By part label</h3><p class="muted">Over the GT segments of each part label: support is '
                     'their number; mIoU the mean IoU of their paired masks (0 when unpaired); Recall the share '
                     'counted by Recall; SS and S-IoU over their mIoU pairs. AP50 is class-agnostic: no '
                     f'per-label value.</p>{_extremes(labels, "label", "part labels")}'
                     + _table("by-label", [("label", "text"), ("support (GT segments)", "number"),
                                           *[(m, "number") for m in METRICS]], rows))
    parts.append("</section>")
    return "".join(parts)


def errors_section(document: dict) -> str:
    types = document["error_types"]
    thresholds = document["thresholds"]
    parts = [f'<section id="errors"><h2>Error types</h2><p class="muted">Every GT segment is exactly one of the '
             f'first rows, every predicted segment one of the last; "label right" means the label passes Recall\'s '
             f'text gate (similarity &ge; {number(thresholds["text"], 2)}), "mask right" IoU &ge; '
             f'{number(thresholds["iou"], 2)}.</p>']
    tasks = [t for t in TASKS if t in document["errors"]]
    header = [("error type", "text"), *[(t, "number") for t in tasks], ("what it means", "text")]
    rows = []
    for side, total_key in (("gt", "gt_segments"), ("predicted", "predicted_segments")):
        for key, meaning in types[side].items():
            cells = [(e(ERROR_TITLES.get(key, key)), key)]
            for task in tasks:
                counts = document["errors"][task]
                count, total = counts[side][key], counts[total_key]
                share = f" ({100 * count / total:.0f}%)" if total else ""
                cells.append((f"{count}{share}", count))
            cells.append((e(meaning), meaning))
            rows.append(cells)
    rows.append([("empty answers (samples)", "empty_answers"),
                 *[(f"{document['errors'][t]['empty_answers']} of {document['errors'][t]['samples']}",
                    document["errors"][t]["empty_answers"]) for t in tasks],
                 ("samples whose prediction has no segment", "")])
    parts.append(_table("error-types", header, rows, caption="counts per task (share of the task's GT or "
                                                               "predicted segments)"))
    parts.append("</section>")
    return "".join(parts)


def confusions_section(document: dict) -> str:
    confusions = document.get("confusions")
    if confusions is None:
        return ""
    parts = ['<section id="confusions"><h2>Label confusions</h2><p class="muted">The most frequent (GT label &rarr; '
             'predicted label) among masks paired by mIoU whose normalized labels differ.</p>']
    header = [("GT label", "text"), ("predicted label", "text"), ("pairs", "number"), ("mean IoU", "number"),
              ("similarity", "number"), ("passes the text gate", "text")]
    for task, entries in confusions.items():
        if not entries:
            parts.append(f"<h3>{e(task)}</h3><p class=muted>No confusion.</p>")
            continue
        rows = [[(e(c["gt"]), c["gt"]), (e(c["predicted"]), c["predicted"]), (e(c["count"]), c["count"]),
                 (number(c["mean_iou"], 2), c["mean_iou"]), (number(c["similarity"], 2), c["similarity"]),
                 ("yes" if c["passes_gate"] else "no", "yes" if c["passes_gate"] else "no")] for c in entries]
        parts.append(f"<h3>{e(task)}</h3>{_table(f'confusions-{task}', header, rows)}")
    parts.append("</section>")
    return "".join(parts)


def histogram_svg(title: str, edges: list[float], counts: list[int], extra: tuple[str, int] | None = None,
                  width: int = 460, height: int = 220) -> str:
    """A bar chart as inline SVG (presentation attributes only)."""
    bars = list(counts) + ([extra[1]] if extra else [])
    names = [f"{edges[i]:.1f}" for i in range(len(counts))] + ([extra[0]] if extra else [])
    left, bottom, top = 40, 36, 24
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(bars + [1])
    step = plot_w / len(bars)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
           f'<text x="{left}" y="15" font-size="13" font-family="sans-serif">{e(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#888"/>',
           f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end" font-family="sans-serif">{peak}</text>',
           f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end" font-family="sans-serif">0</text>']
    for i, (value, name) in enumerate(zip(bars, names)):
        h = plot_h * value / peak
        x = left + i * step + 2
        colour = "#999999" if extra and i == len(bars) - 1 else "#3b6fb6"
        out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}" '
                   f'fill="{colour}"><title>{e(name)}: {value}</title></rect>')
        out.append(f'<text x="{x + (step - 4) / 2:.1f}" y="{top + plot_h + 13}" font-size="9" text-anchor="middle" '
                   f'font-family="sans-serif">{e(name)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" font-size="10" text-anchor="middle" '
               f'font-family="sans-serif">bins of width 0.1, labelled by their lower edge</text></svg>')
    return "".join(out)


def histograms_section(document: dict) -> str:
    histograms = document["histograms"]
    iou, ss = histograms["iou"], histograms["ss"]

    def total(counts: dict) -> list[int]:
        return [sum(values) for values in zip(*counts.values())] if counts else [0] * (len(iou["edges"]) - 1)

    charts = [histogram_svg(iou["title"], iou["edges"], total(iou["counts"]),
                            ("unpaired", sum(iou["unpaired"].values()))),
              histogram_svg(ss["title"], ss["edges"], total(ss["counts"]))]
    return (f'<section id="histograms"><h2>Histograms</h2><p class="muted">All tasks together; per-task counts are in '
            f'report.json.</p><div class="charts">{"".join(charts)}</div></section>')


def gallery_section(document: dict) -> str:
    gallery = document.get("gallery") or {}
    worst = document.get("worst") or {}
    if not gallery:
        return ""
    parts = ['<section id="gallery"><h2>Worst samples</h2><p class="muted">Per task, the samples with the lowest '
             'mIoU (then Recall), drawn as <code>mixedparts show --predictions</code> draws them: ground truth, '
             'then the prediction, then each GT segment\'s best IoU.</p>']
    for task, entries in gallery.items():
        parts.append(f"<h3>{e(task)}</h3>")
        numbers = {w["sample_id"]: w for w in worst.get(task, [])}
        for entry in entries:
            sid = entry["sample_id"]
            stats = numbers.get(sid, {})
            outcomes = ", ".join(f"{ERROR_TITLES.get(k, k)} {v}" for k, v in (stats.get("gt_outcomes") or {}).items())
            note = f' <span class="muted">({e(entry["note"])})</span>' if entry.get("note") else ""
            parts.append(f'<figure class="sample" id="sample-{e(sid)}"><a href="{e(entry["image"])}">'
                         f'<img src="{e(entry["image"])}" alt="sample {e(sid)}" loading="lazy"></a>'
                         f'<figcaption><a href="#sample-{e(sid)}"><code>{e(sid)}</code></a> · mIoU '
                         f'{number(stats.get("mIoU"))} · Recall {number(stats.get("Recall"))} · GT segments: '
                         f'{e(outcomes)}{note}<br><span class="muted">redraw: <code>mixedparts show --sample-id '
                         f'{e(sid)} --predictions PREDICTIONS --data DATA</code></span></figcaption></figure>')
    parts.append("</section>")
    return "".join(parts)


def sections(document: dict) -> str:
    """Every section the document has content for, in :data:`SECTIONS` order."""
    return "\n".join(part for part in (headline_section(document), per_task_section(document),
                                       breakdowns_section(document), errors_section(document),
                                       confusions_section(document), histograms_section(document),
                                       gallery_section(document)) if part)


STYLE = """\
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 80rem;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .9rem; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { cursor: pointer; white-space: nowrap; background: #f6f6f6; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: .7em; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: .7em; }
.muted { color: #666; font-size: .85rem; }
.ci { color: #666; font-size: .8em; white-space: nowrap; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: .4rem; padding: .6rem 1rem; min-width: 8rem; }
.card .metric { color: #555; } .card .value { font-size: 1.8rem; font-weight: 600; }
.charts { display: flex; gap: 1.5rem; flex-wrap: wrap; }
figure.sample { margin: 1rem 0 2rem; } figure.sample img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f3f3f3; padding: .05rem .25rem; border-radius: .2rem; }
"""

SCRIPT = """\
(function () {
  "use strict";
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "number";
        var order = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        var rows = Array.prototype.slice.call(table.tBodies[0].rows);
        rows.sort(function (a, b) {
          var x = a.cells[index].getAttribute("data-value"), y = b.cells[index].getAttribute("data-value");
          if (x === "" && y === "") { return 0; } if (x === "") { return 1; } if (y === "") { return -1; }
          var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
          return order === "ascending" ? c : -c;
        });
        rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", order);
      });
    });
  });
})();
"""


def standalone_page(document: dict) -> str:
    """The whole report as one offline HTML file (the gallery's PNGs sit beside it)."""
    evaluation = document["eval"]
    model = evaluation.get("model") or ""
    title = f"MixedParts report: {model or evaluation.get('predictions')}"
    variant = "; ".join(f"{k}: {v}" for k, v in (evaluation.get("variant") or {}).items())
    warnings = "".join(f"<li>{e(w)}</li>" for w in evaluation.get("warnings") or [])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>
{STYLE}</style>
</head>
<body>
<h1>{e(title)}</h1>
<p class="muted">Predictions <code>{e(evaluation.get("predictions"))}</code> on <code>{e(evaluation.get("ground_truth"))}</code>,
split {e(evaluation.get("split"))}. Variant: {e(variant)}. Every score is <code>mixedparts-eval</code>'s own
(report.json holds its full JSON under <code>eval</code>).</p>
{f"<ul class='muted'>{warnings}</ul>" if warnings else ""}
{sections(document)}
<script>
{SCRIPT}</script>
</body>
</html>
"""
