"""MT940 statements: the public samples, bad inputs, and render -> parse round trips."""

import dataclasses
from datetime import date

import numpy as np
import pandas as pd
import pytest

from tally import config, formats, money, sources
from tally.devtools.samples import mt940 as mt940_sample
from tally.formats import mt940

CONFIG = sources.load_all(config.load())["bank_mt940"]
SAMPLES = config.load().project_dir.parent / "shared" / "samples" / "mt940"
# ISO 4217 minor units of the samples' currencies that Tally's money table may not list yet.
ISO_EXPONENTS = {"DEM": 2, "PLN": 2, "HUF": 2}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()  # a missing sample fails the test


def parse(data: bytes, name: str = "statement.sta", cfg=CONFIG) -> formats.Parsed:
    return formats.parse(data, cfg, name)


def refused(data: bytes, name: str = "statement.sta") -> formats.FormatError:
    with pytest.raises(formats.FormatError) as caught:
        parse(data, name)
    assert caught.value.file_name == name
    return caught.value


def read(name: str) -> formats.Parsed:
    """Rows of a sample without its self-checks (for samples whose balances do not add up)."""
    parsed, _ = mt940.read(sample(name), CONFIG, name)
    return parsed


def signed(rows: pd.DataFrame) -> list[int]:
    return rows["amount_minor"].where(rows["direction"].eq("credit"),
                                      -rows["amount_minor"]).tolist()


def needs_currencies(*codes: str):
    """The sample is in currencies money.EXPONENTS must know; until it does, it is refused."""
    missing = sorted(set(codes) - set(money.EXPONENTS))
    return pytest.mark.xfail(bool(missing), raises=formats.FormatError, strict=True,
                             reason=f"money.EXPONENTS lacks {missing}")


# ---- the public samples --------------------------------------------------------------------

@pytest.mark.parametrize("name,statements,rows", [
    pytest.param("wolph-cmxl-mt940.sta", 3, 16, marks=needs_currencies("DEM", "EUR", "PLN")),
    pytest.param("wolph-sberbank-171011_01234945.sta", 1, 3, marks=needs_currencies("HUF")),
])
def test_consistent_samples_parse_and_check(name, statements, rows):
    parsed = parse(sample(name), name)
    assert len(parsed.tables["statements"]) == statements
    assert len(parsed.rows) == rows
    assert parsed.checks == [
        f"mt940 balances: {statements} statement(s) roll forward from :60: to :62:"]


# Samples whose balances do not add up (anonymised upstream test data): the file is refused,
# naming the closing balance line of the first statement that fails.
INCONSISTENT = [
    ("wolph-betterplace-sepa_snippet.sta", 55,
     "statement 'T089414096000001' (:20: at line 25) does not add up: opening -197043187 + "
     "credits 107065181 - debits 357256911 = -447234917 minor units EUR, but :62F: says "
     "-447204909"),
    ("wolph-jejik-abnamro.sta", 27,
     "statement 'ABN AMRO BANK NV' (:20: at line 4) does not add up: opening 323628 + credits "
     "0 - debits 32144 = 291484 minor units EUR, but :62F: says 87684"),
    ("wolph-jejik-ing.sta", 26,
     "statement 'MPBZ' (:20: at line 4) does not add up: opening 0 + credits 468 - debits "
     "5027 = -4559 minor units EUR, but :62F: says 347"),
    ("wolph-jejik-rabobank.sta", 11,
     "statement '940A110615' (:20: at line 2) does not add up: opening 47317 + credits 0 - "
     "debits 121328 = -74011 minor units EUR, but :62F: says 39582"),
]
MALFORMED = [
    # only :60F: lines, to show amount forms: no statement at all
    ("wolph-betterplace-amount_formats.sta", 1, "60F",
     ":60F: outside a statement (a statement starts with :20:)"),
    # an entry after the message's "-" trailer, belonging to no statement
    ("wolph-self-provided-multiline.sta", 38, "61",
     ":61: outside a statement (a statement starts with :20:)"),
]


@pytest.mark.parametrize("name,line,message", INCONSISTENT)
def test_samples_whose_balances_do_not_add_up_are_refused(name, line, message):
    error = refused(sample(name), name)
    assert (error.line, error.field_name) == (line, "closing_balance")
    assert str(error) == f"{name}, line {line}, field 'closing_balance': {message}"


@pytest.mark.parametrize("name,line,field,message", MALFORMED)
def test_malformed_samples_are_refused(name, line, field, message):
    error = refused(sample(name), name)
    assert str(error) == f"{name}, line {line}, field {field!r}: {message}"


