"""Pure parsers: bytes + source configuration -> rows + self-checks. No I/O, no environment."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


class FormatError(ValueError):
    """A file that cannot be accepted. Names the file, line and field where it went wrong."""

    def __init__(self, file_name: str, message: str, line: int | None = None,
                 field_name: str | None = None):
        self.file_name, self.line, self.field_name, self.message = (
            file_name, line, field_name, message)
        where = [file_name]
        if line is not None:
            where.append(f"line {line}")
        if field_name is not None:
            where.append(f"field {field_name!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class Parsed:
    """Rows in raw-table shape (line_no first), and the self-checks the file passed."""

    rows: pd.DataFrame
    checks: list[str] = field(default_factory=list)


def parse(data: bytes, config, file_name: str) -> Parsed:
    from tally.formats import csv_table

    parsers = {"csv_table": csv_table.parse}
    try:
        parser = parsers[config.parser]
    except KeyError:
        raise FormatError(file_name, f"no parser named {config.parser!r}") from None
    return parser(data, config, file_name)
