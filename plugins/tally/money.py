"""The one money helper: decimal text <-> integer minor units. No floats anywhere.

Minor-unit exponents follow ISO 4217 for the currencies Tally meets; unknown codes are refused
rather than guessed.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd

EXPONENTS = {
    "CNY": 2, "HKD": 2, "USD": 2, "EUR": 2, "GBP": 2, "SGD": 2, "AUD": 2, "CAD": 2, "CHF": 2,
    "JPY": 0, "KRW": 0, "SEK": 2, "NOK": 2, "DKK": 2, "RUB": 2, "NZD": 2, "TWD": 2, "MOP": 2,
}

_AMOUNT = re.compile(r"^([+-]?)(\d+)(?:\.(\d*))?$")


class AmountError(ValueError):
    pass


def exponent(currency: str) -> int:
    try:
        return EXPONENTS[currency.upper()]
    except KeyError:
        raise AmountError(f"unknown currency code {currency!r}") from None


def clean(text: str, thousands: str = ",") -> str:
    """Strip padding and thousands separators ("1,234.50 " -> "1234.50")."""
    return text.strip().replace(thousands, "") if thousands else text.strip()


def to_minor(text: str, currency: str, thousands: str = ",") -> int:
    """Exact conversion of a decimal amount to minor units; more decimals than the currency
    allows is an error, never a rounding."""
    value = clean(text, thousands)
    match = _AMOUNT.match(value)
    if not match:
        raise AmountError(f"not a decimal amount: {text!r}")
    sign, whole, frac = match.groups()
    frac = (frac or "").rstrip("0")
    exp = exponent(currency)
    if len(frac) > exp:
        raise AmountError(f"{text!r} has more decimals than {currency} allows ({exp})")
    minor = int(whole) * 10**exp + int(frac.ljust(exp, "0") or 0)
    return -minor if sign == "-" else minor


def format_minor(minor: int, currency: str) -> str:
    """Integer minor units back to a decimal string, for reports ("-1234" CNY -> "-12.34")."""
    exp = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def series_to_minor(values: pd.Series, currencies: pd.Series, allow_excess: bool = False
                    ) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Vectorised to_minor over string columns. Returns (minor as Int64, bad mask, inexact mask).

    A row is bad when its text is not a plain decimal or its currency is unknown. A row with
    more decimals than its currency allows is bad too, unless allow_excess: then it is rounded
    half-to-even into minor units and marked inexact (the caller keeps the exact text).
    """
    text = values.astype("string").str.strip()
    parts = text.str.extract(_AMOUNT.pattern)
    sign, whole, frac = parts[0], parts[1], parts[2].fillna("").str.rstrip("0")
    exp = currencies.astype("string").str.upper().map(EXPONENTS).astype("Int64")
    unparsable = (whole.isna() | exp.isna()).fillna(True).astype(bool)
    inexact = (~unparsable & (frac.str.len().astype("Int64") > exp.fillna(0))).fillna(False)
    inexact = inexact.astype(bool)
    bad = unparsable | (inexact if not allow_excess else False)
    exact = ~unparsable & ~inexact
    minor = pd.Series(pd.NA, index=values.index, dtype="Int64")
    if exact.any():
        e = exp[exact].astype("int64")
        scaled_frac = [f.ljust(n, "0") or "0" for f, n in zip(frac[exact], e, strict=True)]
        whole_int = whole[exact].astype("int64")
        frac_int = pd.Series(scaled_frac, index=whole_int.index).astype("int64")
        magnitude = whole_int * (10 ** e) + frac_int
        minor[exact] = magnitude.where(sign[exact] != "-", -magnitude)
    if allow_excess and inexact.any():
        for i in inexact[inexact].index:
            minor[i] = round_to_minor(text[i], currencies[i])
    return minor, bad, inexact


def round_to_minor(text: str, currency: str) -> int:
    """Half-to-even rounding of a decimal with too many digits; only for flagged values."""
    quantum = Decimal(1).scaleb(-exponent(currency))
    value = Decimal(clean(text)).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return int(value.scaleb(exponent(currency)))