def test_every_sample_is_covered():
    covered = {n for n, *_ in INCONSISTENT + MALFORMED} | {
        "wolph-cmxl-mt940.sta", "wolph-sberbank-171011_01234945.sta"}
    assert {p.name for p in SAMPLES.glob("*.sta")} == covered


def test_samples_in_currencies_iso_knows_parse_and_check(monkeypatch):
    """The parser reads DEM, PLN and HUF statements once the money table lists them."""
    for code, exp in ISO_EXPONENTS.items():
        if code not in money.EXPONENTS:
            monkeypatch.setitem(money.EXPONENTS, code, exp)
    cmxl = parse(sample("wolph-cmxl-mt940.sta"))
    statements = cmxl.tables["statements"]
    assert statements["currency"].tolist() == ["DEM", "EUR", "PLN"]
    assert statements["closing_balance_minor"].tolist() == [8443704, 438795, 5004000]
    assert cmxl.rows["mark"].tolist()[11:16] == ["D", "C", "C", "D", "C"]
    first = cmxl.rows.iloc[0]
    assert (first["value_date"], first["entry_date"], first["amount_minor"]) == (
        "2013-10-17", "", 680000)
    assert (first["transaction_type"], first["customer_reference"]) == ("NCHK", "16703074")
    card = cmxl.rows.iloc[13]
    assert card["supplementary"] == "Card transaction"
    assert card["transaction_type"] == "FMSC"
    assert card["info"].startswith(" 020?00Wyplata-(dysp/przel)")
    sber = parse(sample("wolph-sberbank-171011_01234945.sta"))  # CRLF, :NS: tags
    assert sber.rows["line_no"].tolist() == [12, 24, 35]
    assert sber.rows["funds_code"].tolist() == ["F", "F", "F"]
    assert sber.rows["transaction_type"].tolist() == ["S   "] * 3
    assert sber.rows["amount_minor"].tolist() == [240200, 346000, 357500]
    assert sber.tables["statements"]["closing_available_minor"].tolist() == [61787430]


def test_abnamro_amount_forms_intermediate_balances_and_wrapped_text():
    parsed = read("wolph-jejik-abnamro.sta")
    rows, statements = parsed.rows, parsed.tables["statements"]
    assert rows["amount"].tolist()[:4] == ["9,", "11,59", "11,63", "11,8"]
    assert rows["amount_minor"].tolist()[:4] == [900, 1159, 1163, 1180]
    assert rows["line_no"].tolist()[:3] == [8, 12, 14]  # the :61: lines
    assert statements["opening_code"].tolist() == ["F", "M"]
    assert statements["closing_code"].tolist() == ["F", "M"]
    assert statements["statement_no"].tolist() == ["19321/1", "19322/1"]
    assert rows.iloc[0]["info"] == (
        "GIRO   428428 KPN - DIGITENNE    BETALINGSKENM.  000000042188659\n"
        "5314606715                       BETREFT FACTUUR D.D. 20-05-2011\nINCL. 1,44 BTW")
    assert (rows.iloc[1]["value_date"], rows.iloc[1]["entry_date"]) == ("2011-05-21",
                                                                        "2011-05-23")


def test_intermediate_closing_balance_is_named_in_its_own_error():
    data = sample("wolph-jejik-abnamro.sta")
    second = data[data.index(b"ABNANL2A\n940", 10):]
    error = refused(second)
    assert error.line == 12
    assert str(error).endswith("opening 287684 + credits 0 - debits 2449 = 285235 minor units "
                               "EUR, but :62M: says 184975")


def test_ing_soft_hyphens_are_stripped_and_statement_text_is_kept():
    parsed = read("wolph-jejik-ing.sta")
    info = parsed.rows["info"].tolist()
    assert "\u00ad" not in "".join(info)
    assert "TRANSACTIENR 0050000534527978 10062010 15:32" in info[2]
    assert info[1] == "0111111111 GPSEOUL SPOEDBETALING\tMPBZS1016000047 GPSEOUL"
    assert info[6] == ("0111111111 Hr S Marechal\nROSMALEN Hr S Marechal ROSMALEN\n"
                       "Betaling transactiedatum: 22-07-2010")
    assert parsed.rows["customer_reference"].tolist()[2] == "TMG TANGO"
    assert parsed.tables["statements"]["info"].tolist() == ["D000004C000002D25,24C28,71"]


def test_rabobank_consecutive_86_tags_and_an_empty_statement():
    parsed = read("wolph-jejik-rabobank.sta")
    statements = parsed.tables["statements"]
    assert statements["entry_count"].tolist() == ["1", "0", "2", "2"]
    assert statements["opening_balance_minor"].tolist() == [47317, 100089, 129582, 419612]
    first = parsed.rows.iloc[0]
    assert first["info"] == ("Terugboeking\nNIET AKKOORD MET AFSCHRIJVING\n"
                             "KOSTEN KINDEROPVANG JUNI\n20095731")
    assert first["amount_minor"] == 121328
    assert first["customer_reference"] == "0121470966      W.P. Jansen"


