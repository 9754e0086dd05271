"""Pure parsers: bytes + source configuration -> rows + self-checks. No I/O, no environment.

A source configuration names its parser (`parser: camt053`); the parser is the module
`tally.formats.<parser>` with a function `parse(data, config, file_name) -> Parsed`.
Parsers build text columns and a `line_no` per row, then call `common.finish` to check
required values and convert amounts to integer minor units in one shared way.

A parser may also offer `parse_pieces(data, config, file_name, chunk_rows)`: a generator that
yields `Piece`s (the main rows or a secondary table, at most about `chunk_rows` rows each, in
file order) and returns (checks, encoding) once the whole file has been read and self-checked.
The loader COPYs each piece as it comes, inside the file's one transaction, so a big file never
needs all its rows in memory; the checks that need the whole file carry their state from piece
to piece and raise at the end. For such a parser `parse` is the pieces put together, so both
ways accept and refuse exactly the same files. `parse_pieces` below serves every parser: one
without its own pieces yields its whole result as one piece per table.
"""

from __future__ import annotations

import importlib
from collections.abc import Generator
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


# Rows per piece handed to the loader: bounded memory per file, and few enough COPYs.
CHUNK_ROWS = 100_000


@dataclass
class Piece:
    """Some of a file's rows, in raw-table shape: the main rows (table None) or a secondary
    table's."""

    table: str | None
    rows: pd.DataFrame


class Pieces:
    """A file's pieces, read once, in order; `checks` and `encoding` are set when the last has
    been read (the whole file parsed and self-checked)."""

    def __init__(self, pieces: Generator[Piece, None, tuple[list[str], str | None]]):
        self._pieces = pieces
        self.checks: list[str] = []
        self.encoding: str | None = None

    def __iter__(self):
        self.checks, self.encoding = yield from self._pieces


def _module(config, file_name: str):
    if not config.parser.isidentifier():
        raise FormatError(file_name, f"no parser named {config.parser!r}")
    try:
        return importlib.import_module(f"tally.formats.{config.parser}")
    except ModuleNotFoundError:
        raise FormatError(file_name, f"no parser named {config.parser!r}") from None


def parse(data: bytes, config, file_name: str) -> Parsed:
    return _module(config, file_name).parse(data, config, file_name)


def parse_pieces(data: bytes, config, file_name: str, chunk_rows: int | None = None) -> Pieces:
    """The file's rows in pieces of about `chunk_rows` (CHUNK_ROWS), for the loader."""
    module = _module(config, file_name)
    if hasattr(module, "parse_pieces"):
        return Pieces(module.parse_pieces(data, config, file_name, chunk_rows or CHUNK_ROWS))
    return Pieces(_whole(module, data, config, file_name))


def _whole(module, data: bytes, config, file_name: str):
    parsed = module.parse(data, config, file_name)
    yield Piece(None, parsed.rows)
    for table, frame in parsed.tables.items():
        yield Piece(table, frame)
    return parsed.checks, parsed.encoding


def collect(pieces: Pieces, config) -> Parsed:
    """A parser's pieces put together as one Parsed (what `parse` returns)."""
    frames: dict[str | None, list[pd.DataFrame]] = {}
    for piece in pieces:
        frames.setdefault(piece.table, []).append(piece.rows)

    def joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return (parts[0] if len(parts) == 1 else pd.concat(parts)).reset_index(drop=True)

    return Parsed(rows=joined(frames.pop(None)),
                  tables={table: joined(parts) for table, parts in frames.items()},
                  checks=pieces.checks, encoding=pieces.encoding)
