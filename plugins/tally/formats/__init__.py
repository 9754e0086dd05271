"""Pure parsers: bytes + source configuration -> rows + self-checks. No I/O, no environment.

A source configuration names its parser (`parser: camt053`); the parser is the module
`tally.formats.<parser>` with a function `parse(data, config, file_name) -> Parsed`.
Parsers build text columns and a `line_no` per row, then call `common.finish` to check
required values and convert amounts to integer minor units in one shared way.
"""

from __future__ import annotations

import importlib
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
    """Rows in raw-table shape (line_no first, then config.raw_columns), any secondary tables
    declared by the configuration (e.g. statement balances), and the self-checks passed."""

    rows: pd.DataFrame
    checks: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    encoding: str | None = None


def parse(data: bytes, config, file_name: str) -> Parsed:
    if not config.parser.isidentifier():
        raise FormatError(file_name, f"no parser named {config.parser!r}")
    try:
        module = importlib.import_module(f"tally.formats.{config.parser}")
    except ModuleNotFoundError:
        raise FormatError(file_name, f"no parser named {config.parser!r}") from None
    return module.parse(data, config, file_name)
