"""camt.053 statements: the public samples, the OCA golden output, bad inputs, and render ->
parse round trips."""

import ast
import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from tally import config, formats, money, sources
from tally.devtools.samples import camt053 as camt_sample
from tally.formats import camt053

CONFIG = sources.load_all(config.load())["bank_camt053"]
SAMPLES = config.load().project_dir.parent / "shared" / "samples" / "camt053"
OCA = "oca-test-camt053.001.02.xml"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()  # a missing sample fails the test


def parse(data: bytes, name: str = "statement.xml") -> formats.Parsed:
    return formats.parse(data, CONFIG, name)


def refused(data: bytes, name: str = "statement.xml") -> formats.FormatError:
    with pytest.raises(formats.FormatError) as caught:
        parse(data, name)
    assert caught.value.file_name == name
    return caught.value


def signed(rows: pd.DataFrame) -> list[int]:
    return rows["amount_minor"].where(rows["direction"].eq("credit"),
                                      -rows["amount_minor"]).tolist()


# ---- the public samples --------------------------------------------------------------------

def test_two_statements_in_one_message_parse_and_check():
    parsed = parse(sample("genkgo-camt053.v2.multi.statement.xml"))
    rows, statements = parsed.rows, parsed.tables["statements"]
    assert statements["statement_id"].tolist() == ["253EURNL26VAYB8060476890",
                                                   "254EURNL26VAYB8060476890"]
    assert statements["line_no"].tolist() == [26, 112]
    assert statements["opening_balance_minor"].tolist() == [1815, 2700]
    assert statements["closing_balance_minor"].tolist() == [2700, 2000]
    assert statements["opening_code"].tolist() == ["OPBD", "OPBD"]
    assert rows["line_no"].tolist() == [66, 145]  # the <Ntry> lines
    assert rows["statement_id"].tolist() == statements["statement_id"].tolist()
    assert signed(rows) == [885, -700]
    assert rows["end_to_end_id"].tolist() == ["000000001", "000000002"]
    assert rows["remittance"].tolist() == ["Transaction Description 1",
                                           "Transaction Description 2"]
    # the counterparty of a debit is its creditor; the credit names no debtor
    assert rows["counterparty"].tolist() == ["", "Company Name 2"]
    assert rows["counterparty_account"].tolist() == ["", "NL56AGDH9619008421"]
    assert parsed.checks == [
        "camt053 balances: 2 statement(s) roll forward from opening to closing balance"]


# Samples that contradict themselves: the file is refused, naming the line of the <Amt> at fault.
INCONSISTENT = [
    # mixed currencies on purpose (genkgo's fixture): the closing balance is in SEK
    ("genkgo-camt053.v2.minimal.xml", 60, "closing_balance",
     "balance CLBD is in 'SEK', but statement '253EURNL26VAYB8060476890' is in 'EUR'"),
    ("genkgo-camt053.v8.xml", 80, "closing_balance",
     "balance CLBD is in 'SEK', but statement '253EURNL26VAYB8060476890' is in 'EUR'"),
    # 18.150 + 8.850 = 27.000, the closing balance says 27.050
    ("genkgo-camt053.v2.five.decimals.xml", 55, "closing_balance",
     "statement '253EURNL26VAYB8060476890' does not add up: opening OPBD 1815 + credits 885 "
     "- debits 0 = 2700 minor units EUR, but CLBD says 2705"),
    # 15568.27 + 1405.31 - 754.25 - 664.05 = 15555.28, the closing balance says 15121.12
    (OCA, 44, "closing_balance",
     "statement '1234Test/1' does not add up: opening OPBD 1556827 + credits 140531 - debits "
     "141830 = 1555528 minor units EUR, but CLBD says 1512112"),
]


@pytest.mark.parametrize("name,line,field,message", INCONSISTENT)
def test_inconsistent_samples_are_refused_with_the_exact_reason(name, line, field, message):
    error = refused(sample(name), name)
    assert (error.line, error.field_name) == (line, field)
    assert str(error) == f"{name}, line {line}, field {field!r}: {message}"


def test_every_sample_is_either_accepted_or_listed_as_inconsistent():
    listed = {name for name, *_ in INCONSISTENT}
    for path in sorted(SAMPLES.glob("*.xml")):
        if path.name not in listed:
            assert parse(path.read_bytes(), path.name).checks


