"""The finance workbook: summary, breaks, suspense with batches and ageing, status corrections,
balance checks.

The workbook is for reading, not for holding every row: the item sheets (breaks, suspense)
show at most `DayReport.limit` rows (Settings.workbook_rows, 10,000 by default), the ones a
person looks at first (open breaks, then the largest amounts; suspense items largest first).
What no cap may leave out is summed by PostgreSQL over every row: suspense per batch (a
channel's bill day awaiting its payout is one line, with its row count and amount) and per
ageing bucket, on sheets of their own. A cut sheet ends with a line saying how many rows it
shows of how many and naming the CSV and Parquet extracts, which hold every row; the summary
sheet repeats it. Reason: tens of thousands of breaks a day at a million transactions (and
as many items in suspense on a day whose statements did not come) are neither readable nor
workable as a sheet (filtering every row is what the extracts and BI are for), and writing
them cell by cell was most of publishing's time.

Written with xlsxwriter in constant-memory mode: each row goes to the sheet's temporary file as
it is written, so rows stream from the database cursor through the writer without being held.
Amounts are written as numbers derived exactly from integer minor units
(Decimal(minor).scaleb(-exponent), never float arithmetic; the cell text is the Decimal's own
digits) with a number format showing the currency's decimals. Headers are Chinese / English;
the header row is frozen and filterable.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import chain, islice
from pathlib import Path

import xlsxwriter

from tally import money
from tally.publish import VALUES, header, model, value_text

MAX_ROWS = 1_048_576 - 1  # Excel's sheet limit, less the header row
WIDTH_SAMPLE = 2000  # widths from the first rows: enough, and fast on big days
HEADER_STYLE = {"bold": True, "font_color": "#FFFFFF", "bg_color": "#1F4E78",
                "align": "center", "valign": "vcenter", "text_wrap": True,
                "bottom": 1, "bottom_color": "#9BB3CC"}
NUMBER_FORMATS = {"int": "#,##0", "rate": "0.00%", "date": "yyyy-mm-dd"}


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


class _Book:
    """One workbook and its cell formats, made once each (xlsxwriter keeps every Format)."""

    def __init__(self, path: Path):
        self.wb = xlsxwriter.Workbook(str(path), {
            "constant_memory": True, "tmpdir": str(path.parent),
            "strings_to_numbers": False, "strings_to_formulas": False,
            "strings_to_urls": False})
        self.header = self.wb.add_format(HEADER_STYLE)
        self.title = self.wb.add_format({"bold": True, "font_size": 14})
        self.bold = self.wb.add_format({"bold": True})
        self.note = self.wb.add_format({"font_color": "#C00000"})
        self._formats: dict[str, object] = {}
        self._amounts: dict[str, object] = {}

    def amount_format(self, currency: str):
        if currency not in self._amounts:
            self._amounts[currency] = self.number_format(amount_format(currency))
        return self._amounts[currency]

    def number_format(self, pattern: str):
        if pattern not in self._formats:
            self._formats[pattern] = self.wb.add_format({"num_format": pattern})
        return self._formats[pattern]

    def close(self) -> None:
        self.wb.close()


def _write(ws, book: _Book, row: int, col: int, value, kind: str = "text",
           currency: str | None = None) -> None:
    """One cell, typed by its value; numbers and dates get the column kind's format."""
    if value is None:
        return
    if kind == "amount" and currency:
        ws.write_number(row, col, amount(value, currency), book.amount_format(currency))
    elif isinstance(value, bool):
        ws.write_boolean(row, col, value)
    elif isinstance(value, int | Decimal | float):
        pattern = NUMBER_FORMATS.get(kind)
        ws.write_number(row, col, value, book.number_format(pattern) if pattern else None)
    elif isinstance(value, datetime):
        ws.write_string(row, col, value.isoformat())  # Excel has no time zones
    elif isinstance(value, date):
        ws.write_datetime(row, col, value, book.number_format(NUMBER_FORMATS["date"]))
    else:
        ws.write_string(row, col, str(value))


def _cell_writer(ws, book: _Book, column: Col, index: int):
    """A function (row number, row dict) -> None writing this column's cell: chosen once per
    column, because a big sheet writes millions of cells."""
    key, kind = column.key, column.kind
    if kind == "text":
        labels = VALUES.get(key, {})

        def write(at: int, row: dict) -> None:
            value = row.get(key)
            value = labels.get(value, value)
            if type(value) is str:
                ws.write_string(at, index, value)
            else:
                _write(ws, book, at, index, value, kind)
    else:
        def write(at: int, row: dict) -> None:
            _write(ws, book, at, index, row.get(key), kind, row.get("currency"))
    return write