def test_sepa_marks_with_funds_code_and_references():
    parsed = read("wolph-betterplace-sepa_snippet.sta")
    rows = parsed.rows
    assert rows["mark"].tolist()[:4] == ["C", "C", "C", "D"]
    assert set(rows["funds_code"]) == {"R"}
    assert rows.iloc[3][["customer_reference", "bank_reference"]].tolist() == [
        "KREF+", "536D80EFEC56ACF8"]
    assert rows.iloc[6]["amount"] == "15000,"
    assert rows.iloc[6]["amount_minor"] == 1500000
    assert parsed.tables["statements"]["closing_available_minor"].tolist() == [55961451,
                                                                               -447204909]


def test_multiline_statement_up_to_its_trailer():
    data = sample("wolph-self-provided-multiline.sta")
    parsed = parse(data[: data.index(b"\n-\n") + 3])
    row = parsed.rows.iloc[0]
    assert row["supplementary"] == "/OCMT/EUR4,5//IACC/D3/"
    assert (row["customer_reference"], row["bank_reference"]) == ("REFERENCE DO 111",
                                                                  "MUL0408041114005")
    assert row["info"].count("\n") == 21 and row["info"].startswith("020?00VIREMENT")
    statement = parsed.tables["statements"].iloc[0]
    assert statement["closing_available_minor"] == 1140
    assert statement["info"] == "\n".join(["FREE TEXT"] * 6)


def test_amount_forms_of_the_amount_formats_sample():
    """Each :60F: line of the sample, as the opening (and closing) of its own statement."""
    lines = sample("wolph-betterplace-amount_formats.sta").decode().split("\n")
    balances = [line for line in lines if line.startswith(":60F:")]
    text = "".join(f":20:S{i}\n:25:A\n{b}\n:62F:{b[5:]}\n-\n" for i, b in enumerate(balances))
    parsed = parse(text.encode())
    assert parsed.tables["statements"]["opening_balance_minor"].tolist() == [
        38011512, 38011510, 38011500, 12, 12, 112]


def test_info_join_option_for_banks_that_wrap_mid_word():
    data = sample("wolph-cmxl-mt940.sta")
    start = data.index(b":20:1234567")
    statement = data[start: data.index(b"\n-", start) + 3]  # the EUR statement
    joined = dataclasses.replace(CONFIG, options={"info_join": ""})
    info = parse(statement, cfg=joined).rows["info"].tolist()
    assert info[1] == ("051?00UEBERWEISUNG?100599?20Gehalt Oktober?21FirmaMustermann"
                       "GmbH?3050060400?310847564700?32MUELLER?34339")
    assert parse(statement).rows["info"].tolist()[1].startswith(
        "051?00UEBERWEISUNG?100599?20Gehalt Oktob\ner\n?21Firma")


# ---- bad inputs ----------------------------------------------------------------------------

GOOD = """{1:F01BANKDEFFAXXX0000000000}{2:I940BANKDEFFXXXXN}{4:
:20:S1
:25:DE89370400440532013000
:28C:1/1
:60F:C261119EUR100,00
:61:2611201120C25,50NTRFM1//B1
:86:Alice
:61:2611201120RD5,NTRFM2//B2
:86:reversed debit
:61:2611201120D10,NTRFM3//B3
:62F:C261120EUR120,50
-}
"""


def test_block_headers_trailer_and_reversal_marks():
    parsed = parse(GOOD.encode())
    assert parsed.rows["line_no"].tolist() == [6, 8, 10]
    assert parsed.rows["direction"].tolist() == ["credit", "credit", "debit"]
    assert parsed.rows["reversal"].tolist() == ["false", "true", "false"]
    assert signed(parsed.rows) == [2550, 500, -1000]
    assert parsed.rows["info"].tolist() == ["Alice", "reversed debit", ""]