def test_oca_sample_matches_the_golden_output():
    currency, iban, golden = ast.literal_eval(
        (SAMPLES / "oca-golden-camt053.pydata").read_text(encoding="utf-8"))
    parsed, _ = camt053.read(sample(OCA), CONFIG, OCA)  # read: its balances do not add up
    rows, statements = parsed.rows, parsed.tables["statements"]
    assert statements["currency"].tolist() == [currency] * len(golden)
    assert statements["account"].tolist() == [iban] * len(golden)
    assert len(statements) == len(golden)
    # The golden file holds Python floats; their repr is the decimal text the bank wrote.
    for (_, stmt), want in zip(statements.iterrows(), golden, strict=True):
        assert stmt["statement_id"] == want["name"]
        assert stmt["closing_date"] == want["date"]
        assert stmt["opening_balance_minor"] == money.to_minor(repr(want["balance_start"]),
                                                               currency)
        assert stmt["closing_balance_minor"] == money.to_minor(repr(want["balance_end_real"]),
                                                               currency)
        mine = rows[rows["statement_id"].eq(want["name"])]
        txs = want["transactions"]
        assert signed(mine) == [money.to_minor(repr(t["amount"]), currency) for t in txs]
        for (_, row), t in zip(mine.iterrows(), txs, strict=True):
            said = dict(line.split(": ", 1) for line in t["narration"].split("\n"))
            assert row["end_to_end_id"] == t["ref"]
            assert row["instruction_id"] == said["Instructed Id (Refs/InstrId)"]
            assert row["counterparty"] == t["partner_name"]
            assert row["counterparty_account"] == t["account_number"]
            assert row["booking_date"] == t["date"]
            assert row["bank_tx_code"] == t["transaction_type"]
            assert row["additional_info"] == t["payment_ref"]
            assert row["remittance"] == said.get("Unstructured Reference (RmtInf/Ustrd)", "")
            assert row["reversal"] == said.get("Reversal Indicator (RvslInd)", "false")


def test_batch_entry_splits_into_its_transactions_when_their_amounts_add_up():
    parsed, meta = camt053.read(sample(OCA), CONFIG, OCA)
    batch = parsed.rows[parsed.rows["entry_seq"].eq("2")]
    assert batch["line_no"].tolist() == [144, 185]  # the <TxDtls> lines
    assert batch["amount"].tolist() == ["564.05", "100.00"]
    assert batch["message_id"].tolist() == ["2014/125"] * 2  # from the batch
    assert batch["reversal"].tolist() == ["true"] * 2
    assert parsed.tables["statements"]["entry_count"].tolist() == ["3"]


def test_batch_entry_whose_transactions_do_not_add_up_stays_one_row():
    data = sample(OCA).replace(b'<Amt Ccy="EUR">100.00</Amt>', b'<Amt Ccy="EUR">100.01</Amt>')
    parsed, _ = camt053.read(data, CONFIG, OCA)
    batch = parsed.rows[parsed.rows["entry_seq"].eq("2")]
    assert batch["line_no"].tolist() == [113]  # the <Ntry> line
    assert batch["amount_minor"].tolist() == [66405]
    assert batch["end_to_end_id"].tolist() == [
        "TESTBANK/NL/20141229/01206408;TESTBANK/NL/20141229/01206407"]


def test_five_decimal_amounts_keep_their_text_and_are_exact_when_the_extra_digits_are_zero():
    parsed, _ = camt053.read(sample("genkgo-camt053.v2.five.decimals.xml"), CONFIG, "f.xml")
    assert parsed.rows[["amount", "amount_minor", "amount_inexact"]].values.tolist() == [
        ["8.850", 885, False]]
    statement = parsed.tables["statements"].iloc[0]
    assert (statement["opening_balance"], statement["opening_balance_minor"]) == ("18.150", 1815)


def test_excess_precision_is_flagged_and_balances_are_checked_on_the_exact_text():
    data = sample("genkgo-camt053.v2.five.decimals.xml").replace(b">8.850<", b">8.855<")
    error = refused(data)
    assert str(error).endswith("opening OPBD 18.150 + credits 8.855 - debits 0 = 27.005 EUR, "
                               "but CLBD says 27.050")
    parsed = parse(data.replace(b">27.050<", b">27.005<"))
    assert parsed.rows[["amount", "amount_minor", "amount_inexact"]].values.tolist() == [
        ["8.855", 886, True]]  # rounded half-even into minor units, flagged, text kept


