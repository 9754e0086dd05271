"""The self-contained HTML report: one file, inline CSS and SVG charts drawn here in Python.

No script, no web font, no image or style sheet by address: it opens offline and makes no
request of any kind. Bar and line positions are computed with integer arithmetic from counts
and minor units; displayed amounts come from money.format_minor (exact).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from html import escape

from tally import money
from tally.publish import header, label, model, value_text

TABLE_LIMIT = 200  # rows per table in the page; the extracts have them all
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]
BREAK_COLOR, INFO_COLOR, SUSPENSE_COLOR, COUNT_COLOR = "#c0392b", "#7f8c8d", "#e67e22", "#2e6da4"

CSS = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
       "WenQuanYi Micro Hei", "Helvetica Neue", Arial, sans-serif; margin: 24px 32px;
       color: #1d2733; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 2px solid #1f4e78; padding-bottom: 4px; }
.meta { color: #5a6675; font-size: 13px; }
.meta code { font-size: 12px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 18px 0; }
.card { border: 1px solid #d5dde6; border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card .k { font-size: 12px; color: #5a6675; }
.card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: flex; gap: 16px; flex-wrap: wrap; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #5a6675; margin-top: 4px; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
th { background: #1f4e78; color: #fff; padding: 5px 8px; text-align: left; font-weight: 600;
     position: sticky; top: 0; }
td { padding: 4px 8px; border-bottom: 1px solid #e3e8ee; }
tr:nth-child(even) td { background: #f6f8fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { font-size: 12px; color: #5a6675; }
.bad { color: #c0392b; font-weight: 600; }
svg text { font-family: inherit; }
@media print { th { position: static; } }
"""


def grouped(minor: int, currency: str) -> str:
    """Exact decimal text with thousands separators ("1234567" CNY -> "12,345.67")."""
    text = money.format_minor(minor, currency)
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


def percent(part: int, whole: int) -> str:
    if not whole:
        return "–"
    return f"{(Decimal(part) * 100 / Decimal(whole)).quantize(Decimal('0.01'))}%"


def _text(x, y, content, size=12, anchor="start", fill="#1d2733", weight="normal") -> str:
    return (f'<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
            f' font-weight="{weight}">{escape(str(content))}</text>')


def line_chart(day: model.DayReport, width: int = 900, height: int = 300) -> str:
    """Match rate per project over the HISTORY_DAYS ending on the business date."""
    left, right, top, bottom = 56, 280, 20, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    days = [day.business_date - timedelta(days=model.HISTORY_DAYS - 1 - i)
            for i in range(model.HISTORY_DAYS)]
    step = plot_w // (len(days) - 1)

    def y(matched: int, rows: int) -> int:
        return top + plot_h - (matched * plot_h // rows if rows else 0)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
             ' role="img" aria-label="match rate over recent days">']
    for pct in (0, 25, 50, 75, 100):
        gy = top + plot_h - pct * plot_h // 100
        parts.append(f'<line x1="{left}" y1="{gy}" x2="{left + plot_w}" y2="{gy}"'
                     ' stroke="#e3e8ee"/>')
        parts.append(_text(left - 6, gy + 4, f"{pct}%", 11, "end", "#5a6675"))
    for i, d in enumerate(days):
        if i % 2 == (len(days) - 1) % 2:
            parts.append(_text(left + i * step, top + plot_h + 18, d.strftime("%m-%d"), 11,
                               "middle", "#5a6675"))
    parts.append(_text(left + plot_w // 2, height - 6, "对账日 Business date", 11, "middle",
                       "#5a6675"))
    series: dict[str, dict] = defaultdict(dict)
    for d, project, rows, matched in day.history:
        series[project][d] = (int(matched), int(rows))
    for n, project in enumerate(sorted(series)):
        color = PALETTE[n % len(PALETTE)]
        points = [(left + i * step, y(*series[project][d]), d)
                  for i, d in enumerate(days) if d in series[project]]
        if len(points) > 1:
            coords = " ".join(f"{px},{py}" for px, py, _ in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}"'
                         ' stroke-width="2"/>')
        for px, py, d in points:
            matched, rows = series[project][d]
            parts.append(f'<circle cx="{px}" cy="{py}" r="3.5" fill="{color}"><title>'
                         f'{escape(project)} {d}: {percent(matched, rows)}'
                         f' ({matched}/{rows})</title></circle>')
        ly = top + 8 + n * 20
        parts.append(f'<rect x="{left + plot_w + 16}" y="{ly - 9}" width="12" height="12"'
                     f' fill="{color}"/>')
        matched, rows = series[project].get(day.business_date, (0, 0))
        parts.append(_text(left + plot_w + 34, ly + 1,
                           f"{project} {percent(matched, rows)}", 12))
    if not series:
        parts.append(_text(left + plot_w // 2, top + plot_h // 2, "无数据 No data", 14,
                           "middle"))
    parts.append("</svg>")
    return "".join(parts)


