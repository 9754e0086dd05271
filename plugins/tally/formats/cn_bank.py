"""Chinese bank statement exports (ICBC, CMB, CCB, ABC, BOC, BOCOM, ...): CSV or XLS tables with
a preamble, a header row, bookings and footer lines. One parser; every per-bank difference is in
the source configuration (docs/formats/bank_cn.md describes the options).

Every bank's rows come out in the same shape: `columns` maps a Tally column to the header text
in the file, or to null when the parser derives it (account from the preamble, direction and
amount from the amount style, currency from `options.currency`). Amounts are positive plain
decimals with `direction` 'credit' or 'debit'; dates are YYYY-MM-DD and times HH:MM:SS.
"""

from __future__ import annotations

import csv
import datetime
import itertools
import re

import pandas as pd

from tally import money
from tally.formats import FormatError, Parsed
from tally.formats.common import decode, finish_source, text_lines

CURRENCY_NAMES = {"人民币": "CNY", "美元": "USD", "港币": "HKD", "港元": "HKD", "欧元": "EUR",
                  "日元": "JPY", "英镑": "GBP", "澳元": "AUD", "加元": "CAD", "新加坡元": "SGD",
                  "瑞士法郎": "CHF", "澳门元": "MOP"}
# Every bank's rows have these columns (null in the configuration when the file lacks one).
COLUMNS = ("account", "booking_date", "booking_time", "bank_serial", "summary", "reference",
           "counterparty", "counterparty_account", "direction", "amount", "balance", "currency")
HEADER_SEARCH_ROWS = 50
DATE = re.compile(r"^(\d{4})[-/]?(\d{2})[-/]?(\d{2})(?:[ T](\d{1,2}:?\d{2}:?\d{2}))?$")
TIME = re.compile(r"^(\d{1,2}):?(\d{2}):?(\d{2})$")
DECIMAL = r"^[+-]?\d+(?:\.\d+)?$"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def parse(data: bytes, config, file_name: str) -> Parsed:
    opts = config.options
    lacking = [c for c in COLUMNS if c not in config.columns]
    if lacking:
        raise FormatError(file_name, f"source configuration lacks column(s) {lacking}")
    if opts.get("format", "csv") == "xls":
        records, encoding = _xls_lines(data, config, file_name)
    else:
        records, encoding = _csv_lines(data, config, file_name)
    head = list(itertools.islice(records, HEADER_SEARCH_ROWS))
    header_at, positions = _find_header(head, config, file_name)
    preamble = [_joined(cells) for _, cells in head[:header_at]]
    body, footers = _split_body(itertools.chain(head[header_at + 1:], records), positions,
                                config, file_name)
    rows = _normalise(body, preamble, config, file_name)
    rows = finish_source(rows, config, file_name)
    checks = []
    for check in config.checks:
        (name, params), = check.items()
        if name == "footer_totals":
            done = footer_totals(rows, footers, config, file_name, **(params or {}))
        elif name == "running_balance":
            done = running_balance(rows, file_name, **(params or {}))
        else:
            raise FormatError(file_name, f"unknown self-check {name!r} in source configuration")
        checks += [done] if done else []
    return Parsed(rows=rows, checks=checks or ["no footer or balance to check"],
                  encoding=encoding)


# ---- reading the grid of cells ---------------------------------------------------------------

def _csv_lines(data: bytes, config, file_name: str):
    """(physical line number where the record starts, cells) for each record, cells as in the
    file, as an iterator: a large file is not held twice."""
    text, encoding = decode(data, config.encoding, file_name)
    return _csv_records(text, config.delimiter, file_name), encoding


