"""The HTML pages: the sortable table, one submission's per-task scores, and error pages.

Every value that comes from a submission (model, team, URL, file name, messages) goes through
:func:`e` (HTML escaping, quotes included); links are only ever http(s) URLs checked at upload. The
pages carry no inline script or style: the server's Content-Security-Policy allows only its own
``/static/`` script and stylesheet, so even a missed escape could not run a script.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from leaderboard.table import METRICS, TASK_TITLES, TASK_VIEWS, default_variant
from mixedparts.schema import MEAN, TASKS

CSS = """\
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { margin-bottom: .2rem; }
.lead { color: #444; margin-top: 0; }
nav.tasks a { margin-right: 1rem; }
nav.tasks a.current { font-weight: bold; text-decoration: none; color: #1a1a1a; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; font-size: .95rem; }
th { white-space: nowrap; }
td.date { white-space: nowrap; }
table.kv { width: auto; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th a { color: inherit; text-decoration: none; }
th[aria-sort="descending"] a::after { content: " \\25BC"; font-size: .7em; }
th[aria-sort="ascending"] a::after { content: " \\25B2"; font-size: .7em; }
tr.paper { background: #f3f0e6; color: #444; font-style: italic; }
.badge { display: inline-block; font-size: .75rem; font-style: normal; background: #8a6d1d; color: #fff;
         border-radius: .25rem; padding: 0 .35rem; margin-left: .3rem; }
.legend .swatch { display: inline-block; width: 1rem; height: .8rem; background: #f3f0e6; border: 1px solid #ccc;
                  vertical-align: middle; }
.muted { color: #666; font-size: .85rem; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
code, pre { background: #f6f6f6; padding: .1rem .3rem; border-radius: .2rem; }
pre { padding: .6rem; overflow-x: auto; }
.error { color: #a00; }
form.upload { display: grid; grid-template-columns: max-content minmax(12rem, 28rem); gap: .4rem .8rem;
              align-items: center; margin: 1rem 0; }
form.upload button { grid-column: 2; justify-self: start; padding: .3rem 1rem; }
#upload-status { grid-column: 1 / span 2; min-height: 1.4em; }
.dup { background: #6b6b6b; }
.ci { color: #666; font-size: .8em; white-space: nowrap; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: .4rem; padding: .5rem .9rem; min-width: 7rem; }
.card .value { font-size: 1.6rem; font-weight: 600; }
.charts { display: flex; gap: 1.5rem; flex-wrap: wrap; }
.below { background: #a33; }
"""

JS = """\
// Sort the leaderboard table by a column, in the page (the header links also work without script).
(function () {
  "use strict";
  var table = document.getElementById("leaderboard");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var headers = table.querySelectorAll("th[data-key]");
  function cellValue(row, index, type) {
    var raw = row.cells[index].getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    return type === "number" ? parseFloat(raw) : raw.toLowerCase();
  }
  function sortBy(th, order) {
    var index = Array.prototype.indexOf.call(th.parentNode.cells, th);
    var type = th.getAttribute("data-type");
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.forEach(function (row, i) { row.setAttribute("data-position", String(i)); });
    rows.sort(function (a, b) {
      var x = cellValue(a, index, type), y = cellValue(b, index, type);
      if (x === null && y === null) { return a.getAttribute("data-position") - b.getAttribute("data-position"); }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      if (order === "desc") { c = -c; }
      return c !== 0 ? c : a.getAttribute("data-position") - b.getAttribute("data-position");
    });
    var previous = null;
    rows.forEach(function (row, i) {
      tbody.appendChild(row);
      // equal values share a rank (1, 2, 2, 4), as the server ranks them
      var value = cellValue(row, index, type);
      var rank = (i > 0 && value === previous) ? rows[i - 1].cells[0].textContent : String(i + 1);
      row.cells[0].textContent = rank;
      row.cells[0].setAttribute("data-value", rank);
      previous = value;
    });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", order === "asc" ? "ascending" : "descending");
    table.setAttribute("data-sort", th.getAttribute("data-key"));
    table.setAttribute("data-order", order);
  }
  headers.forEach(function (th) {
    var link = th.querySelector("a");
    (link || th).addEventListener("click", function (event) {
      event.preventDefault();
      var current = th.getAttribute("aria-sort");
      var order;
      if (current === "descending") { order = "asc"; }
      else if (current === "ascending") { order = "desc"; }
      else { order = th.getAttribute("data-type") === "number" ? "desc" : "asc"; }
      sortBy(th, order);
    });
  });
})();

// The upload form: the token goes in the Authorization header (the server authorises an upload from
// its headers before reading its body), then the submission's status is polled until it is scored.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var status = document.getElementById("upload-status");
  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "muted";
  }
  function poll(url, token, id, note) {
    fetch(url, {headers: {"Authorization": "Bearer " + token}}).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (answer) {
      if (!answer.ok) { say(note + "; error: " + (answer.body.detail || "status check failed"), true); return; }
      var state = answer.body.status;
      if (state === "scored") {
        say(note + "; scored, reloading the table");
        window.setTimeout(function () { window.location.reload(); }, 300);
      } else if (state === "rejected") {
        say(note + "; rejected: " + answer.body.message, true);
      } else {
        say(note + "; " + state + "…");
        window.setTimeout(function () { poll(url, token, id, note); }, 1000);
      }
    }).catch(function (error) { say("error: " + error, true); });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var token = form.elements.token.value.trim();
    if (!token) { say("error: the team token is required", true); return; }
    var data = new FormData();
    data.append("file", form.elements.file.files[0]);
    data.append("model", form.elements.model.value);
    if (form.elements.url.value.trim()) { data.append("url", form.elements.url.value.trim()); }
    say("uploading…");
    fetch(form.getAttribute("action"), {method: "POST", body: data,
                                        headers: {"Authorization": "Bearer " + token}}).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, code: response.status, body: body}; });
    }).then(function (answer) {
      if (!answer.ok) { say("error: HTTP " + answer.code + ": " + (answer.body.detail || "refused"), true); return; }
      var left = answer.body.quota && answer.body.quota.remaining;
      var note = "uploaded as submission " + answer.body.id + (left === null || left === undefined ? "" :
          " (" + left + " left today)");
      say(note + "; waiting for its score…");
      poll(answer.body.status_url, token, answer.body.id, note);
    }).catch(function (error) { say("error: " + error, true); });
  });
})();
"""


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, site_title: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="stylesheet" href="/static/leaderboard.css">
<script src="/static/leaderboard.js" defer></script>
</head>
<body>
<p class="muted"><a href="/">{e(site_title)}</a></p>
{body}
</body>
</html>
"""