def bar_panel(title: str, items: list[tuple[str, int, str, str]], width: int = 440) -> str:
    """Horizontal bars: (label, value >= 0, value text, colour) per row."""
    label_w, text_w, row_h, top = 190, 110, 26, 26
    bar_w = width - label_w - text_w
    height = top + max(len(items), 1) * row_h + 8
    biggest = max((value for _, value, _, _ in items), default=0)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="{escape(title)}">',
             _text(0, 16, title, 13, weight="600")]
    for i, (name, value, text, color) in enumerate(items):
        ry = top + i * row_h
        length = value * bar_w // biggest if biggest else 0
        parts.append(_text(label_w - 8, ry + 16, name, 12, "end"))
        parts.append(f'<rect x="{label_w}" y="{ry + 4}" width="{max(length, 1)}" height="16"'
                     f' fill="{color}"><title>{escape(name)}: {escape(text)}</title></rect>')
        parts.append(_text(label_w + length + 6, ry + 16, text, 12))
    if not items:
        parts.append(_text(label_w, top + 16, "无 None", 12, fill="#5a6675"))
    parts.append("</svg>")
    return "".join(parts)


def breaks_charts(day: model.DayReport) -> str:
    """Breaks by type: open breaks and the day's informational differences (suspense items
    are in the ageing chart)."""
    groups: dict[tuple, list] = {}
    for r in day.break_totals:  # every break of the day, summed by PostgreSQL
        key = (r["outcome"] != "break", r["break_type"], f"{r['label_zh']} {r['label_en']}")
        entry = groups.setdefault(key, [0, defaultdict(int)])
        entry[0] += r["count"]
        entry[1][r["currency"]] += r["amount_minor"]
    ordered = sorted(groups.items())
    color = {False: BREAK_COLOR, True: INFO_COLOR}
    panels = [bar_panel("笔数 Count", [(name, n, f"{n:,}", color[info])
                                       for (info, _, name), (n, _) in ordered])]
    for currency in sorted({c for _, (_, amounts) in ordered for c in amounts}):
        panels.append(bar_panel(f"金额 Amount ({currency})", [
            (name, abs(amounts[currency]), grouped(amounts[currency], currency), color[info])
            for (info, _, name), (_, amounts) in ordered if currency in amounts]))
    return "".join(f"<figure>{p}</figure>" for p in panels)


def ageing_charts(day: model.DayReport) -> str:
    table = day.ageing
    names = [f"{zh} {en}" for _, _, zh, en in model.AGEING_BUCKETS]
    counts = [sum(r["count"] for r in table if r["bucket"] == b) for b in range(len(names))]
    panels = [bar_panel("笔数 Count", [(names[b], counts[b], f"{counts[b]:,}", SUSPENSE_COLOR)
                                       for b in range(len(names))])]
    for currency in sorted({r["currency"] for r in table}):
        amounts = [sum(r["amount_minor"] for r in table
                       if r["bucket"] == b and r["currency"] == currency)
                   for b in range(len(names))]
        panels.append(bar_panel(f"金额 Amount ({currency})", [
            (names[b], abs(amounts[b]), grouped(amounts[b], currency), SUSPENSE_COLOR)
            for b in range(len(names))]))
    return "".join(f"<figure>{p}</figure>" for p in panels)


def _cell(column: str, value, row: dict) -> str:
    if value is None:
        return "<td></td>"
    if column.endswith("_minor") and "currency" in row:
        return f'<td class="n">{escape(grouped(value, row["currency"]))}</td>'
    if column == "match_rate":
        return f'<td class="n">{(Decimal(value) * 100).quantize(Decimal("0.01"))}%</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{escape(str(value_text(column, value)))}</td>"


def table(columns: list[str], rows: list[dict], limit: int = TABLE_LIMIT) -> str:
    if not rows:
        return '<p class="note">无 None</p>'
    head = "".join(f"<th>{escape(header(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(c, r.get(c), r) for c in columns) + "</tr>"
                   for r in rows[:limit])
    more = (f'<p class="note">显示前 {limit} 行，共 {len(rows):,} 行；全部见工作簿与 CSV。'
            f' First {limit} of {len(rows):,} rows; all are in the workbook and the CSV.</p>'
            if len(rows) > limit else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cards(day: model.DayReport) -> str:
    summary = day.views["daily_summary"].dicts()
    rows = sum(r["row_count"] for r in summary)
    matched = sum(r["matched_count"] for r in summary)
    cards = [("对账笔数 Rows reconciled", f"{rows:,}"), ("已匹配 Matched", f"{matched:,}"),
             ("挂账 In suspense", f"{sum(r['suspense_count'] for r in summary):,}"),
             ("差异 Open breaks", f"{sum(r['break_count'] for r in summary):,}"),
             ("匹配率 Match rate", percent(matched, rows))]
    checks = day.views.get("balance_checks")
    if checks and "passed" in checks.columns:
        passed = sum(r["passed"] is True for r in checks.dicts())
        cards.append(("余额核对通过 Balance checks passed", f"{passed}/{len(checks.rows)}"))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div>'
        "</div>" for k, v in cards) + "</div>"


