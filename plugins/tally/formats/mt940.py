"""SWIFT MT940 customer statements: tagged text, one or more statements per file.

A statement starts with :20: and holds :25: account, :28C: (or :28:) statement number,
:60F:/:60M: opening balance, :61: entries each optionally followed by :86: text, :62F:/:62M:
closing balance, and optional :64: (closing available) and :65: (forward available). Lines
before the first :20: (block headers such as "{1:...}{2:...}{4:", "940", a BIC) and trailer
lines starting with "-" ("-", "-}", "-XXX") are envelope, not data.

Main rows are the :61: entries (line_no = the :61: line), amounts positive with a `direction`:
C and RD (reversal of a debit) are credits, D and RC (reversal of a credit) are debits. The
secondary table `statements` has one row per statement (line_no = its :20: line) with signed
balances. See docs/formats/bank_mt940.md.

Options: `info_join` (default "\\n"): how the lines of a multi-line :86: (and consecutive :86:
tags of one entry) are joined. Banks that wrap text at a fixed width mid-word read better
with "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from tally import money
from tally.formats import FormatError, Parsed
from tally.formats.common import decode, finish_source, finish_table, records_frame

TAG = re.compile(r"^:(?P<tag>\d{2}[A-Z]?|NS):(?P<value>.*)$")
STATEMENT_TAGS = {"20", "21", "25", "28", "28C", "60F", "60M", "61", "86", "62F", "62M", "64",
                  "65", "NS", "13", "13D", "34F", "90D", "90C"}
BALANCE = re.compile(r"^(?P<mark>[CD])(?P<date>\d{6})(?P<currency>[A-Z]{3})(?P<amount>.*)$")
# value date, [entry date], mark, [funds code], amount, transaction type, references
ENTRY = re.compile(r"^(?P<value_date>\d{6})(?P<entry_date>\d{4})?(?P<mark>RC|RD|C|D)"
                   r"(?P<funds>[A-Z])?(?P<amount>.+?)(?P<type>[NFS][A-Z0-9 ]{3})(?P<rest>.*)$")
AMOUNT = re.compile(r"^\d+,\d*$")  # "9," and "11,8" are valid: decimal comma, no thousands
DIRECTIONS = {"C": "credit", "RD": "credit", "D": "debit", "RC": "debit"}
SOFT_HYPHEN = "\u00ad"


@dataclass
class _Field:
    tag: str
    line: int
    lines: list[str]

    @property
    def value(self) -> str:
        return self.lines[0]


@dataclass
class _Statement:
    line: int
    fields: list[_Field] = field(default_factory=list)


def _statements(text: str, file_name: str) -> list[_Statement]:
    """Split the file into statements of tagged fields with their continuation lines."""
    statements: list[_Statement] = []
    current: _Statement | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("-"):  # trailer: SWIFT text lines never start with "-"
            current = None
            continue
        tag = TAG.match(line)
        if tag and tag["tag"] == "20":
            current = _Statement(number)
            statements.append(current)
        if current is None:
            if tag and tag["tag"] in STATEMENT_TAGS:
                raise FormatError(file_name, f":{tag['tag']}: outside a statement (a statement "
                                  "starts with :20:)", number, tag["tag"])
            continue  # envelope: block headers, "940", the sender's BIC
        if tag:
            current.fields.append(_Field(tag["tag"], number, [tag["value"]]))
        elif current.fields:
            current.fields[-1].lines.append(line)
    return statements


def _date(text: str, file_name: str, line: int, name: str) -> date:
    """YYMMDD; years 70-99 are 19xx, 00-69 are 20xx."""
    try:
        yy = int(text[:2])
        return date(1900 + yy if yy >= 70 else 2000 + yy, int(text[2:4]), int(text[4:6]))
    except ValueError:
        raise FormatError(file_name, f"{text!r} is not a date (YYMMDD)", line, name) from None


def _entry_date(mmdd: str, value: date, file_name: str, line: int) -> date:
    """MMDD of the booking: the year that puts it nearest the value date (across New Year)."""
    candidates = []
    for year in (value.year - 1, value.year, value.year + 1):
        try:
            candidates.append(date(year, int(mmdd[:2]), int(mmdd[2:])))
        except ValueError:
            continue
    if not candidates:
        raise FormatError(file_name, f"{mmdd!r} is not a date (MMDD)", line, "entry_date")
    return min(candidates, key=lambda d: abs((d - value).days))


def _amount(text: str, file_name: str, line: int, name: str) -> str:
    if not AMOUNT.match(text):
        raise FormatError(file_name, f"{text!r} is not an MT940 amount (digits with one "
                          "decimal comma, e.g. 11,8)", line, name)
    return text


def _balance(f: _Field, name: str, date_name: str, file_name: str) -> dict:
    found = BALANCE.match(f.value.strip())
    if not found:
        raise FormatError(file_name, f":{f.tag}: {f.value!r} is not mark (C/D), date (YYMMDD), "
                          "currency and amount", f.line, name)
    amount = _amount(found["amount"], file_name, f.line, name)
    try:
        money.exponent(found["currency"])
    except money.AmountError as exc:
        raise FormatError(file_name, str(exc), f.line, "currency") from None
    return {"tag": f.tag, "line": f.line, "code": f.tag[-1:] if f.tag[:2] in ("60", "62") else "",
            "date": _date(found["date"], file_name, f.line, date_name).isoformat(),
            "currency": found["currency"],
            "signed": ("-" if found["mark"] == "D" else "") + amount}


def _entry(f: _Field, file_name: str) -> dict:
    found = ENTRY.match(f.value)
    if not found:
        if not re.match(r"^\d{6}", f.value):
            raise FormatError(file_name, f"{f.value[:6]!r} is not a value date (YYMMDD)",
                              f.line, "value_date")
        raise FormatError(file_name, f":61: {f.value!r} is not value date, [entry date], mark "
                          "(C, D, RC, RD), [funds code], amount, transaction type, reference",
                          f.line, "mark")
    value = _date(found["value_date"], file_name, f.line, "value_date")
    entry = (_entry_date(found["entry_date"], value, file_name, f.line)
             if found["entry_date"] else None)
    customer, _, bank = found["rest"].partition("//")
    return {
        "line_no": f.line, "value_date": value.isoformat(),
        "value_date_text": found["value_date"],
        "entry_date": entry.isoformat() if entry else "",
        "entry_date_text": found["entry_date"] or "",
        "mark": found["mark"], "direction": DIRECTIONS[found["mark"]],
        "reversal": "true" if found["mark"].startswith("R") else "false",
        "funds_code": found["funds"] or "",
        "amount": _amount(found["amount"], file_name, f.line, "amount"),
        "transaction_type": found["type"], "customer_reference": customer.strip(),
        "bank_reference": bank.strip(), "supplementary": "\n".join(f.lines[1:]).strip(),
        "info": "",
    }


def _read_statement(stmt: _Statement, file_name: str, join: str) -> tuple[dict, list[dict], int]:
    """One statement's row, its entry rows and the line of its closing balance."""
    row = {"line_no": stmt.line, "statement_ref": "", "related_ref": "", "account": "",
           "statement_no": "", "info": ""}
    entries: list[dict] = []
    opening = closing = None
    info: list[str] = []
    for f in stmt.fields:
        tag = f.tag
        if tag in ("20", "21", "25", "28C", "28"):
            key = {"20": "statement_ref", "21": "related_ref", "25": "account"}.get(
                tag, "statement_no")
            row[key] = " ".join(s.strip() for s in f.lines).strip()
        elif tag in ("60F", "60M"):
            if opening is not None:
                raise FormatError(file_name, "second opening balance in one statement", f.line,
                                  "opening_balance")
            opening = _balance(f, "opening_balance", "opening_date", file_name)
        elif tag == "61":
            if opening is None or closing is not None:
                where = "before the opening" if opening is None else "after the closing"
                raise FormatError(file_name, f":61: entry {where} balance", f.line, "61")
            entries.append(_entry(f, file_name))
        elif tag == "86":
            # Between entries it describes the last :61: (one or several :86: tags); before
            # the first entry or after the closing balance it is the statement's.
            text = join.join(f.lines)
            if entries and closing is None:
                entries[-1]["info"] = join.join(filter(None, (entries[-1]["info"], text)))
            else:
                info.append(text)
        elif tag in ("62F", "62M"):
            if opening is None or closing is not None:
                raise FormatError(file_name, f":{tag}: without a preceding opening balance or "
                                  "after another closing balance", f.line, "closing_balance")
            closing = _balance(f, "closing_balance", "closing_date", file_name)
        elif tag in ("64", "65"):
            name = "closing_available" if tag == "64" else "forward_available"
            if not row.get(name):  # :65: may repeat per future date: the first is kept
                found = _balance(f, name, f"{name}_date", file_name)
                row[name], row[f"{name}_date"] = found["signed"], found["date"]
                if found["currency"] != (opening or {}).get("currency"):
                    raise FormatError(file_name, f":{tag}: currency {found['currency']} differs "
                                      "from the opening balance's", f.line, name)
    for needed, name, tags in ((row["account"], "account", ":25:"),
                               (opening, "opening_balance", ":60F: or :60M:"),
                               (closing, "closing_balance", ":62F: or :62M:")):
        if not needed:
            raise FormatError(file_name, f"statement {row['statement_ref']!r} has no {tags}",
                              stmt.line, name)
    if closing["currency"] != opening["currency"]:
        raise FormatError(file_name, f"closing balance in {closing['currency']}, opening in "
                          f"{opening['currency']}", closing["line"], "closing_balance")
    row.update(currency=opening["currency"], info=join.join(info), entry_count=str(len(entries)),
               opening_code=opening["code"], opening_date=opening["date"],
               opening_balance=opening["signed"], closing_code=closing["code"],
               closing_date=closing["date"], closing_balance=closing["signed"])
    for entry in entries:
        entry.update(statement_ref=row["statement_ref"], account=row["account"],
                     statement_no=row["statement_no"], currency=row["currency"])
    return row, entries, closing["line"]


