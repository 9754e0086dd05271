"""Sample SWIFT MT940 statements, read back by tally.formats.mt940 with
include/sources/bank_mt940.yaml.

`render(bookings, openings, business_date)`: `bookings` has columns account, currency,
booked_at (naive local datetime64), bank_serial, reference, counterparty, direction
('credit'|'debit'), amount_minor (int64); `openings` is {account: opening balance in minor
units}. One statement per account (accounts in sorted order), entries ordered by booked_at then
bank_serial; closing = opening + credits - debits. Each entry is

    :61:<value YYMMDD><entry MMDD><C|D><amount>NTRF<reference or NONREF>//<bank_serial>
    :86:<counterparty>

The text is UTF-8 (SWIFT proper is ASCII: the counterparty is written as given, on one line).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tally import money


def amount_text(minor: pd.Series, currency: str) -> pd.Series:
    """Non-negative minor units -> MT940 amount with a decimal comma ("1234,50", JPY "1234,")."""
    exp = money.exponent(currency)
    values = minor.astype("int64")
    text = (values // 10**exp).astype(str) + ","
    if exp:
        text = text + (values % 10**exp).astype(str).str.zfill(exp)
    return text


def _balance(minor: int, when: date, currency: str) -> str:
    mark = "D" if minor < 0 else "C"
    return f"{mark}{when:%y%m%d}{currency}{amount_text(pd.Series([abs(minor)]), currency)[0]}"


def _text(column: pd.Series) -> pd.Series:
    return column.fillna("").astype(str)


def render(bookings: pd.DataFrame, openings: dict[str, int], business_date: date,
           **options) -> bytes:
    """Options: `statement_ref` prefix for :20: (default "STMT")."""
    prefix = options.get("statement_ref", "STMT")
    ordered = bookings.sort_values(["account", "booked_at", "bank_serial"], kind="stable")
    statements = []
    for number, (account, rows) in enumerate(ordered.groupby("account", sort=True), 1):
        currencies = rows["currency"].unique()
        if len(currencies) != 1:
            raise ValueError(f"account {account}: one statement holds one currency, got "
                             f"{list(currencies)}")
        currency = str(currencies[0])
        reference, serial = _text(rows["reference"]), _text(rows["bank_serial"])
        for name, column in (("reference", reference), ("bank_serial", serial)):
            if column.str.contains(r"//|[\r\n]", regex=True).any():
                raise ValueError(f"account {account}: a {name} holds '//' or a line break, "
                                 "which MT940 uses as separators")
        credit = rows["direction"].eq("credit")
        if not (credit | rows["direction"].eq("debit")).all():
            raise ValueError("direction must be 'credit' or 'debit'")
        minor = rows["amount_minor"].astype("int64")
        if (minor < 0).any():
            raise ValueError("amount_minor must be positive; direction gives the sign")
        opening = int(openings[account])
        closing = opening + int(np.where(credit, minor, -minor).sum())
        booked = pd.to_datetime(rows["booked_at"])
        if booked.isna().any():
            raise ValueError(f"account {account}: booked_at is missing")
        counterparty = _text(rows["counterparty"]).str.replace(r"[\r\n]+", " ", regex=True)
        entries = (":61:" + booked.dt.strftime("%y%m%d%m%d")
                   + pd.Series(np.where(credit, "C", "D"), index=rows.index)
                   + amount_text(minor, currency) + "NTRF"
                   + reference.mask(reference.eq(""), "NONREF") + "//" + serial
                   + "\n:86:" + counterparty)
        statements.append("\n".join([
            f":20:{prefix}{business_date:%Y%m%d}{number:02d}",
            f":25:{account}",
            f":28C:{number}/1",
            f":60F:{_balance(opening, business_date, currency)}",
            *([entries.str.cat(sep="\n")] if len(entries) else []),
            f":62F:{_balance(closing, business_date, currency)}",
            "-",
        ]))
    return ("\n".join(statements) + "\n").encode("utf-8")
