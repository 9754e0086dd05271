"""Delimited text tables with one header line: the platform's exports and bank CSV statements."""

from __future__ import annotations

import codecs
import io
import re

import pandas as pd

from tally import money
from tally.formats import FormatError, Parsed

HEADER_LINE = 1


def decode(data: bytes, encoding: str, file_name: str) -> str:
    if not data.strip():
        raise FormatError(file_name, "empty file")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FormatError(file_name, f"not valid {encoding} text ({exc.reason})", line) from None


def _line(frame: pd.DataFrame, mask: pd.Series) -> int:
    return int(frame.loc[mask, "line_no"].iloc[0])


def parse(data: bytes, config, file_name: str) -> Parsed:
    text = decode(data, config.encoding, file_name)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=config.delimiter, dtype=str, keep_default_na=False,
            skip_blank_lines=False, engine="c",
        )
    except pd.errors.ParserError as exc:
        # pandas says e.g. "Expected 10 fields in line 3, saw 11"
        found = re.search(r"line (\d+)", str(exc))
        raise FormatError(file_name, f"malformed row: {str(exc).split('error: ')[-1]}",
                          int(found.group(1)) if found else None) from None
    # Lineage: the header is line 1, so data row i (0-based) is line i + 2.
    frame.insert(0, "line_no", frame.index + HEADER_LINE + 1)
    headers = {str(h).strip(): h for h in frame.columns}
    missing = [h for h in config.columns.values() if h not in headers]
    if missing:
        raise FormatError(file_name, "missing column(s) in header", HEADER_LINE, missing[0])
    rows = frame[["line_no", *(headers[h] for h in config.columns.values())]]
    rows.columns = ["line_no", *config.columns]
    blank = rows[list(config.columns)].apply(lambda col: col.str.strip().eq("")).all(axis=1)
    rows = rows[~blank].copy()
    if rows.empty:
        raise FormatError(file_name, "no data rows after the header")

    for name in config.required:
        empty = rows[name].str.strip().eq("")
        if empty.any():
            raise FormatError(file_name, "required value is empty", _line(rows, empty), name)
    for name, allowed in config.allowed_values.items():
        wrong = ~rows[name].str.strip().isin(allowed)
        if wrong.any():
            value = rows.loc[wrong, name].iloc[0]
            raise FormatError(file_name, f"{value!r} is not one of {allowed}", _line(rows, wrong),
                              name)

    for name, spec in config.amounts.items():
        values = rows[name].str.strip()
        if spec.thousands:
            values = values.str.replace(spec.thousands, "", regex=False)
        if spec.blank_is_zero:
            values = values.mask(values.eq(""), "0")
        currencies = (rows[spec.currency_field].str.strip() if spec.currency_field
                      else pd.Series(spec.currency, index=rows.index))
        minor, bad = money.series_to_minor(values, currencies)
        if bad.any():
            first = bad.idxmax()
            raise FormatError(
                file_name,
                f"{rows.at[first, name]!r} is not an amount in {currencies.at[first]!r} "
                "(plain decimal, at most the currency's minor-unit digits)",
                int(rows.at[first, "line_no"]), name,
            )
        rows[f"{name}_minor"] = minor.astype("int64")

    checks = [_run_check(rows, check, file_name) for check in config.checks]
    return Parsed(rows=rows.reset_index(drop=True), checks=checks)


def _run_check(rows: pd.DataFrame, check: dict, file_name: str) -> str:
    (name, params), = check.items()
    if name == "running_balance":
        return _running_balance(rows, file_name, **params)
    raise FormatError(file_name, f"unknown self-check {name!r} in source configuration")


def _running_balance(rows, file_name, account, debit, credit, balance) -> str:
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