def _set_widths(ws, columns: list[list]) -> None:
    for index, values in enumerate(columns):
        width = max((_width(v) for v in values), default=8)
        ws.set_column(index, index, min(max(width + 2, 8), 60))


def table_sheet(book: _Book, title: str, columns: list[Col], rows: Iterable[dict],
                limit: int | None = None) -> int:
    """One header row (frozen, filterable), then a row per dict, streamed: the rows may be an
    iterator over a cursor. Returns the rows there were (all are read; at most `limit`, and at
    most MAX_ROWS, are written)."""
    limit = MAX_ROWS if limit is None else min(limit, MAX_ROWS)
    ws = book.wb.add_worksheet(title)
    rows = iter(rows)
    sample = list(islice(rows, WIDTH_SAMPLE))
    _set_widths(ws, [[c.header, *(_display(r, c) for r in sample)] for c in columns])
    ws.freeze_panes(1, 0)
    for col, column in enumerate(columns):
        ws.write_string(0, col, column.header, book.header)
    writers = [_cell_writer(ws, book, column, index) for index, column in enumerate(columns)]
    count = 0
    for count, row in enumerate(chain(sample, rows), start=1):
        if count <= limit:
            for write in writers:
                write(count, row)
    ws.autofilter(0, 0, min(count, limit), max(len(columns) - 1, 0))
    return count


def _display(row: dict, col: Col):
    value = row.get(col.key)
    if col.kind == "amount" and value is not None:
        return money.format_minor(value, row["currency"]) + "    "  # room for separators
    return value_text(col.key, value)


