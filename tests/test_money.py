import random

import pandas as pd
import pytest

from tally import money


@pytest.mark.parametrize("text,currency,expected", [
    ("0", "CNY", 0), ("1", "CNY", 100), ("1.5", "CNY", 150), ("1.50", "CNY", 150),
    ("-0.01", "CNY", -1), ("+12.34", "CNY", 1234), ("1,234,567.89", "CNY", 123456789),
    ("1200", "JPY", 1200), ("92233720368547.75", "USD", 9223372036854775),
    ("0.10000", "CNY", 10),
])
def test_to_minor_is_exact(text, currency, expected):
    assert money.to_minor(text, currency) == expected


@pytest.mark.parametrize("text,currency", [
    ("0.001", "CNY"), ("1.5", "JPY"), ("abc", "CNY"), ("1e3", "CNY"), ("", "CNY"),
    ("1.00", "XXX"), ("--1", "CNY"),
])
def test_to_minor_refuses_what_it_cannot_represent(text, currency):
    with pytest.raises(money.AmountError):
        money.to_minor(text, currency)


def test_format_minor_round_trips():
    rng = random.Random(3)
    for _ in range(2000):
        minor = rng.randint(-10**15, 10**15)
        assert money.to_minor(money.format_minor(minor, "CNY"), "CNY") == minor
    assert money.format_minor(-5, "CNY") == "-0.05"
    assert money.format_minor(1200, "JPY") == "1200"


def test_vectorised_conversion_agrees_with_scalar():
    rng = random.Random(11)
    texts = [f"{rng.choice(['', '-'])}{rng.randint(0, 10**9)}.{rng.randint(0, 99):02d}"
             for _ in range(3000)] + ["0.001", "x", "5", "1.5"]
    currencies = ["CNY"] * 3002 + ["JPY", "JPY"]
    minor, bad, _ = money.series_to_minor(pd.Series(texts), pd.Series(currencies))
    for text, cur, value, is_bad in zip(texts, currencies, minor, bad, strict=True):
        try:
            expected = money.to_minor(text, cur)
        except money.AmountError:
            assert is_bad, text
        else:
            assert not is_bad and value == expected, text


def test_excess_precision_can_be_flagged_and_rounded_half_even_instead_of_refused():
    texts = pd.Series(["0.00600", "0.005", "0.015", "-0.025", "1.25"])
    minor, bad, inexact = money.series_to_minor(texts, pd.Series(["CNY"] * 5), allow_excess=True)
    assert not bad.any()
    assert minor.tolist() == [1, 0, 2, -2, 125]
    assert inexact.tolist() == [True, True, True, True, False]
    _, refused, _ = money.series_to_minor(texts, pd.Series(["CNY"] * 5))
    assert refused.tolist() == [True, True, True, True, False]
