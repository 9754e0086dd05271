"""The finance workbook: summary, breaks, suspense with ageing, status corrections, balance checks.

Amounts are written as numbers derived exactly from integer minor units
(Decimal(minor).scaleb(-exponent), never float arithmetic) with a number format showing the
currency's decimals. Headers are Chinese / English; the header row is frozen and filterable.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from tally import money
from tally.publish import header, reports, value_text

MAX_ROWS = 1_048_576 - 1  # Excel's sheet limit, less the header row
HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
TITLE_FONT = Font(bold=True, size=14)
BOLD = Font(bold=True)
THIN = Border(bottom=Side(style="thin", color="9BB3CC"))
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


@dataclass(frozen=True)
class Col:
    key: str
    kind: str = "text"  # text | int | number | date | amount | rate
    title: str | None = None

    @property
    def header(self) -> str:
        return self.title or header(self.key)


def amount(minor: int | None, currency: str) -> Decimal | None:
    """Minor units to the currency's decimal value, exactly."""
    return None if minor is None else Decimal(int(minor)).scaleb(-money.exponent(currency))


def amount_format(currency: str) -> str:
    exp = money.exponent(currency)
    pattern = "#,##0" + ("." + "0" * exp if exp else "")
    return f"{pattern};[Red]-{pattern}"


def _width(value) -> int:
    # East Asian wide characters take two columns.
    text = str(value) if value is not None else ""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class _Sheet:
    """A write-only sheet: widths and frozen header must be set before the rows are written."""

    def __init__(self, wb: Workbook, title: str):
        self.ws = wb.create_sheet(title)
        self.ws.sheet_view.zoomScale = 100

    def cell(self, value, kind: str = "text", currency: str | None = None, font=None):
        if kind == "amount" and currency:
            value = amount(value, currency)
        cell = WriteOnlyCell(self.ws, value=value)
        if kind == "amount" and currency:
            cell.number_format = amount_format(currency)
        elif kind == "int":
            cell.number_format = "#,##0"
        elif kind == "rate":
            cell.number_format = "0.00%"
        elif kind == "date":
            cell.number_format = "yyyy-mm-dd"
        if font:
            cell.font = font
        return cell

    def header_row(self, titles: list[str]) -> list:
        cells = []
        for title in titles:
            cell = WriteOnlyCell(self.ws, value=title)
            cell.font, cell.fill, cell.alignment, cell.border = (
                HEADER_FONT, HEADER_FILL, CENTER, THIN)
            cells.append(cell)
        return cells

    def widths(self, columns: list[list]) -> None:
        for index, values in enumerate(columns, start=1):
            width = max((_width(v) for v in values), default=8)
            self.ws.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 60)


def table_sheet(wb: Workbook, title: str, columns: list[Col], rows: list[dict]) -> int:
    """One header row (frozen, filterable), then a row per dict. Returns rows written."""
    sheet = _Sheet(wb, title)
    shown = rows[:MAX_ROWS]
    sample = shown[:2000]  # widths from the first rows: enough, and fast on big days
    sheet.widths([[c.header, *(_display(r, c) for r in sample)] for c in columns])
    sheet.ws.freeze_panes = "A2"
    last = get_column_letter(max(len(columns), 1))
    sheet.ws.auto_filter.ref = f"A1:{last}{len(shown) + 1}"
    sheet.ws.append(sheet.header_row([c.header for c in columns]))
    for row in shown:
        sheet.ws.append([_value(sheet, row, c) for c in columns])
    return len(shown)


def _display(row: dict, col: Col):
    value = row.get(col.key)
    if col.kind == "amount" and value is not None:
        return money.format_minor(value, row["currency"]) + "    "  # room for separators
    return value_text(col.key, value)


def _value(sheet: _Sheet, row: dict, col: Col):
    value = row.get(col.key)
    if col.kind == "text":
        return value_text(col.key, value)
    return sheet.cell(value, col.kind, row.get("currency"))


def _break_labels(day: reports.DayReport) -> dict[str, str]:
    return {r["break_type"]: f"{r['label_zh']} {r['label_en']}"
            for r in day.views["breaks"].dicts()}


BREAK_COLUMNS = [
    Col("break_type_label", title=header("break_type")), Col("outcome"), Col("needs_person"),
    Col("project"), Col("source"), Col("side"), Col("direction"), Col("reference"),
    Col("account"), Col("amount_minor", "amount"), Col("amount_difference_minor", "amount"),
    Col("currency"), Col("transaction_date", "date"), Col("age_days", "int"),
    Col("explanation"), Col("rule"), Col("transaction_key"), Col("counterpart_key"),
]
SUSPENSE_COLUMNS = [
    Col("ageing_bucket"), Col("age_days", "int"), Col("project"), Col("source"), Col("side"),
    Col("kind"), Col("direction"), Col("reference"), Col("account"),
    Col("amount_minor", "amount"), Col("currency"), Col("status"),
    Col("transaction_date", "date"), Col("becomes_label", title=header("becomes_break_type")),
    Col("explanation"), Col("transaction_key"),
]
AGEING_COLUMNS = [Col("project"), Col("currency"), Col("ageing_bucket"), Col("count", "int"),
                  Col("amount_minor", "amount")]
