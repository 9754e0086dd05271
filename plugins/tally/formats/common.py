"""What every parser shares: decoding with encoding detection, and turning text columns into
checked rows with amounts in integer minor units."""

from __future__ import annotations

import codecs

import pandas as pd

from tally import money
from tally.formats import FormatError

# GB18030 is a superset of GBK and GB2312: Chinese bank and channel exports decode with it.
AUTO_ENCODINGS = ("utf-8", "gb18030")


def decode(data: bytes, encoding: str, file_name: str) -> tuple[str, str]:
    """Bytes to text. `encoding: auto` accepts UTF-8 with or without BOM, else GB18030.
    Returns (text, encoding used)."""
    if not data.strip():
        raise FormatError(file_name, "empty file")
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[len(codecs.BOM_UTF8):], "utf-8" if encoding == "auto" else encoding
    candidates = AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    error = None
    for candidate in candidates:
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError as exc:
            # Report the encoding that read furthest: its error is the real bad byte.
            error = exc if error is None or exc.start > error.start else error
    line = data[: error.start].count(b"\n") + 1
    raise FormatError(file_name, f"not valid {' or '.join(candidates)} text ({error.reason})",
                      line)


def text_lines(text: str):
    """The text's lines with their endings, one at a time, for csv.reader (io.StringIO would
    copy the whole text at four bytes a character)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def first_line(rows: pd.DataFrame, mask: pd.Series) -> int:
    return int(rows.loc[mask, "line_no"].iloc[0])


def finish(rows: pd.DataFrame, columns, required, allowed_values, amounts,
           file_name: str, timestamps: dict[str, str] | None = None) -> pd.DataFrame:
    """Check and type a table of text columns (plus line_no).

    - every column in `columns` must exist (missing ones become empty text);
    - `required` values must be non-empty; `allowed_values` must hold;
    - each amount column gets `<name>_minor` (bigint). A value with more decimals than its
      currency allows is refused, or, where the amount spec says `excess_precision: flag`,
      kept exactly as text, rounded half-even into `_minor` and flagged in `<name>_inexact`.
    """
    rows = rows.copy()
    for name in columns:
        if name not in rows:
            rows[name] = ""
        rows[name] = rows[name].fillna("").astype(str)
    if rows.empty:
        raise FormatError(file_name, "no data rows")
    for name in columns:
        # PostgreSQL text cannot hold NUL: refuse it here, naming where it is.
        nul = rows[name].str.contains("\x00", regex=False)
        if nul.any():
            raise FormatError(file_name, "contains a NUL character", first_line(rows, nul),
                              name)
    for name, fmt in (timestamps or {}).items():
        values = rows[name].str.strip()
        given = values.ne("")
        parsed = pd.to_datetime(values.where(given), format=fmt, errors="coerce")
        wrong = given & parsed.isna()
        if wrong.any():
            raise FormatError(file_name, f"{values[wrong].iloc[0]!r} is not a time in the form "
                              f"{fmt}", first_line(rows, wrong), name)
    for name in required:
        empty = rows[name].str.strip().eq("")
        if empty.any():
            raise FormatError(file_name, "required value is empty", first_line(rows, empty), name)
    for name, allowed in (allowed_values or {}).items():
        wrong = ~rows[name].str.strip().isin(allowed)
        if wrong.any():
            value = rows.loc[wrong, name].iloc[0]
            raise FormatError(file_name, f"{value!r} is not one of {allowed}",
                              first_line(rows, wrong), name)
    for name, spec in amounts.items():
        values = rows[name].str.strip()
        if spec.thousands:
            values = values.str.replace(spec.thousands, "", regex=False)
        if spec.decimal_comma:
            values = values.str.replace(",", ".", regex=False)
        if spec.blank_is_zero:
            values = values.mask(values.eq(""), "0")
        currencies = (rows[spec.currency_field].str.strip() if spec.currency_field
                      else pd.Series(spec.currency, index=rows.index))
        minor, bad, inexact = money.series_to_minor(
            values, currencies, allow_excess=spec.excess_precision == "flag")
        if bad.any():
            first = bad.idxmax()
            raise FormatError(
                file_name,
                f"{rows.at[first, name]!r} is not an amount in {currencies.at[first]!r} "
                "(plain decimal, at most the currency's minor-unit digits)",
                int(rows.at[first, "line_no"]), name,
            )
        rows[f"{name}_minor"] = minor.astype("int64")
        if spec.excess_precision == "flag":
            rows[f"{name}_inexact"] = inexact
    return rows


def records_frame(records: list[dict], columns) -> pd.DataFrame:
    """Text columns (absent values empty) plus line_no, in the configuration's order."""
    frame = pd.DataFrame(records, columns=["line_no", *columns], dtype=object)
    frame["line_no"] = frame["line_no"].astype("int64")
    return frame.fillna("")


def finish_source(rows: pd.DataFrame, config, file_name: str,
                  allow_empty: bool = False) -> pd.DataFrame:
    """finish() for a source's main rows, returning exactly line_no + config.raw_columns.
    allow_empty: no rows is no error (a statement of an idle account still has balances)."""
    if rows.empty and allow_empty:
        columns = {"line_no": "int64", **{name: "object" for name in config.columns},
                   **{f"{name}_minor": "int64" for name in config.amounts},
                   **{f"{name}_inexact": "bool" for name, spec in config.amounts.items()
                      if spec.excess_precision == "flag"}}
        empty = pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in columns.items()})
        return empty[["line_no", *config.raw_columns]]
    done = finish(rows, config.columns, config.required, config.allowed_values, config.amounts,
                  file_name, config.timestamps)
    return done[["line_no", *config.raw_columns]].reset_index(drop=True)


def finish_table(rows: pd.DataFrame, config, table: str, file_name: str) -> pd.DataFrame:
    spec = config.tables[table]
    done = finish(rows, spec.columns, spec.required, {}, spec.amounts, file_name)
    return done[["line_no", *spec.raw_columns]].reset_index(drop=True)
