"""Delimited text tables with one header line: the platform's exports and bank CSV statements.

Options (`options:` in the source configuration): `optional_columns`, columns a file may lack
(a column added to a format after files were written without it): missing from the header,
they read as empty. Preambles and footers of bank exports are handled by their own parsers.

Rows come in pieces (`parse_pieces`, see tally.formats): a file of plain lines (no quotes, no
carriage returns, no empty lines, a header without repeated names: every export Tally
generates and the platform's own) is read by Arrow's streaming CSV reader, block by block, into
compact string columns; Arrow refuses a row with more or fewer fields than the header, and then
the exact reader below finds and names the line. Any other file is read by pandas' C reader and
its field counts checked line by line with the csv module, as a whole. Either way a data row's
line is its index + 2 (the header is line 1), and the self-checks carry their state (each
account's last balance, the running sums) from piece to piece.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from tally.formats import CHUNK_ROWS, FormatError, Piece, collect
from tally.formats import parse_pieces as _pieces
from tally.formats.common import decode, finish_source, text_lines

HEADER_LINE = 1
# Bytes per block of Arrow's streaming reader: about 100 000 rows of a ledger export.
BLOCK_BYTES = 16 * 2**20


def parse(data: bytes, config, file_name: str):
    return collect(_pieces(data, config, file_name), config)


def parse_pieces(data: bytes, config, file_name: str, chunk_rows: int = CHUNK_ROWS):
    """Pieces of the file's rows, checked; returns (checks, encoding)."""
    text, encoding = decode(data, config.encoding, file_name)
    if encoding == "utf-8":  # the bytes are the text already (without a BOM)
        payload = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    else:
        payload = text.encode("utf-8")
    if _plain(payload):
        del text  # Arrow reads the bytes
        frames = _plain_frames(payload, config, file_name, chunk_rows)
    else:
        frames = _exact_frames(text, payload, config, file_name, chunk_rows)
    checks = [_checker(check, file_name) for check in config.checks]
    total, header_seen = 0, False
    for frame in frames:
        if not header_seen:
            _check_header(frame, config, file_name)
            header_seen = True
        rows = _rows(frame, config, file_name)
        if rows is None:
            continue
        for check in checks:
            check.feed(rows)
        total += len(rows)
        yield Piece(None, rows)
    if not total:
        raise FormatError(file_name, "no data rows")
    return [check.done(total) for check in checks], encoding


def _plain(payload: bytes) -> bool:
    return (b'"' not in payload and b"\r" not in payload and b"\n\n" not in payload
            and not payload.startswith(b"\n"))