BREAK_COLUMNS = [
    Col("break_type_label", title=header("break_type")), Col("outcome"), Col("needs_person"),
    Col("project"), Col("source"), Col("side"), Col("direction"), Col("reference"),
    Col("account"), Col("amount_minor", "amount"), Col("amount_difference_minor", "amount"),
    Col("currency"), Col("transaction_date", "date"), Col("age_days", "int"),
    Col("explanation"), Col("rule"), Col("left_reference"),
    Col("left_amount_minor", "amount"), Col("left_business_date", "date"),
    Col("right_reference"), Col("right_amount_minor", "amount"),
    Col("right_business_date", "date"), Col("break_key"), Col("transaction_key"),
    Col("counterpart_key"),
]
SUSPENSE_COLUMNS = [
    Col("ageing_bucket"), Col("age_days", "int"), Col("project"), Col("source"), Col("side"),
    Col("kind"), Col("direction"), Col("reference"), Col("account"),
    Col("amount_minor", "amount"), Col("currency"), Col("status"),
    Col("transaction_date", "date"), Col("becomes_label", title=header("becomes_break_type")),
    Col("awaiting"), Col("explanation"), Col("transaction_key"),
]
BATCH_COLUMNS = [
    Col("project"), Col("source"), Col("kind"), Col("transaction_date", "date"),
    Col("awaiting"), Col("becomes_label", title=header("becomes_break_type")),
    Col("currency"), Col("count", "int"), Col("amount_minor", "amount"),
    Col("age_days", "int", title="最长账龄(天) / Oldest (days)"),
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


def generic_columns(view: model.View) -> list[Col]:
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
    _, _, zh, en = model.AGEING_BUCKETS[index]
    return f"{zh} {en}"


def _summary_sheet(book: _Book, ws, day: model.DayReport, notes: list[str]) -> None:
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
    columns = [[c.header, *(_display(r, c) for r in summary)] for c in SUMMARY_COLUMNS]
    columns[0] += [key for key, _ in meta]
    _set_widths(ws, columns)
    # Rows: title, meta, notes, blank, then the table header at row `head` (0-based).
    head = 1 + len(meta) + len(notes) + 1
    ws.freeze_panes(head + 1, 0)
    ws.write_string(0, 0, "对账日报 Daily reconciliation report", book.title)
    for row, (key, value) in enumerate(meta, start=1):
        ws.write_string(row, 0, key, book.bold)
        _write(ws, book, row, 1, value)
    for row, note in enumerate(notes, start=1 + len(meta)):
        ws.write_string(row, 0, note, book.note)
    for col, column in enumerate(SUMMARY_COLUMNS):
        ws.write_string(head, col, column.header, book.header)
    # Totals per currency: counts add up; amounts only within one currency.
    totals = []
    for currency in sorted({r["currency"] for r in summary}):
        rows = [r for r in summary if r["currency"] == currency]
        total = {"project": "合计 Total", "currency": currency}
        for col in SUMMARY_COLUMNS[2:-1]:
            total[col.key] = sum(r[col.key] for r in rows)
        matched, count = total["matched_count"], total["row_count"]
        total["match_rate"] = (Decimal(matched) / Decimal(count)).quantize(Decimal("0.000001")) \
            if count else None
        totals.append(total)
    for row, record in enumerate([*summary, *totals], start=head + 1):
        for col, column in enumerate(SUMMARY_COLUMNS):
            _write(ws, book, row, col, record.get(column.key), column.kind,
                   record.get("currency"))


def _suspense_rows(rows: Iterable[dict], labels: dict[str, str]) -> Iterator[dict]:
    for r in rows:
        yield {**r, "ageing_bucket": _bucket_label(model.bucket_of(r["age_days"])),
               "becomes_label": labels.get(r["becomes_break_type"], r["becomes_break_type"])}


# Where a cut sheet's every row is, and in what order the rows shown were chosen.
CUT_SHEETS = {
    "breaks": ("未决差异在前，金额从大到小", "open breaks first, largest amounts first"),
    "suspense": ("金额从大到小", "largest amounts first"),
}


def cut_note(title: str, view: str, shown: int, total: int) -> str:
    zh, en = CUT_SHEETS[view]
    return (f"{title}: 仅列出 {shown:,} / {total:,} 行（{zh}），全部数据见 {view}.csv 与 "
            f"{view}.parquet / {shown:,} of {total:,} rows shown ({en}); every row is in "
            f"{view}.csv and {view}.parquet")


def write_workbook(day: model.DayReport, suspense: Iterable[dict], path: Path) -> None:
    """The workbook to `path`. `suspense` is the day's largest suspense items, as many as the
    sheet shows (reports.read_suspense), read once (an iterator over a cursor is enough);
    `day` has the breaks to show, the counts of all rows and the sums over all of them."""
    book = _Book(path)
    summary = book.wb.add_worksheet("汇总 Summary")  # first sheet, written last (its notes)
    labels = day.break_labels
    breaks = [{**r, "break_type_label": labels.get(r["break_type"], r["break_type"])}
              for r in day.views["breaks"].dicts()]
    # Open breaks first: they are what a person must look at (read in that order already).
    breaks.sort(key=lambda r: (r["outcome"] != "break", r["outcome"] != "matched"))
    ageing = [{**r, "ageing_bucket": _bucket_label(r["bucket"])} for r in day.ageing]
    batches = [{**r, "becomes_label": labels.get(r["becomes_break_type"],
                                                 r["becomes_break_type"])}
               for r in day.suspense_batches]
    limit = min(day.limit, MAX_ROWS)
    sheets = [("差异 Breaks", BREAK_COLUMNS, breaks, "breaks"),
              ("挂账 Suspense", SUSPENSE_COLUMNS, _suspense_rows(suspense, labels), "suspense"),
              ("挂账批次 Suspense batches", BATCH_COLUMNS, batches, None),
              ("挂账账龄 Suspense ageing", AGEING_COLUMNS, ageing, None),
              ("状态更正 Status corrections", CORRECTION_COLUMNS,
               day.views["status_corrections"].dicts(), None)]
    if "balance_checks" in day.views:
        view = day.views["balance_checks"]
        sheets.append(("余额核对 Balance checks", generic_columns(view), view.dicts(), None))
    # A project reconciled without a counterpart source: its rows wait; say so first.
    notes = [f"未完整对账 Incomplete: {r['project']} 等待 awaiting {r['awaiting_sources']}"
             for r in day.views["daily_summary"].dicts() if r.get("complete") is False]
    for title, columns, rows, view in sheets:
        count = table_sheet(book, title, columns, rows, limit)
        shown = min(count, limit)
        total = max(count, day.counts.get(view, 0)) if view else count
        if total > shown:
            note = (cut_note(title, view, shown, total) if view else
                    f"{title}: 仅列出前 {shown:,} 行 / first {shown:,} rows only")
            book.wb.get_worksheet_by_name(title).write_string(shown + 2, 0, note, book.note)
            notes.append(note)
    if len(batches) >= limit:  # read at most `limit` batches: there may be more
        notes.append(f"挂账批次 Suspense batches: 仅列出金额最大的 {limit:,} 批 / the {limit:,} "
                     "largest batches only; every item is in suspense.csv and suspense.parquet")
    _summary_sheet(book, summary, day, notes)
    book.close()
