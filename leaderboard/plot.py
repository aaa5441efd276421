"""A grouped bar chart of the top entries of a table view, as standalone SVG text (no plotting library).

Every name is XML-escaped; the SVG has no scripts, links or external references, so it is safe
both as an ``<img>`` and opened directly.
"""

from __future__ import annotations

from html import escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT = 820, 380
LEFT, RIGHT, TOP, BOTTOM = 48, 260, 40, 40


def _shorten(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plot_svg(table: dict, top: int = 6) -> str:
    metrics = table["metrics"]
    rows = table["rows"][:max(1, top)]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" role="img">']
    title = f"Top {len(rows)} by {table['sort']} — {table.get('task_title', table['task'])}"
    out.append(f"<title>{escape(title)}</title>")
    out.append("<defs>")
    for i, color in enumerate(PALETTE):
        out.append(f'<pattern id="hatch{i}" width="6" height="6" patternUnits="userSpaceOnUse" '
                   f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
                   f'<rect width="3" height="6" fill="{color}"/></pattern>')
    out.append("</defs>")
    out.append(f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>')
    out.append(f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>')
    for tick in range(0, 101, 20):
        y = TOP + plot_h * (1 - tick / 100)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dddddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555555">{tick}</text>')
    if not rows:
        out.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#555555">'
                   f'no entries yet</text>')
    group_w = plot_w / len(metrics)
    bar_w = (group_w * 0.8) / max(1, len(rows))
    for m, metric in enumerate(metrics):
        x0 = LEFT + m * group_w + group_w * 0.1
        for i, row in enumerate(rows):
            value = row.get(metric)
            if value is None:
                continue
            height = plot_h * max(0.0, min(100.0, value)) / 100
            color = PALETTE[i % len(PALETTE)]
            fill = f"url(#hatch{i % len(PALETTE)})" if row["kind"] == "paper" else color
            x = x0 + i * bar_w
            label = f"{row['model']} ({'paper' if row['kind'] == 'paper' else row['team']}) — {metric} {value:.1f}"
            out.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                       f'height="{height:.1f}" fill="{fill}" stroke="{color}"><title>{escape(label)}</title></rect>')
        out.append(f'<text x="{LEFT + (m + 0.5) * group_w:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
                   f'{escape(metric)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#333333"/>')
    legend_x = WIDTH - RIGHT + 16
    for i, row in enumerate(rows):
        y = TOP + 8 + i * 22
        color = PALETTE[i % len(PALETTE)]
        fill = f"url(#hatch{i % len(PALETTE)})" if row["kind"] == "paper" else color
        out.append(f'<rect x="{legend_x}" y="{y - 10}" width="14" height="14" fill="{fill}" stroke="{color}"/>')
        name = _shorten(row["model"]) + (" (paper)" if row["kind"] == "paper" else "")
        out.append(f'<text x="{legend_x + 20}" y="{y + 2}">{escape(name)}</text>')
    if any(row["kind"] == "paper" for row in rows):
        y = TOP + 8 + len(rows) * 22 + 6
        out.append(f'<text x="{legend_x}" y="{y}" fill="#555555" font-size="11">hatched: reported in the paper,</text>')
        out.append(f'<text x="{legend_x}" y="{y + 14}" fill="#555555" font-size="11">not re-scored</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