def read(data: bytes, config, file_name: str) -> tuple[Parsed, dict]:
    """Rows and statements, typed but not yet self-checked (parse() checks them)."""
    text, encoding = decode(data, config.encoding, file_name)
    text = text.replace(SOFT_HYPHEN, "")  # invisible hyphenation hints some banks leave in
    join = config.options.get("info_join", "\n")
    statements = _statements(text, file_name)
    if not statements:
        raise FormatError(file_name, "no MT940 statement (no :20: line)")
    rows, table, owner, closing_lines = [], [], [], []
    for index, stmt in enumerate(statements):
        row, entries, closing_line = _read_statement(stmt, file_name, join)
        table.append(row)
        rows += entries
        owner += [index] * len(entries)
        closing_lines.append(closing_line)
    frame = records_frame(rows, config.columns)
    parsed = Parsed(
        rows=finish_source(frame, config, file_name, allow_empty=True),
        tables={"statements": finish_table(
            records_frame(table, config.tables["statements"].columns),
            config, "statements", file_name)},
        encoding=encoding,
    )
    return parsed, {"statement": pd.Series(owner, dtype="int64"), "closing_lines": closing_lines}


def parse(data: bytes, config, file_name: str) -> Parsed:
    parsed, meta = read(data, config, file_name)
    parsed.checks = check(parsed, meta, file_name)
    return parsed