def test_version_08_sample_with_consistent_balances():
    """The v8 sample's balances are in four currencies on purpose; in EUR it checks out."""
    data = (sample("genkgo-camt053.v8.xml")
            .replace(b'<Amt Ccy="SEK">27.00</Amt>\n                <CdtDbtInd>DBIT',
                     b'<Amt Ccy="EUR">27.00</Amt>\n                <CdtDbtInd>CRDT')
            .replace(b'<Amt Ccy="CHF">35.00', b'<Amt Ccy="EUR">35.00')
            .replace(b'<Amt Ccy="JPY">2700', b'<Amt Ccy="EUR">2700'))
    parsed = parse(data)
    row = parsed.rows.iloc[0]
    assert row["booking_date_text"] == "2014-12-31T13:15:00+01:00"
    assert row["booking_date"] == "2014-12-31"
    assert row["value_date"] == "2015-01-02"
    assert row["status"] == "BOOK"  # <Sts><Cd>BOOK</Cd></Sts>
    assert row["bank_reference"] == "AAAASESS-FP-CN_98765/01"
    assert row["end_to_end_id"] == "MUELL/FINP/RA12345"
    assert (row["counterparty"], row["counterparty_account"]) == ("NAME NAME",
                                                                  "NL56AGDH9619008421")
    assert row["creditor_reference"] == "4654654654654654"
    assert row["bank_tx_code"] == "PMNT-RCDT-BOOK"
    statement = parsed.tables["statements"].iloc[0]
    assert statement["account"] == "NL26VAYB8060476890"  # Acct/Id/Othr/Id
    assert statement["opening_available_minor"] == 3500
    assert statement["closing_available_minor"] == -270000  # DBIT
    assert statement["closing_available_date"] == "2014-12-31"


# ---- bad inputs ----------------------------------------------------------------------------

CAMT052 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.02">
  <BkToCstmrAcctRpt><GrpHdr><MsgId>X</MsgId></GrpHdr></BkToCstmrAcctRpt>