def report(day: model.DayReport) -> str:
    stamp = day.business_date.isoformat()
    run = day.run
    gate = ("通过 passed" if run.get("gate_passed")
            else '<span class="bad">未通过 not passed</span>')
    breaks = [{**r, "break_type": f"{r['label_zh']} {r['label_en']}"}
              for r in day.views["breaks"].dicts()]
    open_breaks = sorted((r for r in breaks if r["outcome"] == "break"),
                         key=lambda r: (r["currency"], -abs(r["amount_minor"])))
    informational = [r for r in breaks if r["outcome"] == "matched"]
    break_columns = ["project", "break_type", "source", "reference", "account", "direction",
                     "amount_minor", "amount_difference_minor", "currency", "age_days",
                     "explanation"]
    summary_columns = ["project", "currency", "row_count", "matched_count", "suspense_count",
                       "break_count", "matched_amount_minor", "suspense_amount_minor",
                       "break_amount_minor", "match_rate"]
    ageing_rows = [{**r, "ageing_bucket": f"{r['label_zh']} {r['label_en']}"}
                   for r in day.ageing]
    days = model.HISTORY_DAYS
    sections = [
        (f"匹配率（近 {days} 天） Match rate, last {days} days",
         f"<figure>{line_chart(day)}<figcaption>每个对账项目已匹配笔数 / 对账笔数。 Matched rows /"
         " rows in scope, per project.</figcaption></figure>"),
        ("差异类型与金额 Breaks by type and amount",
         f'<div class="charts">{breaks_charts(day)}</div>'
         '<p class="note">红色：未决差异，需人工处理；'
         "灰色：当日信息性差异（时间差、状态不符）。"
         " Red: open breaks; grey: informational (timing, status).</p>"),
        ("挂账账龄 Suspense ageing", f'<div class="charts">{ageing_charts(day)}</div>'
         + table(["project", "currency", "ageing_bucket", "count", "amount_minor"], ageing_rows)),
        ("汇总 Summary", table(summary_columns, day.views["daily_summary"].dicts())),
        ("未决差异 Open breaks", table(break_columns, open_breaks)),
        ("信息性差异 Informational differences", table(break_columns, informational)),
        ("状态更正 Status corrections", table(
            ["project", "reference", "source", "account", "amount_minor", "currency",
             "platform_status", "statement_status"], day.views["status_corrections"].dicts())),
    ]
    if "balance_checks" in day.views:
        view = day.views["balance_checks"]
        # Failed checks first: they are the ones to read.
        checks = sorted(view.dicts(), key=lambda r: r.get("passed") is not False)
        sections.append(("余额核对 Balance checks", table(
            [c for c in view.columns if c != "business_date"], checks)))
    missing = [r for r in day.views["source_arrivals"].dicts() if r["status"] == "missing"] \
        if "source_arrivals" in day.views else []
    if missing:  # reconciled without them: say so before anything else
        sections.insert(0, ("缺失数据源 Missing sources", table(
            ["feed", "source", "detail"], missing)))
    incomplete = [{"project": r["project"], "awaiting_sources": r["awaiting_sources"]}
                  for r in day.views["daily_summary"].dicts() if r.get("complete") is False]
    if incomplete:  # their rows wait for a side never received: no breaks were raised
        sections.insert(0, ("未完整对账项目 Incomplete projects", table(
            ["project", "awaiting_sources"], incomplete)
            + '<p class="note">对方数据源未收到：这些项目的记录挂账等待，不产生差异。'
            " A counterpart source was not received: these projects' rows wait in suspense;"
            " no break is raised on a side never received.</p>"))
    body = "".join(f"<h2>{escape(title)}</h2>{content}" for title, content in sections)
    date_zh, date_en = label("business_date")
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>对账日报 Reconciliation report {stamp}</title>
<style>{CSS}</style>
</head>
<body>
<h1>对账日报 Reconciliation report · {stamp}</h1>
<div class="meta">{date_zh} {date_en} {stamp} · 闸门 Gate {gate} ·
运行 Run <code>{escape(str(run.get('run_id')))}</code> ·
代码 Code <code>{escape(str(run.get('code_version')))}</code> ·
规则 Rules <code>{escape(str(run.get('rules_digest'))[:12])}</code> ·
输入文件 Input files {len(day.inputs)}</div>
{_cards(day)}
{body}
<p class="note">金额以最小货币单位精确计算。 Amounts are exact, computed from integer minor units.
完整明细见同一版本中的工作簿、CSV 与 Parquet。 Every row is in the workbook, CSV and Parquet of
this version.</p>
</body>
</html>
"""