def check(parsed: Parsed, meta: dict, file_name: str) -> list[str]:
    """Per statement: opening + credits - debits = closing, in minor units."""
    rows, statements = parsed.rows, parsed.tables["statements"]
    signed = rows["amount_minor"].where(rows["direction"].eq("credit"), -rows["amount_minor"])
    credits = rows["amount_minor"].where(rows["direction"].eq("credit"), 0)
    moved = pd.DataFrame({"statement": meta["statement"], "signed": signed, "credits": credits})
    by_statement = moved.groupby("statement").sum().reindex(statements.index, fill_value=0)
    for s, stmt in statements.iterrows():
        opening, closing = int(stmt["opening_balance_minor"]), int(stmt["closing_balance_minor"])
        credit = int(by_statement.at[s, "credits"])
        debit = credit - int(by_statement.at[s, "signed"])
        if opening + credit - debit != closing:
            raise FormatError(
                file_name,
                f"statement {stmt['statement_ref']!r} (:20: at line {stmt['line_no']}) does not "
                f"add up: opening {opening} + credits {credit} - debits {debit} = "
                f"{opening + credit - debit} minor units {stmt['currency']}, but "
                f":62{stmt['closing_code']}: says {closing}",
                meta["closing_lines"][s], "closing_balance")
    return [f"mt940 balances: {len(statements)} statement(s) roll forward from :60: to :62:"]