CORRECTION_COLUMNS = [
    Col("project"), Col("reference"), Col("source"), Col("account"),
    Col("amount_minor", "amount"), Col("currency"), Col("platform_status"),
    Col("statement_status"), Col("transaction_key"), Col("counterpart_key"),
]
SUMMARY_COLUMNS = [
    Col("project"), Col("currency"), Col("row_count", "int"), Col("matched_count", "int"),
    Col("suspense_count", "int"), Col("break_count", "int"),
    Col("matched_amount_minor", "amount"), Col("suspense_amount_minor", "amount"),
    Col("break_amount_minor", "amount"), Col("match_rate", "rate"),
]
_KINDS = {"int8": "int", "int4": "int", "int2": "int", "date": "date", "numeric": "number"}


def generic_columns(view: reports.View) -> list[Col]:
    """Columns of a view the workbook has no layout for (balance checks): all but the date."""
    columns = []
    for name, type_name in zip(view.columns, view.types, strict=True):
        if name == "business_date":
            continue
        if name.endswith("_minor") and "currency" in view.columns:
            columns.append(Col(name, "amount"))
        else:
            columns.append(Col(name, _KINDS.get(type_name, "text")))
    return columns


def _bucket_label(index: int) -> str:
    _, _, zh, en = reports.AGEING_BUCKETS[index]
    return f"{zh} {en}"


def _summary_sheet(wb: Workbook, day: reports.DayReport, notes: list[str]) -> None:
    sheet = _Sheet(wb, "汇总 Summary")
    summary = day.views["daily_summary"].dicts()
    gate = day.run.get("gate") or {}
    meta = [
        ("对账日 / Business date", day.business_date.isoformat()),
        ("运行 / Run", day.run.get("run_id")),
        ("闸门 / Gate", "通过 passed" if day.run.get("gate_passed") else "未通过 not passed"),
        ("校验项 / Expectations", gate.get("evaluated")),
        ("代码版本 / Code version", day.run.get("code_version")),
        ("规则摘要 / Rules digest", day.run.get("rules_digest")),
        ("输入文件 / Input files", len(day.inputs)),
    ]
    # Rows: title, meta, notes, blank, table header at `head`.
    head = 2 + len(meta) + len(notes) + 1
    sheet.widths([[c.header, *(_display(r, c) for r in summary)] for c in SUMMARY_COLUMNS])
    sheet.ws.column_dimensions["A"].width = max(
        sheet.ws.column_dimensions["A"].width, *(_width(k) + 2 for k, _ in meta))
    sheet.ws.freeze_panes = f"A{head + 1}"
    sheet.ws.append([sheet.cell("对账日报 Daily reconciliation report", font=TITLE_FONT)])
    for key, value in meta:
        sheet.ws.append([sheet.cell(key, font=BOLD), value])
    for note in notes:
        sheet.ws.append([sheet.cell(note, font=Font(color="C00000"))])
    sheet.ws.append([])
    sheet.ws.append(sheet.header_row([c.header for c in SUMMARY_COLUMNS]))
    for row in summary:
        sheet.ws.append([_value(sheet, row, c) for c in SUMMARY_COLUMNS])
    # Totals per currency: counts add up; amounts only within one currency.
    for currency in sorted({r["currency"] for r in summary}):
        rows = [r for r in summary if r["currency"] == currency]
        total = {"project": "合计 Total", "currency": currency}
        for col in SUMMARY_COLUMNS[2:-1]:
            total[col.key] = sum(r[col.key] for r in rows)
        matched, count = total["matched_count"], total["row_count"]
        total["match_rate"] = (Decimal(matched) / Decimal(count)).quantize(Decimal("0.000001")) \
            if count else None
        sheet.ws.append([_value(sheet, total, c) for c in SUMMARY_COLUMNS])


def workbook(day: reports.DayReport) -> bytes:
    wb = Workbook(write_only=True)
    labels = _break_labels(day)
    breaks = [{**r, "break_type_label": labels.get(r["break_type"], r["break_type"])}
              for r in day.views["breaks"].dicts()]
    # Open breaks first: they are what a person must look at.
    breaks.sort(key=lambda r: (r["outcome"] != "break", r["outcome"] != "matched"))
    suspense = [{**r, "ageing_bucket": _bucket_label(reports.bucket_of(r["age_days"])),
                 "becomes_label": labels.get(r["becomes_break_type"], r["becomes_break_type"])}
                for r in day.views["suspense"].dicts()]
    ageing = [{**r, "ageing_bucket": _bucket_label(r["bucket"])}
              for r in reports.ageing(day.views["suspense"])]
    corrections = day.views["status_corrections"].dicts()
    sheets = [("差异 Breaks", BREAK_COLUMNS, breaks),
              ("挂账 Suspense", SUSPENSE_COLUMNS, suspense),
              ("挂账账龄 Suspense ageing", AGEING_COLUMNS, ageing),
              ("状态更正 Status corrections", CORRECTION_COLUMNS, corrections)]
    if "balance_checks" in day.views:
        view = day.views["balance_checks"]
        sheets.append(("余额核对 Balance checks", generic_columns(view), view.dicts()))
    notes = [f"{title}: 仅前 {MAX_ROWS:,} 行，完整数据见 CSV / first {MAX_ROWS:,} rows only, "
             "all rows in the CSV extract" for title, _, rows in sheets if len(rows) > MAX_ROWS]
    _summary_sheet(wb, day, notes)
    for title, columns, rows in sheets:
        table_sheet(wb, title, columns, rows)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