def _csv_records(text: str, delimiter: str, file_name: str):
    reader = csv.reader(text_lines(text), delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise FormatError(file_name, f"malformed CSV: {exc}", start) from None


def _xls_lines(data: bytes, config, file_name: str) -> tuple[list, str]:
    """An .xls (BIFF) workbook's sheet as (1-based sheet row, cell texts) for each row."""
    import xlrd  # only XLS sources need it

    if not data.startswith(OLE_MAGIC):
        raise FormatError(file_name, "not an .xls (BIFF/OLE2) workbook")
    override = None if config.encoding == "auto" else config.encoding
    try:
        book = xlrd.open_workbook(file_contents=data, encoding_override=override)
        wanted = config.options.get("sheet", 0)
        sheet = (book.sheet_by_name(wanted) if isinstance(wanted, str)
                 else book.sheet_by_index(wanted))
    except (xlrd.XLRDError, LookupError, ValueError, IndexError) as exc:
        raise FormatError(file_name, f"cannot read workbook: {exc}") from None
    rows = ((r + 1, [_xls_text(kind, value, book.datemode) for kind, value
                     in zip(sheet.row_types(r), sheet.row_values(r), strict=True)])
            for r in range(sheet.nrows))
    return rows, book.encoding


def _xls_text(kind: int, value, datemode: int) -> str:
    """A cell as text. Numeric cells are IEEE doubles in the file: repr() gives the shortest
    decimal that is exactly that double, so 16.78 reads as "16.78"; a value that is not a short
    decimal (0.30000000000000004) is then refused as an amount, never rounded."""
    import xlrd

    if kind == xlrd.XL_CELL_TEXT:
        return value
    if kind == xlrd.XL_CELL_NUMBER:
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if kind == xlrd.XL_CELL_DATE:
        y, m, d, hh, mm, ss = xlrd.xldate_as_tuple(value, datemode)
        day, clock = f"{y:04d}-{m:02d}-{d:02d}", f"{hh:02d}:{mm:02d}:{ss:02d}"
        return clock if y == 0 else day if (hh, mm, ss) == (0, 0, 0) else f"{day} {clock}"
    if kind == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if value else "FALSE"
    if kind == xlrd.XL_CELL_ERROR:
        return "#ERROR"
    return ""


def _squash(text: str) -> str:
    """Header text without any whitespace: '日 志 号' and padded '记账日   ' match configs."""
    return re.sub(r"\s+", "", text)


def _joined(cells: list[str]) -> str:
    """A line's non-empty cells, stripped and joined by TAB: what line patterns match."""
    return "\t".join(c.strip() for c in cells if c.strip())


# ---- header, body, footers -------------------------------------------------------------------

def _wanted_headers(config) -> dict[str, str]:
    """Tally column (or amount part) -> header text the file must have."""
    wanted = {name: header for name, header in config.columns.items() if header}
    amount = config.options.get("amount", {})
    if amount.get("style") == "split":
        wanted.update({"amount (credit)": amount["credit"], "amount (debit)": amount["debit"]})
    return wanted


def _find_header(lines: list, config, file_name: str) -> tuple[int, dict[str, int]]:
    """The header row: the first matching options.header_pattern, else the one (in the first
    rows) holding the most configured header names. All configured names must be there."""
    wanted = _wanted_headers(config)
    pattern = config.options.get("header_pattern")
    best, best_found = None, -1
    for i, (_, cells) in enumerate(lines):
        names = {_squash(c) for c in cells}
        found = sum(_squash(h) in names for h in wanted.values())
        if pattern and re.search(pattern, _joined(cells)) or not pattern and found > best_found:
            best, best_found = i, found
            if pattern or found == len(wanted):
                break
    if best is None or not pattern and best_found == 0:
        name, header = next(iter(wanted.items()))
        raise FormatError(file_name, f"no header row found (looked for {header!r})",
                          field_name=name)
    line_no, cells = lines[best]
    index = {}
    for i, cell in enumerate(cells):
        index.setdefault(_squash(cell), i)
    for name, header in wanted.items():
        if _squash(header) not in index:
            raise FormatError(file_name, f"column {header!r} not found in the header row",
                              line_no, name.split(" ")[0])
    return best, {name: index[_squash(h)] for name, h in wanted.items()}


def _split_body(lines, positions: dict[str, int], config, file_name: str):
    """Bookings below the header, minus blank lines, footers and lines to skip, as a frame of
    the wanted cells only (columns named as in `positions`) plus line_no; and the footers as
    (line_no, {name: cell}, match)."""
    opts = config.options
    footer = opts.get("footer") or {}
    footer_re = re.compile(footer["pattern"]) if footer.get("pattern") else None
    skip_res = [re.compile(p) for p in opts.get("skip_patterns", [])]
    names, wanted = list(positions), list(positions.values())
    date_at = positions.get("booking_date")
    line_nos, picked, footers = [], [], []
    for line_no, cells in lines:
        if not "".join(cells).strip():
            continue
        first = cells[date_at].strip() if date_at is not None and date_at < len(cells) else ""
        if not DATE.match(first):  # only a non-booking line can be a footer
            text = _joined(cells)
            found = footer_re.match(text) if footer_re else None
            if found:
                footers.append((line_no, dict(zip(names, _pick(cells, wanted), strict=True)),
                                found))
                continue
            if any(p.match(text) for p in skip_res):
                continue
        line_nos.append(line_no)
        picked.append(_pick(cells, wanted))
    if not picked:
        raise FormatError(file_name, "no data rows")
    body = pd.DataFrame(picked, columns=names, dtype=str)
    body.insert(0, "line_no", pd.Series(line_nos, dtype="int64"))
    return body, footers


def _pick(cells: list[str], wanted: list[int]) -> list[str]:
    return [cells[i] if i < len(cells) else "" for i in wanted]


# ---- normalising cells into Tally's columns --------------------------------------------------

def _normalise(body: pd.DataFrame, preamble: list[str], config,
               file_name: str) -> pd.DataFrame:
    opts = config.options
    empty = opts.get("empty_pattern", r"^-+$")

    def column(name: str) -> pd.Series:
        values = body[name].str.strip()
        return values.mask(values.str.match(empty), "")

    rows = body[["line_no"]].copy()
    for name, header in config.columns.items():
        rows[name] = column(name) if header else ""
    for name, pattern in opts.get("preamble_fields", {}).items():
        found = next((m.group(1).strip() for m in map(re.compile(pattern).search, preamble)
                      if m), "")
        rows[name] = rows[name].mask(rows[name].eq(""), found)
    _dates(rows, file_name)
    _currencies(rows, config, file_name)
    _amounts(rows, column, config, file_name)
    if config.columns.get("balance"):
        rows["balance"] = _decimal(rows, rows["balance"], "balance", config, file_name,
                                   config.columns["balance"])
    return rows


def _fail(rows: pd.DataFrame, wrong: pd.Series, file_name: str, field: str, message: str):
    first = wrong.idxmax()
    raise FormatError(file_name, message.format(value=rows.at[first, field]),
                      int(rows.at[first, "line_no"]), field)


def _once_per_value(values: pd.Series, func) -> pd.Series:
    """func applied once per distinct value: a statement has few distinct dates and times."""
    return values.map({value: func(value) for value in values.unique()})


def _iso_date(text: str) -> str | None:
    found = DATE.match(text)
    if not found:
        return None
    y, m, d, _ = found.groups()
    try:
        datetime.date(int(y), int(m), int(d))
    except ValueError:
        return None
    return f"{y}-{m}-{d}"


def _iso_time(text: str) -> str | None:
    found = TIME.match(text)
    if not found or int(found[1]) > 23 or int(found[2]) > 59 or int(found[3]) > 59:
        return None
    return f"{int(found[1]):02d}:{found[2]}:{found[3]}"


def _dates(rows: pd.DataFrame, file_name: str) -> None:
    """YYYYMMDD / YYYY-MM-DD (optionally with a time) -> YYYY-MM-DD; HHMMSS -> HH:MM:SS."""
    day = _once_per_value(rows["booking_date"], _iso_date)
    wrong = day.isna()
    if wrong.any():
        _fail(rows, wrong, file_name, "booking_date", "{value!r} is not a date")
    # A time in the date cell ("2025-01-01 10:00:00") fills an empty time column.
    within = _once_per_value(rows["booking_date"], lambda text: DATE.match(text)[4] or "")
    rows["booking_time"] = rows["booking_time"].mask(rows["booking_time"].eq(""), within)
    clock = _once_per_value(rows["booking_time"], lambda text: _iso_time(text) if text else "")
    wrong = clock.isna()
    if wrong.any():
        _fail(rows, wrong, file_name, "booking_time", "{value!r} is not a time of day")
    rows["booking_date"], rows["booking_time"] = day, clock


def _currencies(rows: pd.DataFrame, config, file_name: str) -> None:
    """人民币 -> CNY; a source without a currency column takes options.currency (CNY)."""
    names = {**CURRENCY_NAMES, **config.options.get("currency_names", {})}
    default = config.options.get("currency", "CNY")
    given = rows["currency"].mask(rows["currency"].eq(""), default)
    code = _once_per_value(given, lambda c: names.get(c, c.upper()))
    wrong = ~code.isin(money.EXPONENTS)
    if wrong.any():
        _fail(rows, wrong, file_name, "currency", "unknown currency {value!r}")
    rows["currency"] = code


def _decimal(rows: pd.DataFrame, values: pd.Series, field: str, config, file_name: str,
             header: str | None = None) -> pd.Series:
    """Amount text -> plain decimal ("1,234.50" -> "1234.50"); refuses anything else, naming
    the text as the file has it."""
    plain = values.str.replace(config.options.get("thousands", ","), "", regex=False)
    wrong = plain.ne("") & ~plain.str.match(DECIMAL)
    if wrong.any():
        first = wrong.idxmax()
        where = f" in column {header!r}" if header else ""
        raise FormatError(file_name, f"{values[first]!r}{where} is not a decimal amount",
                          int(rows.at[first, "line_no"]), field)
    return plain


def _amounts(rows: pd.DataFrame, column, config, file_name: str) -> None:
    """Fill `direction` ('credit'/'debit') and a positive `amount` from the file's amount
    style: one signed column, separate income/expense columns, or amount + 借/贷 marks."""
    spec = config.options.get("amount", {})
    style = spec.get("style")
    if style == "signed":
        signed = _decimal(rows, rows["amount"], "amount", config, file_name,
                          config.columns["amount"])
        rows["direction"] = signed.str.startswith("-").map({True: "debit", False: "credit"})
        rows["amount"] = signed.str.lstrip("+-")
    elif style == "split":
        credit = _decimal(rows, column("amount (credit)"), "amount", config, file_name,
                          spec["credit"])
        debit = _decimal(rows, column("amount (debit)"), "amount", config, file_name,
                         spec["debit"])
        signed = credit.str.startswith("-") | debit.str.startswith("-")
        if signed.any():
            _fail(rows, signed, file_name, "amount", "income and expense must be unsigned")
        both = _nonzero(credit) & _nonzero(debit)
        if both.any():
            _fail(rows, both, file_name, "amount", "both income and expense on one booking")
        is_debit = _nonzero(debit) | (~_nonzero(credit) & credit.eq("") & debit.ne(""))
        rows["direction"] = is_debit.map({True: "debit", False: "credit"})
        rows["amount"] = debit.where(is_debit, credit).str.lstrip("+")
        none = rows["amount"].eq("")
        if none.any():
            _fail(rows, none, file_name, "amount", "neither income nor expense is given")
    elif style == "marked":
        amount = _decimal(rows, rows["amount"], "amount", config, file_name,
                          config.columns["amount"])
        negative = amount.str.startswith("-")
        if negative.any():
            _fail(rows, negative, file_name, "amount",
                  "{value!r}: amounts must be unsigned where a 借/贷 column gives the direction")
        marks = rows["direction"]
        is_credit = marks.str.contains(spec["credit"], regex=True)
        is_debit = marks.str.contains(spec["debit"], regex=True)
        wrong = is_credit == is_debit
        if wrong.any():
            _fail(rows, wrong, file_name, "direction", "{value!r} is neither credit nor debit")
        rows["direction"] = is_credit.map({True: "credit", False: "debit"})
        rows["amount"] = amount.str.lstrip("+")
    else:
        raise FormatError(file_name, f"options.amount.style {style!r} must be signed, split "
                                     "or marked")


def _nonzero(values: pd.Series) -> pd.Series:
    return values.str.contains(r"[1-9]", regex=True)


# ---- self-checks -----------------------------------------------------------------------------

def footer_totals(rows: pd.DataFrame, footers: list, config, file_name: str) -> str | None:
    """Each footer (e.g. 人民币合计) states total credits and debits, of its currency when the
    pattern captures one; the bookings must add up to exactly that. The totals are the
    pattern's `credit`/`debit` groups, else the footer's cells under the income/expense
    columns."""
    spec = config.options.get("footer") or {}
    if not footers:
        if spec.get("required"):
            raise FormatError(file_name, f"no footer line matching {spec.get('pattern')!r}: "
                                         "the file may be cut short")
        return None
    names = {**CURRENCY_NAMES, **config.options.get("currency_names", {})}
    done = []
    for line_no, cells, found in footers:
        label = found.group(0).split("\t")[0]
        named = found.groupdict().get("currency")
        if named:
            currency = names.get(named, named.upper())
            mine = rows["currency"].eq(currency)
        elif rows["currency"].nunique() == 1:
            currency, mine = rows["currency"].iat[0], rows["currency"].notna()
        else:
            raise FormatError(file_name, f"footer {label!r} names no currency but the bookings "
                                         "are in several", line_no, "currency")
        for side in ("credit", "debit"):
            text = found.groupdict().get(side)
            if text is None:
                text = cells.get(f"amount ({side})", "")
            try:
                stated = money.to_minor(text.strip() or "0", currency,
                                        config.options.get("thousands", ","))
            except money.AmountError as exc:
                raise FormatError(file_name, f"footer {label!r}: {exc}", line_no,
                                  "amount") from None
            actual = int(rows.loc[mine & rows["direction"].eq(side), "amount_minor"].sum())
            if stated != actual:
                raise FormatError(
                    file_name,
                    f"footer {label!r} states {side}s of {money.format_minor(stated, currency)} "
                    f"but the bookings add up to {money.format_minor(actual, currency)}",
                    line_no, "amount")
        done.append(f"{label} (line {line_no})")
    return f"footer_totals: {', '.join(done)} equal the bookings"


def _order_of(rows: pd.DataFrame, order: str, file_name: str) -> list[str]:
    """Which way the file runs. A pinned order is verified against the booking dates; `auto`
    reads it from the dates (then times), and for a file whose bookings all share one moment
    tries both ways."""
    if order not in ("oldest_first", "newest_first", "auto"):
        raise FormatError(file_name, f"running_balance order {order!r} must be oldest_first, "
                                     "newest_first or auto")
    keys = rows["booking_date"]
    if order == "auto" and keys.nunique() == 1:
        keys = keys + " " + rows["booking_time"]
    if order == "auto":
        if keys.nunique() == 1:
            return ["oldest_first", "newest_first"]
        order = "oldest_first" if keys.iat[0] < keys.iat[-1] else "newest_first"
    wrong = keys.lt(keys.shift()) if order == "oldest_first" else keys.gt(keys.shift())
    if wrong.any():
        first = wrong.idxmax()
        raise FormatError(
            file_name, f"bookings are not {order.replace('_', ' ')}: "
                       f"{keys[first]} follows {keys[first - 1]}",
            int(rows.at[first, "line_no"]), "booking_date")
    return [order]


def running_balance(rows: pd.DataFrame, file_name: str, order: str = "auto") -> str | None:
    """Each booking moves the balance by its amount: previous balance + credit - debit =
    balance, where 'previous' is the line above in an oldest-first file and the line below
    in a newest-first one. Per account and currency."""
    if "balance_minor" not in rows:
        return None
    used = set()
    for group in _groups(rows):
        errors = []
        for way in _order_of(group, order, file_name):
            try:
                _roll(group, way, file_name)
                used.add(way.replace("_", " "))
                break
            except FormatError as exc:
                errors.append(exc)
        else:
            raise errors[0]
    return f"running_balance: {len(rows)} bookings roll forward ({', '.join(sorted(used))})"


def _groups(rows: pd.DataFrame) -> list[pd.DataFrame]:
    return [g.reset_index(drop=True) for _, g in rows.groupby(["account", "currency"],
                                                              sort=False)]


def _roll(rows: pd.DataFrame, order: str, file_name: str) -> None:
    chrono = rows if order == "oldest_first" else rows.iloc[::-1]
    balance = chrono["balance_minor"]
    move = chrono["amount_minor"].where(chrono["direction"].eq("credit"),
                                        -chrono["amount_minor"])
    expected = balance.shift() + move
    wrong = expected.notna() & expected.ne(balance)
    if wrong.any():
        first = wrong.idxmax()
        currency = rows.at[first, "currency"]
        raise FormatError(
            file_name,
            f"running balance breaks ({order.replace('_', ' ')}): expected "
            f"{money.format_minor(int(expected[first]), currency)}, file says "
            f"{money.format_minor(int(balance[first]), currency)}",
            int(rows.at[first, "line_no"]), "balance")
