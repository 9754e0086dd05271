"""Great Expectations expectations of our own, registered with GX when this module is imported
(gate.py imports it before it reads or writes the GX project).

GX's UnexpectedRowsExpectation resolves two metrics from its query: the rows (at most 200)
and COUNT(*) over the same query, so PostgreSQL runs every check query twice; at a million
transactions a day that is half of the gate's time. UnexpectedRowsCountedOnce runs it once: its
query carries its own count (`counted()` adds `count(*) over ()` to every row), and the rows
fetched say how many there are in all. A passing check returns no row, so nothing extra is
fetched either.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.core.result_format import ResultFormat
from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)

COUNT = "unexpected_row_count"


def counted(query: str) -> str:
    """The query with, on every row, how many rows it returns (a window over the result)."""
    return f"select q.*, count(*) over () as {COUNT} from ({query}) q"


class UnexpectedRowsCountedOnce(UnexpectedRowsExpectation):
    """Unexpected rows from a `counted()` query, which runs once: success when it returns none.
    Results have the shape of UnexpectedRowsExpectation's (observed_value = the count, details
    = the first rows), so Data Docs render it the same way."""

    metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.table",)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> dict:
        rows = metrics["unexpected_rows_query.table"]
        count = int(rows[0][COUNT]) if rows else 0
        result_format = self._get_result_format(runtime_configuration=runtime_configuration)
        if isinstance(result_format, dict):
            result_format = result_format.get("result_format", ResultFormat.SUMMARY)
        if result_format == ResultFormat.BOOLEAN_ONLY:
            return {"success": count == 0}
        result: dict = {"observed_value": count}
        if result_format == ResultFormat.COMPLETE:
            result["details"] = {"unexpected_rows": [
                {k: v for k, v in row.items() if k != COUNT} for row in rows]}
        return {"success": count == 0, "result": result}