def _plain_frames(payload: bytes, config, file_name: str, chunk_rows: int):
    """Arrow's streaming reader over a plain file: frames of text cells (empty cells are ""),
    indexed by data row, header names as columns."""
    first = payload.split(b"\n", 1)[0].decode("utf-8")
    names = first.split(config.delimiter)
    if len(set(names)) != len(names):  # pandas tells repeated names apart: read exactly
        yield from _exact_frames(payload.decode("utf-8"), payload, config, file_name,
                                 chunk_rows)
        return
    try:
        reader = pa_csv.open_csv(
            io.BytesIO(payload),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1,
                                            block_size=BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(delimiter=config.delimiter, quote_char=False,
                                              double_quote=False, escape_char=False,
                                              newlines_in_values=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:  # the first block is malformed
        _refused(payload, config, file_name)
    yield from _arrow_frames(reader, payload, config, file_name, chunk_rows)


def _refused(payload: bytes, config, file_name: str):
    """Arrow refused a row (more or fewer fields than the header): the exact reading names
    the line, as for a file that is not plain."""
    text = payload.decode("utf-8")
    _check_header(_read_exact(text, payload, config, file_name), config, file_name)
    _check_field_counts(text, config.delimiter, file_name)
    raise FormatError(file_name, "malformed rows (the CSV reader refused the file)")


def _arrow_frames(reader, payload: bytes, config, file_name: str, chunk_rows: int):
    start = 0
    try:
        for batch in reader:
            for offset in range(0, batch.num_rows, chunk_rows):
                part = batch.slice(offset, chunk_rows)
                frame = part.to_pandas()
                frame.columns = list(batch.schema.names)
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield frame
    except pa.ArrowInvalid:
        _refused(payload, config, file_name)
    if start == 0:  # a header without rows: one empty frame, so the header is checked
        yield pd.DataFrame({name: pd.Series(dtype="str") for name in reader.schema.names})


def _read_exact(text: str, payload: bytes, config, file_name: str) -> pd.DataFrame:
    try:
        # Bytes, not a StringIO: io.StringIO holds its text as 4 bytes a character (550 MB
        # for a 137 MB ledger); the UTF-8 bytes are the size of the file.
        return pd.read_csv(
            io.BytesIO(payload), encoding="utf-8", sep=config.delimiter,
            dtype=str, keep_default_na=False, skip_blank_lines=False, engine="c",
        )
    except pd.errors.ParserError as exc:
        # pandas says e.g. "Expected 10 fields in line 3, saw 11"
        found = re.search(r"line (\d+)", str(exc))
        raise FormatError(file_name, f"malformed row: {str(exc).split('error: ')[-1].strip()}",
                          int(found.group(1)) if found else None) from None


def _exact_frames(text: str, payload: bytes, config, file_name: str, chunk_rows: int):
    """pandas' C reader over the whole file, field counts checked by the csv module."""
    frame = _read_exact(text, payload, config, file_name)
    _check_header(frame, config, file_name)
    _check_field_counts(text, config.delimiter, file_name)
    for start in range(0, max(len(frame), 1), chunk_rows):
        yield frame.iloc[start:start + chunk_rows]


def _check_header(frame: pd.DataFrame, config, file_name: str) -> None:
    headers = {str(h).strip() for h in frame.columns}
    optional = set(config.options.get("optional_columns", []))
    missing = [h for c, h in config.columns.items() if h not in headers and c not in optional]
    if missing:
        raise FormatError(file_name, "missing column(s) in header", HEADER_LINE, missing[0])


def _rows(frame: pd.DataFrame, config, file_name: str) -> pd.DataFrame | None:
    """A frame's data rows in raw-table shape, checked; None when all of them are blank."""
    # Lineage: the header is line 1, so data row i (0-based) is line i + 2.
    frame = frame.copy()
    frame.insert(0, "line_no", frame.index + HEADER_LINE + 1)
    headers = {str(h).strip(): h for h in frame.columns}
    present = {c: h for c, h in config.columns.items() if h in headers}
    rows = frame[["line_no", *(headers[h] for h in present.values())]]
    rows.columns = ["line_no", *present]
    rows = rows.assign(**{c: "" for c in config.columns if c not in present})[
        ["line_no", *config.columns]]
    blank = rows[list(config.columns)].apply(lambda col: col.str.strip().eq("")).all(axis=1)
    if blank.all():
        return None
    return finish_source(rows[~blank], config, file_name)


def _check_field_counts(text: str, delimiter: str, file_name: str) -> None:
    """pandas pads a short row with empty cells: a row cut short (a truncated file) would load.
    Every non-blank row must have as many fields as the header."""
    reader = csv.reader(text_lines(text), delimiter=delimiter)
    expected = None
    for fields in reader:
        if not fields or not any(f.strip() for f in fields):
            continue
        if expected is None:
            expected = len(fields)
        elif len(fields) != expected:
            raise FormatError(file_name, f"row has {len(fields)} fields, the header has "
                              f"{expected}: the row or the file is cut short", reader.line_num)


# ---- self-checks, fed piece by piece -----------------------------------------------------

def _checker(check: dict, file_name: str):
    (name, params), = check.items()
    checks = {"running_balance": RunningBalance, "sums_balance": SumsBalance,
              "row_sum": RowSum}
    if name in checks:
        return checks[name](file_name, **params)
    raise FormatError(file_name, f"unknown self-check {name!r} in source configuration")


def run_check(rows: pd.DataFrame, check: dict, file_name: str) -> str:
    """One self-check over a whole table of rows."""
    checker = _checker(check, file_name)
    checker.feed(rows)
    return checker.done(len(rows))


class RunningBalance:
    """Each booking moves the balance by exactly its amount: prev + credit - debit = balance,
    per account; each account's last balance carries into the next piece."""

    def __init__(self, file_name, account, debit, credit, balance):
        self.file_name, self.account = file_name, account
        self.debit, self.credit, self.balance = debit, credit, balance
        self.last: dict[str, int] = {}

    def feed(self, rows: pd.DataFrame) -> None:
        balance = rows[f"{self.balance}_minor"]
        by_account = rows.groupby(self.account, sort=False)
        previous = by_account[f"{self.balance}_minor"].shift()
        if self.last:
            first = previous.isna()
            carried = rows.loc[first, self.account].map(self.last)
            previous = previous.where(~first, carried)
        expected = previous + rows[f"{self.credit}_minor"] - rows[f"{self.debit}_minor"]
        wrong = previous.notna() & expected.ne(balance)
        if wrong.any():
            first = wrong.idxmax()
            raise FormatError(
                self.file_name,
                f"running balance breaks: expected {int(expected[first])} minor units, "
                f"file says {int(rows.at[first, f'{self.balance}_minor'])}",
                int(rows.at[first, "line_no"]), self.balance,
            )
        last = by_account[f"{self.balance}_minor"].last()
        self.last.update(zip(last.index, (int(v) for v in last), strict=True))

    def done(self, total: int) -> str:
        return f"running_balance: {total} bookings roll forward"


class SumsBalance:
    """A trial balance: the sum of the `left` amounts equals the sum of the `right` amounts,
    per currency (e.g. settlement: debits = credits + fees)."""

    def __init__(self, file_name, left, right, per):
        self.file_name, self.left, self.right, self.per = file_name, left, right, per
        self.totals: pd.DataFrame | None = None

    def feed(self, rows: pd.DataFrame) -> None:
        minor = [f"{c}_minor" for c in self.left + self.right]
        totals = rows.groupby(self.per)[minor].sum()
        self.totals = totals if self.totals is None else self.totals.add(totals, fill_value=0)

    def done(self, total: int) -> str:
        totals = self.totals.sort_index()
        for currency, sums in totals.iterrows():
            lhs = sum(int(sums[f"{c}_minor"]) for c in self.left)
            rhs = sum(int(sums[f"{c}_minor"]) for c in self.right)
            if lhs != rhs:
                raise FormatError(
                    self.file_name,
                    f"trial balance fails in {currency}: {' + '.join(self.left)} = {lhs} but "
                    f"{' + '.join(self.right)} = {rhs} (minor units; difference {lhs - rhs})")
        return (f"sums_balance: {' + '.join(self.left)} = {' + '.join(self.right)} in "
                f"{len(totals)} currencies")


class RowSum:
    """Every row: total = sum of parts (e.g. closing = available + frozen)."""

    def __init__(self, file_name, total, parts):
        self.file_name, self.total, self.parts = file_name, total, parts

    def feed(self, rows: pd.DataFrame) -> None:
        expected = sum(rows[f"{p}_minor"] for p in self.parts)
        wrong = expected.ne(rows[f"{self.total}_minor"])
        if wrong.any():
            first = wrong.idxmax()
            raise FormatError(
                self.file_name,
                f"{self.total} {int(rows.at[first, f'{self.total}_minor'])} is not "
                f"{' + '.join(self.parts)} = {int(expected[first])} (minor units)",
                int(rows.at[first, "line_no"]), self.total)

    def done(self, total: int) -> str:
        return f"row_sum: {self.total} = {' + '.join(self.parts)} on {total} rows"