</Document>
"""


@pytest.mark.parametrize("data,line,words", [
    (CAMT052, 2, "not a camt.053 statement: root element <Document> in namespace "
                 "'urn:iso:std:iso:20022:tech:xsd:camt.052.001.02'"),
    (b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>\n', 2,
     "not a camt.053 statement: root element <rss> in namespace None"),
    (b"<!DOCTYPE html>\n<html><head><title>Session expired</title></head></html>", 1,
     "an HTML page, not a camt.053 statement"),
    (b"Account;Amount\n1;2\n", 1, "XML breaks at line 1"),
    (b"  \n", None, "empty file"),
])
def test_what_is_not_a_camt053_statement_is_refused(data, line, words):
    error = refused(data)
    assert error.line == line
    assert words in str(error)


def test_truncated_xml_names_the_line_where_it_breaks():
    data = sample(OCA)
    cut = data[: data.index(b"<RmtInf>", data.index(b"01206407"))]
    assert cut.count(b"\n") + 1 == 216  # the file ends inside line 216
    error = refused(cut)
    assert error.line == 216
    assert "XML breaks at line 216" in str(error)


def test_entities_are_not_expanded():
    secret = b"<!DOCTYPE Document [<!ENTITY x SYSTEM 'file:///etc/hostname'>]>\n"
    data = sample("genkgo-camt053.v2.multi.statement.xml")
    data = data.replace(b'?>\n', b'?>\n' + secret, 1).replace(
        b"Transaction Description 1", b"&x;")
    rows = parse(data).rows
    assert rows["remittance"].tolist() == ["", "Transaction Description 2"]


@pytest.mark.parametrize("old,new,line,field,words", [
    (b">754.25<", b">75x.25<", 50, "amount", "'75x.25' is not an amount in 'EUR'"),
    (b"<CdtDbtInd>DBIT</CdtDbtInd>\n                <Sts>",
     b"<CdtDbtInd>DEBT</CdtDbtInd>\n                <Sts>", 50, "direction",
     "CdtDbtInd 'DEBT' is not CRDT or DBIT"),
    (b"<Dt>2014-01-05</Dt>\n                </BookgDt>",
     b"<Dt>2014-13-05</Dt>\n                </BookgDt>", 50, "booking_date",
     "'2014-13-05' is not an ISO date"),
    (b'<Amt Ccy="EUR">15568.27</Amt>', b'<Amt Ccy="EUR">15568.27x</Amt>', 7,
     "opening_balance", "'15568.27x' is not an amount in 'EUR'"),
    (b"<Cd>OPBD</Cd>", b"<Cd>XXXX</Cd>", 7, "opening_balance",
     "statement '1234Test/1' has no opening balance (OPBD, PRCD or ITBD)"),
])
def test_bad_values_name_line_and_field(old, new, line, field, words):
    data = sample(OCA)
    assert old in data
    error = refused(data.replace(old, new, 1))
    assert (error.line, error.field_name) == (line, field)
    assert words in str(error)


def test_xml_on_one_line_reads_the_same_rows_all_on_line_1():
    data = sample("genkgo-camt053.v2.multi.statement.xml")
    indented = formats.parse(data, CONFIG, "x.xml").rows
    minified = formats.parse(re.sub(rb">\s+<", b"><", data).replace(b"\n", b""), CONFIG,
                             "x.xml").rows
    assert set(minified["line_no"]) == {1}
    columns = [c for c in indented.columns if c != "line_no"]
    assert minified[columns].equals(indented[columns])


# ---- render -> parse -----------------------------------------------------------------------

def random_bookings(seed: int, n: int = 2000) -> tuple[pd.DataFrame, dict[str, int]]:
    rng = np.random.default_rng(seed)
    accounts = np.array(["DE89370400440532013000", "6222020200112233445"])
    which = rng.integers(0, 2, n)
    names = np.array(["Alice & Bob <Ltd>", '张三 "商贸"', "O'Brien", ""])
    bookings = pd.DataFrame({
        "account": accounts[which],
        "currency": np.array(["EUR", "JPY"])[which],
        "booked_at": pd.Timestamp("2026-11-20") + pd.to_timedelta(
            rng.integers(0, 86_400, n), unit="s"),
        "bank_serial": [f"B{i:012d}" for i in rng.permutation(n)],
        "reference": [f"M&{i:09d}" for i in range(n)],
        "counterparty": names[rng.integers(0, len(names), n)],
        "direction": np.where(rng.random(n) < 0.5, "credit", "debit"),
        "amount_minor": rng.integers(1, 10**10, n).astype("int64"),
    })
    return bookings, {accounts[0]: int(rng.integers(-10**9, 10**9)), accounts[1]: -123}


@pytest.mark.parametrize("version", ["02", "08"])
def test_render_then_parse_round_trips(version):
    bookings, openings = random_bookings(seed=20261120)
    data = camt_sample.render(bookings, openings, date(2026, 11, 20), version=version)
    assert f"camt.053.001.{version}".encode() in data[:200]
    parsed = parse(data)
    expected = bookings.sort_values(["account", "booked_at", "bank_serial"],
                                    kind="stable").reset_index(drop=True)
    rows = parsed.rows
    assert len(rows) == len(expected) == 2000
    assert rows["account"].tolist() == expected["account"].tolist()
    assert rows["currency"].tolist() == expected["currency"].tolist()
    assert rows["direction"].tolist() == expected["direction"].tolist()
    assert rows["amount_minor"].tolist() == expected["amount_minor"].tolist()
    assert rows["bank_reference"].tolist() == expected["bank_serial"].tolist()
    assert rows["end_to_end_id"].tolist() == expected["reference"].tolist()
    assert rows["counterparty"].tolist() == expected["counterparty"].tolist()
    assert rows["booking_date_text"].tolist() == expected["booked_at"].dt.strftime(
        "%Y-%m-%dT%H:%M:%S").tolist()
    statements = parsed.tables["statements"].set_index("account")
    for account, mine in expected.groupby("account"):
        moved = np.where(mine["direction"] == "credit", mine["amount_minor"],
                         -mine["amount_minor"]).sum()
        assert statements.at[account, "opening_balance_minor"] == openings[account]
        assert statements.at[account, "closing_balance_minor"] == openings[account] + moved
        assert statements.at[account, "summary_count"] == str(len(mine))
    assert len(parsed.checks) == 2  # balances and TxsSummry


def test_tampered_summary_is_refused_naming_the_summary_line():
    bookings, openings = random_bookings(seed=3, n=50)
    data = camt_sample.render(bookings, openings, date(2026, 11, 20))
    count = re.search(rb"<TtlCdtNtries><NbOfNtries>(\d+)<", data)
    data = data.replace(count.group(0), count.group(0).replace(
        count.group(1), str(int(count.group(1)) + 1).encode()), 1)
    error = refused(data)
    assert error.field_name == "summary_credit_count"
    assert error.line == data[: data.index(b"<TxsSummry>")].count(b"\n") + 1


def test_renderer_refuses_two_currencies_on_one_account():
    bookings, openings = random_bookings(seed=4, n=10)
    bookings["currency"] = ["EUR"] * 9 + ["USD"]
    bookings["account"] = bookings["account"].iloc[0]
    with pytest.raises(ValueError, match="one currency"):
        camt_sample.render(bookings, {bookings["account"].iloc[0]: 0}, date(2026, 11, 20))