@pytest.mark.parametrize("old,new,line,field,words", [
    (":62F:C261120EUR120,50", ":62F:C261120EUR120,49", 11, "closing_balance",
     "statement 'S1' (:20: at line 2) does not add up: opening 10000 + credits 3050 - debits "
     "1000 = 12050 minor units EUR, but :62F: says 12049"),
    ("C25,50NTRF", "C25,5xNTRF", 6, "amount",
     "'25,5x' is not an MT940 amount (digits with one decimal comma, e.g. 11,8)"),
    ("C25,50NTRF", "C25.50NTRF", 6, "amount", "'25.50' is not an MT940 amount"),
    ("C25,50NTRF", "C25,505NTRF", 6, "amount", "'25,505' is not an amount in 'EUR'"),
    ("EUR100,00", "EUR1OO,00", 5, "opening_balance", "'1OO,00' is not an MT940 amount"),
    ("EUR100,00", "XYZ100,00", 5, "currency", "unknown currency code 'XYZ'"),
    ("EUR120,50", "USD120,50", 11, "closing_balance", "closing balance in USD, opening in EUR"),
    (":61:2611201120C", ":61:2613201120C", 6, "value_date", "'261320' is not a date (YYMMDD)"),
    (":61:2611201120C", ":61:2611201120X", 6, "mark", "is not value date, [entry date], mark"),
    (":62F:C261120EUR120,50\n", "", 2, "closing_balance", "statement 'S1' has no :62F: or :62M:"),
    (":25:DE89370400440532013000\n", "", 2, "account", "statement 'S1' has no :25:"),
    (":60F:C261119EUR100,00\n", "", 5, "61", ":61: entry before the opening balance"),
    ("-}\n", "-}\n:61:2611201120C1,NTRFX\n", 13, "61", ":61: outside a statement"),
])
def test_bad_statements_name_line_and_field(old, new, line, field, words):
    assert old in GOOD
    error = refused(GOOD.replace(old, new, 1).encode())
    assert (error.line, error.field_name) == (line, field)
    assert words in str(error)


@pytest.mark.parametrize("data,words", [
    (b"", "empty file"),
    (b"Account;Amount\n1;2\n", "no MT940 statement (no :20: line)"),
])
def test_what_is_not_mt940_is_refused(data, words):
    assert words in str(refused(data))


# ---- render -> parse -----------------------------------------------------------------------

def random_bookings(seed: int, n: int = 2000) -> tuple[pd.DataFrame, dict[str, int]]:
    rng = np.random.default_rng(seed)
    accounts = np.array(["DE89370400440532013000", "6222020200112233445"])
    which = rng.integers(0, 2, n)
    names = np.array(["Alice & Bob Ltd", "张三商贸有限公司", "O'Brien", "", "-leading dash"])
    bookings = pd.DataFrame({
        "account": accounts[which],
        "currency": np.array(["EUR", "JPY"])[which],
        "booked_at": pd.Timestamp("2026-12-31") + pd.to_timedelta(
            rng.integers(0, 2 * 86_400, n), unit="s"),  # across New Year
        "bank_serial": [f"B{i:012d}" for i in rng.permutation(n)],
        "reference": [f"M{i:09d}" for i in range(n)],
        "counterparty": names[rng.integers(0, len(names), n)],
        "direction": np.where(rng.random(n) < 0.5, "credit", "debit"),
        "amount_minor": rng.integers(1, 10**10, n).astype("int64"),
    })
    return bookings, {accounts[0]: int(rng.integers(-10**9, 10**9)), accounts[1]: -123}


def test_render_then_parse_round_trips():
    bookings, openings = random_bookings(seed=20261120)
    data = mt940_sample.render(bookings, openings, date(2027, 1, 1))
    parsed = parse(data)
    expected = bookings.sort_values(["account", "booked_at", "bank_serial"],
                                    kind="stable").reset_index(drop=True)
    rows = parsed.rows
    assert len(rows) == len(expected) == 2000
    assert rows["account"].tolist() == expected["account"].tolist()
    assert rows["currency"].tolist() == expected["currency"].tolist()
    assert rows["direction"].tolist() == expected["direction"].tolist()
    assert rows["amount_minor"].tolist() == expected["amount_minor"].tolist()
    assert rows["customer_reference"].tolist() == expected["reference"].tolist()
    assert rows["bank_reference"].tolist() == expected["bank_serial"].tolist()
    assert rows["info"].tolist() == expected["counterparty"].tolist()
    day = expected["booked_at"].dt.strftime("%Y-%m-%d").tolist()
    assert rows["value_date"].tolist() == day
    assert rows["entry_date"].tolist() == day
    statements = parsed.tables["statements"].set_index("account")
    for account, mine in expected.groupby("account"):
        moved = np.where(mine["direction"] == "credit", mine["amount_minor"],
                         -mine["amount_minor"]).sum()
        assert statements.at[account, "opening_balance_minor"] == openings[account]
        assert statements.at[account, "closing_balance_minor"] == openings[account] + moved
    assert parsed.checks == ["mt940 balances: 2 statement(s) roll forward from :60: to :62:"]


def test_renderer_refuses_references_that_would_break_the_line():
    bookings, openings = random_bookings(seed=5, n=10)
    bookings.loc[3, "reference"] = "A//B"
    with pytest.raises(ValueError, match="'//'"):
        mt940_sample.render(bookings, openings, date(2027, 1, 1))
