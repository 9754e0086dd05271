"""The one money helper: decimal text <-> integer minor units. No floats anywhere.

Minor-unit exponents follow ISO 4217 for the currencies Tally meets; unknown codes are refused
rather than guessed.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

EXPONENTS = {
    "CNY": 2, "HKD": 2, "USD": 2, "EUR": 2, "GBP": 2, "SGD": 2, "AUD": 2, "CAD": 2, "CHF": 2,
    "JPY": 0, "KRW": 0, "SEK": 2, "NOK": 2, "DKK": 2, "RUB": 2, "NZD": 2, "TWD": 2, "MOP": 2,
    "PLN": 2, "HUF": 2, "CZK": 2, "THB": 2, "MYR": 2, "IDR": 2, "INR": 2, "PHP": 2, "VND": 0,
    "AED": 2, "SAR": 2, "ZAR": 2, "BRL": 2, "MXN": 2, "TRY": 2, "ILS": 2,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
    "DEM": 2,  # withdrawn (1999/2002) but still in old statements
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


def series_format(minor: pd.Series, currency: str, grouped: bool = False) -> pd.Series:
    """format_minor over a column: integer minor units -> decimal text ("-1,234.50" when
    grouped with thousands separators), keeping the column's index."""
    exp = exponent(currency)
    values = minor.astype("int64")
    whole, frac = values.abs() // 10**exp, values.abs() % 10**exp
    text = whole.map("{:,}".format) if grouped else whole.astype(str)
    if exp:
        text = text + "." + frac.astype(str).str.zfill(exp)
    return pd.Series(np.where(values < 0, "-", ""), index=minor.index) + text


def series_to_minor(values: pd.Series, currencies: pd.Series, allow_excess: bool = False
                    ) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Vectorised to_minor over string columns. Returns (minor as Int64, bad mask, inexact mask).

    A row is bad when its text is not a plain decimal or its currency is unknown. A row with
    more decimals than its currency allows is bad too, unless allow_excess: then it is rounded
    half-to-even into minor units and marked inexact (the caller keeps the exact text).
    Runs in Arrow's compute kernels: integers are built from the digit strings, never floats.
    """
    index = values.index
    text = pc.utf8_trim_whitespace(pa.array(values.astype("string"), type=pa.string()))
    parts = pc.extract_regex(text, r"^(?P<sign>[+-]?)(?P<whole>\d+)(?:\.(?P<frac>\d*))?$")
    parsed = pc.is_valid(parts).to_numpy(zero_copy_only=False)
    sign = pc.struct_field(parts, "sign")
    whole = pc.struct_field(parts, "whole")
    frac = pc.utf8_rtrim(pc.struct_field(parts, "frac"), "0")
    frac_len = pc.utf8_length(frac).to_numpy(zero_copy_only=False)
    # Each distinct currency's exponent looked up once (-1: unknown or missing), then taken.
    upper = pc.utf8_upper(pa.array(currencies.astype("string"), type=pa.string()))
    if isinstance(upper, pa.ChunkedArray):
        upper = upper.combine_chunks()
    codes = pc.dictionary_encode(upper)
    known_codes = [EXPONENTS.get(c, -1) if c is not None else -1
                   for c in codes.dictionary.to_pylist()]
    lookup = np.asarray([*known_codes, -1], dtype="int64")  # the last: a missing currency
    at = pc.fill_null(codes.indices, len(known_codes)).to_numpy(zero_copy_only=False)
    exp_all = lookup[at]
    known = exp_all >= 0
    exp_values = np.where(known, exp_all, 0)
    digits = pc.fill_null(pc.utf8_length(whole), 0).to_numpy(zero_copy_only=False)
    usable = parsed & known & (digits <= 15)
    inexact = usable & (np.nan_to_num(frac_len.astype("float64"), nan=0).astype("int64")
                        > exp_values)
    bad = ~usable | (inexact & (not allow_excess))
    minor = np.zeros(len(values), dtype="int64")
    exact = usable & ~inexact
    for e in np.unique(exp_values[exact]):
        rows = np.flatnonzero(exact & (exp_values == e))
        take = pa.array(rows)
        w = pc.cast(pc.take(whole, take), pa.int64()).to_numpy()
        f_text = pc.utf8_rpad(pc.fill_null(pc.take(frac, take), ""), width=int(e), padding="0")
        f = (pc.cast(f_text, pa.int64()).to_numpy() if e else np.zeros(len(rows), "int64"))
        magnitude = w * 10 ** int(e) + f
        negative = pc.equal(pc.take(sign, take), "-").to_numpy(zero_copy_only=False)
        minor[rows] = np.where(negative, -magnitude, magnitude)
    result = pd.Series(minor, index=index, dtype="Int64")
    result[pd.Series(~exact, index=index)] = pd.NA
    if allow_excess and inexact.any():
        for i in np.flatnonzero(inexact):
            result.iloc[i] = round_to_minor(str(values.iloc[i]), str(currencies.iloc[i]))
    return result, pd.Series(bad, index=index), pd.Series(inexact, index=index)


def round_to_minor(text: str, currency: str) -> int:
    """Half-to-even rounding of a decimal with too many digits; only for flagged values."""
    quantum = Decimal(1).scaleb(-exponent(currency))
    value = Decimal(clean(text)).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return int(value.scaleb(exponent(currency)))