def _num(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _query(**params) -> str:
    return "?" + urlencode({k: v for k, v in params.items() if v is not None})


def table_page(table: dict, site_title: str, ground_truth: dict, include_paper: bool = True,
               max_upload_bytes: int | None = None) -> str:
    task, sort, order = table["task"], table["sort"], table["order"]
    every = table.get("view") == "all submissions"
    all_flag = 1 if every else None
    tabs = " ".join(
        f'<a href="{e(_query(task=view, sort=sort, order=order, all=all_flag))}"'
        f'{" class=current aria-current=page" if view == task else ""}>{e(TASK_TITLES[view])}</a>'
        for view in TASK_VIEWS)
    columns = [("model", "Model", "text"), ("team", "Team", "text"),
               *[(m, m, "number") for m in METRICS], ("variant", "Variant", "text"), ("date", "Date", "text")]
    head = ['<th scope="col" class="num">#</th>']
    for key, label, kind in columns:
        sortable = key != "variant"
        attrs = f' data-key="{e(key)}" data-type="{kind}"' if sortable else ""
        if key == sort:
            attrs += f' aria-sort="{"ascending" if order == "asc" else "descending"}"'
        css = ' class="num"' if kind == "number" else ""
        if sortable:
            next_order = ("asc" if order == "desc" else "desc") if key == sort else ("desc" if kind == "number"
                                                                                   else "asc")
            inner = f'<a href="{e(_query(task=task, sort=key, order=next_order, all=all_flag))}">{e(label)}</a>'
        else:
            inner = e(label)
        head.append(f'<th scope="col"{css}{attrs}>{inner}</th>')
    body_rows = []
    for row in table["rows"]:
        paper = row["kind"] == "paper"
        name = e(row["model"])
        if row.get("id") is not None:
            name = f'<a href="/submissions/{int(row["id"])}">{name}</a>'
        link = (f' <a href="{e(row["url"])}" rel="nofollow noopener noreferrer" class="muted">'
                f'{"paper" if paper else "link"}</a>' if row.get("url") else "")
        badge = f' <span class="badge">{e(row["note"])}</span>' if paper else _below_top_marker(row)
        if row.get("duplicate_of"):
            badge += (f' <span class="badge dup" title="the same file (sha256) as submission {int(row["duplicate_of"])}">'
                      f'same file as #{int(row["duplicate_of"])}</span>')
        if not every and (row.get("submissions") or 1) > 1:
            badge += f' <span class="muted">best of {int(row["submissions"])}</span>'
        cells = [f'<td class="num" data-value="{row["rank"]}">{row["rank"]}</td>',
                 f'<td data-value="{e(row["model"])}">{name}{link}{badge}</td>',
                 f'<td data-value="{e(row["team"])}">{e(row["team"])}</td>']
        for metric in METRICS:
            value = row[metric]
            cells.append(f'<td class="num" data-value="{"" if value is None else repr(float(value))}">'
                         f'{_num(value)}</td>')
        flags = row.get("variant_flags")
        tooltip = "; ".join(f"{k}: {v}" for k, v in flags.items()) if flags else ""
        cells.append(f'<td title="{e(tooltip)}">{e(row["variant"])}</td>')
        cells.append(f'<td class="date" data-value="{e(row["date"])}">{e(row["date"])}</td>')
        kind = "paper" if paper else "submission"
        data_id = f' data-id="{int(row["id"])}"' if row.get("id") is not None else ""
        body_rows.append(f'<tr class="{kind}"{data_id}>{"".join(cells)}</tr>')
    if not body_rows:
        body_rows.append(f'<tr><td colspan="{len(columns) + 1}" class="muted">No scored submission yet.</td></tr>')
    paper_toggle = (f'<a href="{e(_query(task=task, sort=sort, order=order, paper=0, all=all_flag))}">hide the '
                    f'paper\'s rows</a>' if include_paper else
                    f'<a href="{e(_query(task=task, sort=sort, order=order, all=all_flag))}">show the paper\'s rows</a>')
    view_toggle = (f'<a id="view-toggle" href="{e(_query(task=task, sort=sort, order=order, paper=None if include_paper else 0))}">'
                   f'each team\'s best per model</a>' if every else
                   f'<a id="view-toggle" href="{e(_query(task=task, sort=sort, order=order, paper=None if include_paper else 0, all=1))}">'
                   f'all submissions</a>')
    view_note = ("Showing every scored submission." if every else
                 "Showing each team's best submission per model (by mIoU, then AP50).")
    gt = ground_truth or {}
    variant = "; ".join(f"{k}: {v}" for k, v in default_variant().items())
    plot_query = _query(task=task, sort=sort, order=order, paper=None if include_paper else 0, all=all_flag)
    body = f"""
<h1>{e(site_title)}</h1>
<p class="lead">Part-focused semantic co-segmentation on MixedParts. Submissions are scored on the hidden
{e(gt.get("split", "?"))} split ({e(gt.get("samples", "?"))} samples, ground truth sha256
<code>{e(str(gt.get("sha256", ""))[:16])}</code>) with the code and default metric variant of
<code>mixedparts-eval</code>. Scores are percent; each metric is computed per task and the headline is the
unweighted mean of the three tasks.</p>
<nav class="tasks" aria-label="task">{tabs}</nav>
<p class="muted">{e(view_note)} Show {view_toggle}. Equal scores share a rank.</p>
<table id="leaderboard" data-sort="{e(sort)}" data-order="{e(order)}">
<caption class="muted">{e(table["task_title"])} — click a column to sort</caption>
<thead><tr>{"".join(head)}</tr></thead>
<tbody>
{chr(10).join(body_rows)}
</tbody>
</table>
<p class="legend muted"><span class="swatch"></span> Shaded rows are {e(table["paper_note"])}: numbers from the
Calico paper's tables (CVPR 2025), computed with the authors' own code on their copy of the data. Only Calico has
published per-task rows. {paper_toggle}.</p>
<figure>
<img src="/plot.svg{e(plot_query)}" alt="Bar chart of the top entries by {e(sort)}" width="820" height="380">
<figcaption class="muted">The top entries of this view by {e(sort)}.</figcaption>
</figure>
<h2>Submit</h2>
<form id="upload-form" class="upload" method="post" action="/api/submissions" enctype="multipart/form-data">
<label for="upload-token">Team token</label>
<input id="upload-token" name="token" type="password" autocomplete="off" required placeholder="mpl_…">
<label for="upload-file">Predictions file</label>
<input id="upload-file" name="file" type="file" accept=".json,.jsonl,application/json" required>
<label for="upload-model">Model name</label>
<input id="upload-model" name="model" type="text" maxlength="100" required>
<label for="upload-url">Paper or code URL</label>
<input id="upload-url" name="url" type="url" maxlength="500" placeholder="https://… (optional)">
<button type="submit">Upload</button>
<p id="upload-status" class="muted" role="status" aria-live="polite">{e(_limits_text(max_upload_bytes))}</p>
</form>
<noscript><p class="muted">The form needs JavaScript (it sends the token as a header); without it, use the
command line below.</p></noscript>
<p class="muted">From the command line:</p>
<pre>mixedparts-leaderboard submit predictions.json --server URL --token TEAM_TOKEN \\
    --model "my model" --url https://…</pre>
<p class="muted">The table as JSON: <a href="/api/table{e(_query(task=task, sort=sort, order=order))}">/api/table</a>;
as Markdown or CSV: <code>mixedparts-leaderboard table --server URL --format markdown</code>.
Default variant: {e(variant)}.</p>
{_significance_note(table)}
"""
    return _page(site_title, body, site_title)


def _limits_text(max_upload_bytes: int | None) -> str:
    if not max_upload_bytes:
        return ""
    return (f"Files up to {max_upload_bytes / 2**20:g} MiB. The format is checked by the server; a malformed file "
            f"still counts toward the daily quota, so check it first with mixedparts-eval.")


def _below_top_marker(row: dict) -> str:
    below = row.get("below_top")
    if not below:
        return ""
    low, high = below["ci95"]
    return (f' <span class="badge below" title="significantly below the top entry in {e(below["metric"])}: '
            f'{below["difference"]:+.1f} points, 95% CI [{low:+.1f}, {high:+.1f}], p = {below["p_value"]:.3g} '
            f'(paired bootstrap)">&#9660; below top</span>')


def _significance_note(table: dict) -> str:
    test = table.get("significance")
    if not test:
        return ""
    return (f'<p class="legend muted"><span class="badge below">&#9660; below top</span> marks submissions whose '
            f'{e(test["metric"])} is significantly below the top entry\'s (p &lt; {test["alpha"]:g}): a paired bootstrap '
            f'over the hidden split\'s samples ({test["replicates"]} resamplings within each task), the test of '
            f'<code>mixedparts-compare</code>. Unmarked entries are not significantly below it.</p>')


def report_section(report: dict | None) -> str:
    """The submission's report on the hidden split: aggregates only (mixedparts.analysis.report.public_summary)."""
    if not report:
        return ""
    from mixedparts.analysis.html import sections

    return (f'<h2 id="report">Report</h2><p class="muted">Error analysis of this submission on the hidden split, '
            f'as <code>mixedparts-eval --report</code> writes it, less everything that would show the hidden ground '
            f'truth (labels, categories, sample ids, pictures): run it on the validation split for those.</p>'
            f'{sections(report)}')


def submission_page(submission: dict, site_title: str) -> str:
    scores = submission.get("scores") or {}
    rows = []
    for task in (*TASKS, MEAN):
        if task not in scores:
            continue
        cells = "".join(f'<td class="num">{_num(scores[task].get(m))}</td>' for m in METRICS)
        label = TASK_TITLES[task] if task != "mean" else "mean (headline)"
        rows.append(f'<tr><th scope="row">{e(label)}</th><td class="num">{e(scores[task].get("samples"))}</td>'
                    f'<td class="num">{e(scores[task].get("units"))}</td>{cells}</tr>')
    variant_rows = "".join(f"<tr><th scope=row>{e(k)}</th><td>{e(v)}</td></tr>"
                           for k, v in (submission.get("variant") or {}).items())
    count_rows = "".join(f"<tr><th scope=row>{e(k)}</th><td class=num>{e(v)}</td></tr>"
                         for k, v in (submission.get("counts") or {}).items())
    warnings = "".join(f"<li>{e(w)}</li>" for w in submission.get("warnings") or [])
    text_model = (submission.get("text_models") or {}).get("SS") or {}
    link = (f'<p><a href="{e(submission["url"])}" rel="nofollow noopener noreferrer">{e(submission["url"])}</a></p>'
            if submission.get("url") else "")
    body = f"""
<h1>{e(submission["model"])}</h1>
<p class="lead">Team {e(submission["team"])} · submission {int(submission["id"])} · scored
{e(submission.get("finished_at") or "")} · file <code>{e(submission["filename"])}</code>
(sha256 <code>{e(str(submission.get("sha256"))[:16])}</code>) · ground truth sha256
<code>{e(str(submission.get("gt_sha256") or "")[:16])}</code></p>
{link}
<h2>Per task</h2>
<table id="per-task">
<thead><tr><th scope="col">task</th><th scope="col" class="num">samples</th><th scope="col" class="num">units</th>
{"".join(f'<th scope="col" class="num">{e(m)}</th>' for m in METRICS)}</tr></thead>
<tbody>{"".join(rows)}</tbody>
</table>
<h2>Metric variant</h2>
<table class="kv"><tbody>{variant_rows}</tbody></table>
<p class="muted">SS text model: {e(text_model.get("model"))}
(weights sha256 {e(str(text_model.get("weights_sha256"))[:16])})</p>
<h2>Counts</h2>
<table class="kv"><tbody>{count_rows}</tbody></table>
{f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else ""}
{report_section(submission.get("report"))}
"""
    return _page(f"{submission['model']} — {site_title}", body, site_title)


def error_page(status: int, message: str, site_title: str) -> str:
    return _page(f"{status} — {site_title}", f'<h1>{status}</h1><p class="error">{e(message)}</p>', site_title)
