"""Delimited text tables with one header line: the platform's exports and bank CSV statements.

Options (`options:` in the source configuration): `optional_columns`, columns a file may lack
(a column added to a format after files were written without it): missing from the header,
they read as empty. Preambles and footers of bank exports are handled by their own parsers.
"""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from tally.formats import FormatError, Parsed
from tally.formats.common import decode, finish_source, text_lines

HEADER_LINE = 1


def parse(data: bytes, config, file_name: str) -> Parsed:
    text, encoding = decode(data, config.encoding, file_name)
    try:
        # Bytes, not a StringIO: io.StringIO holds its text as 4 bytes a character (550 MB
        # for a 137 MB ledger); the UTF-8 bytes are the size of the file.
        frame = pd.read_csv(
            io.BytesIO(text.encode("utf-8")), encoding="utf-8", sep=config.delimiter,
            dtype=str, keep_default_na=False, skip_blank_lines=False, engine="c",
        )
    except pd.errors.ParserError as exc:
        # pandas says e.g. "Expected 10 fields in line 3, saw 11"
        found = re.search(r"line (\d+)", str(exc))
        raise FormatError(file_name, f"malformed row: {str(exc).split('error: ')[-1].strip()}",
                          int(found.group(1)) if found else None) from None
    # Lineage: the header is line 1, so data row i (0-based) is line i + 2.
    frame.insert(0, "line_no", frame.index + HEADER_LINE + 1)
    headers = {str(h).strip(): h for h in frame.columns}
    optional = set(config.options.get("optional_columns", []))
    missing = [h for c, h in config.columns.items() if h not in headers and c not in optional]
    if missing:
        raise FormatError(file_name, "missing column(s) in header", HEADER_LINE, missing[0])
    _check_field_counts(text, config.delimiter, file_name)
    present = {c: h for c, h in config.columns.items() if h in headers}
    rows = frame[["line_no", *(headers[h] for h in present.values())]]
    rows.columns = ["line_no", *present]
    rows = rows.assign(**{c: "" for c in config.columns if c not in present})[
        ["line_no", *config.columns]]
    blank = rows[list(config.columns)].apply(lambda col: col.str.strip().eq("")).all(axis=1)
    rows = finish_source(rows[~blank], config, file_name)
    checks = [run_check(rows, check, file_name) for check in config.checks]
    return Parsed(rows=rows, checks=checks, encoding=encoding)


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


def run_check(rows: pd.DataFrame, check: dict, file_name: str) -> str:
    (name, params), = check.items()
    checks = {"running_balance": running_balance, "sums_balance": sums_balance,
              "row_sum": row_sum}
    if name in checks:
        return checks[name](rows, file_name, **params)
    raise FormatError(file_name, f"unknown self-check {name!r} in source configuration")


def running_balance(rows, file_name, account, debit, credit, balance) -> str:
    """Each booking moves the balance by exactly its amount: prev + credit - debit = balance."""
    by_account = rows.groupby(account, sort=False)
    previous = by_account[f"{balance}_minor"].shift()
    expected = previous + rows[f"{credit}_minor"] - rows[f"{debit}_minor"]
    wrong = previous.notna() & expected.ne(rows[f"{balance}_minor"])
    if wrong.any():
        first = wrong.idxmax()
        raise FormatError(
            file_name,
            f"running balance breaks: expected {int(expected[first])} minor units, "
            f"file says {int(rows.at[first, f'{balance}_minor'])}",
            int(rows.at[first, "line_no"]), balance,
        )
    return f"running_balance: {len(rows)} bookings roll forward"


def sums_balance(rows, file_name, left, right, per) -> str:
    """A trial balance: the sum of the `left` amounts equals the sum of the `right` amounts,
    per currency (e.g. settlement: debits = credits + fees)."""
    minor = [f"{c}_minor" for c in left + right]
    totals = rows.groupby(per)[minor].sum()
    for currency, total in totals.iterrows():
        lhs = sum(int(total[f"{c}_minor"]) for c in left)
        rhs = sum(int(total[f"{c}_minor"]) for c in right)
        if lhs != rhs:
            raise FormatError(
                file_name,
                f"trial balance fails in {currency}: {' + '.join(left)} = {lhs} but "
                f"{' + '.join(right)} = {rhs} (minor units; difference {lhs - rhs})")
    return f"sums_balance: {' + '.join(left)} = {' + '.join(right)} in {len(totals)} currencies"


def row_sum(rows, file_name, total, parts) -> str:
    """Every row: total = sum of parts (e.g. closing = available + frozen)."""
    expected = sum(rows[f"{p}_minor"] for p in parts)
    wrong = expected.ne(rows[f"{total}_minor"])
    if wrong.any():
        first = wrong.idxmax()
        raise FormatError(
            file_name,
            f"{total} {int(rows.at[first, f'{total}_minor'])} is not {' + '.join(parts)} "
            f"= {int(expected[first])} (minor units)",
            int(rows.at[first, "line_no"]), total)
    return f"row_sum: {total} = {' + '.join(parts)} on {len(rows)} rows"
