"""The report model: what the renderers (excel.py, html_report.py) are given to draw.

reports.py reads it from the warehouse (read_day) and hands it to the renderers; the renderers
depend on this module only, never on reports.py, so publishing has no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

HISTORY_DAYS = 14  # the match-rate chart looks back this many days
WORKBOOK_ROWS = 10_000  # the default of Settings.workbook_rows

# Suspense ageing buckets: (first day, last day or None, label zh, label en).
AGEING_BUCKETS = [
    (0, 0, "当天", "Same day"),
    (1, 1, "1 天", "1 day"),
    (2, 3, "2–3 天", "2–3 days"),
    (4, 7, "4–7 天", "4–7 days"),
    (8, None, "8 天以上", "8+ days"),
]


@dataclass
class View:
    """One reporting view's rows for the day, with the PostgreSQL type name of each column."""

    name: str
    columns: list[str]
    types: list[str]
    rows: list[tuple]

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def total(self, column: str) -> dict[str, int]:
        """Sum of an integer minor-unit column per currency."""
        at, currency_at = self.columns.index(column), self.columns.index("currency")
        totals: dict[str, int] = {}
        for row in self.rows:
            if row[at] is not None:
                totals[row[currency_at]] = totals.get(row[currency_at], 0) + row[at]
        return totals


@dataclass
class DayReport:
    """Everything the workbook and the HTML report show of a business date (reports.read_day)."""

    business_date: date
    run: dict
    views: dict[str, View]
    # (day, project, rows, matched rows) for the HISTORY_DAYS ending on the business date.
    history: list[tuple] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    # Suspense per project, currency and ageing bucket (reports.read_ageing).
    ageing: list[dict] = field(default_factory=list)
    # Break type -> "中文 English" label, for every type (suspense items name theirs too).
    break_labels: dict[str, str] = field(default_factory=dict)
    # Rows of the views the workbook and the report show only in part: view -> all its rows
    # for the day (breaks: without the suspense items), and how many at most are shown.
    counts: dict[str, int] = field(default_factory=dict)
    limit: int = WORKBOOK_ROWS
    # Suspense per batch (reports.read_suspense_batches) and breaks per type
    # (reports.read_break_totals), over every row.
    suspense_batches: list[dict] = field(default_factory=list)
    break_totals: list[dict] = field(default_factory=list)


def bucket_of(age_days: int | None) -> int:
    """Index into AGEING_BUCKETS for an age in days."""
    age = max(age_days or 0, 0)
    for index, (first, last, _, _) in enumerate(AGEING_BUCKETS):
        if age >= first and (last is None or age <= last):
            return index
    raise AssertionError(age)
