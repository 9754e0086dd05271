"""The pure parsers: bytes + source configuration -> rows, or an error naming file, line, field."""

import json
from datetime import date

import pytest

from tally import config, formats, sources
from tally.devtools import generator

CONFIGS = sources.load_all(config.load())
LEDGER = CONFIGS["platform_ledger"]
BANK = CONFIGS["bank_csv"]

LEDGER_HEADER = ("txn_id,merchant_order_no,channel,account,direction,amount,currency,status,"
                 "created_at,completed_at\n")
LEDGER_ROW = "T1,M1,bank_transfer,6222001,credit,{amount},CNY,success,2026-11-20 10:00:00,\n"
BANK_HEADER = ("Account,Value Date,Booking Time,Bank Serial,Reference,Counterparty,Debit,"
               "Credit,Balance,Currency\n")


def ledger(*amounts: str) -> bytes:
    return (LEDGER_HEADER + "".join(LEDGER_ROW.format(amount=a) for a in amounts)).encode()


def test_ledger_rows_keep_lineage_and_exact_minor_units():
    parsed = formats.parse(ledger("12.34", "0.05", "1000"), LEDGER, "ledger.csv")
    assert parsed.rows["line_no"].tolist() == [2, 3, 4]
    assert parsed.rows["amount_minor"].tolist() == [1234, 5, 100000]
    assert parsed.rows["amount"].tolist() == ["12.34", "0.05", "1000"]  # text kept as given


def test_bank_statement_checks_its_running_balance():
    text = BANK_HEADER + (
        'A1,2026-11-20,09:00:00,S1,M1,x,,"1,000.00","11,000.00",CNY\n'
        'A1,2026-11-20,09:05:00,S2,M2,x,250.50,,"10,749.50",CNY\n'
    )
    parsed = formats.parse(text.encode(), BANK, "bank.csv")
    assert parsed.rows["credit_minor"].tolist() == [100000, 0]
    assert parsed.rows["debit_minor"].tolist() == [0, 25050]
    assert parsed.checks == ["running_balance: 2 bookings roll forward"]


def test_generated_day_parses_for_every_source(tmp_path):
    day = generator.generate_day(date(2026, 11, 20), 2000, tmp_path, seed=1)
    rows = json.loads(day.labels.read_text())["rows"]
    parsed = {}
    for name, path in day.files.items():
        source = name.split(":")[0]
        result = formats.parse(path.read_bytes(), CONFIGS[source], path.name)
        parsed[source] = parsed.get(source, 0) + len(result.rows)
    assert parsed["platform_ledger"] == rows["platform_ledger"]
    assert sum(n for source, n in parsed.items() if source.startswith("bank_")) == rows["bank"]
    assert parsed["alipay_bill"] == rows["alipay_bill"]
    assert parsed["wechatpay_trade_bill"] == rows["wechatpay_bill"]
    assert parsed["platform_settlement"] == rows["platform_settlement"]
    # Every statement format Tally generates is in the day.
    assert {"bank_csv", "bank_camt053", "bank_mt940", "bank_icbc_csv", "bank_cmb_csv",
            "bank_ccb_xls"} <= set(parsed)


@pytest.mark.parametrize("data,line,field,words", [
    (b"", None, None, "empty file"),
    (LEDGER_HEADER.replace(",amount,", ",amt,").encode() + b"x\n", 1, "amount", "missing column"),
    (ledger("12.34", "12.x4"), 3, "amount", "'12.x4' is not an amount"),
    (ledger("12.34", "12,34"), 3, None, "Expected 10 fields in line 3, saw 11"),
    (ledger("12.345"), 2, "amount", "'12.345' is not an amount"),
    (ledger("1.00").replace(b"credit", b"sideways"), 2, "direction", "'sideways' is not one of"),
    (ledger("1.00").replace(b",CNY,", b",,"), 2, "currency", "required value is empty"),
    (LEDGER_HEADER.encode(), None, None, "no data rows"),
    ((LEDGER_HEADER + LEDGER_ROW.format(amount="1.00").replace("M1", "商户")).encode("gbk"),
     2, None, "not valid utf-8"),
])
def test_bad_ledger_input_names_file_line_and_field(data, line, field, words):
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(data, LEDGER, "ledger_20261120.csv")
    error = caught.value
    assert error.file_name == "ledger_20261120.csv"
    assert (error.line, error.field_name) == (line, field)
    assert words in str(error)


def test_bank_statement_whose_balance_does_not_roll_forward_is_refused():
    text = BANK_HEADER + (
        "A1,2026-11-20,09:00:00,S1,M1,x,,100.00,1100.00,CNY\n"
        "A1,2026-11-20,09:05:00,S2,M2,x,,50.00,1150.01,CNY\n"
    )
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(text.encode(), BANK, "bank.csv")
    assert (caught.value.line, caught.value.field_name) == (3, "balance")
    assert "expected 115000 minor units, file says 115001" in str(caught.value)


SETTLEMENT_HEADER = ("settlement_date,batch_no,user_fund_account,debit_amount,credit_amount,"
                     "fee_amount,currency\n")


def test_settlement_file_must_balance_debits_against_credits_and_fees():
    config = CONFIGS["platform_settlement"]
    good = SETTLEMENT_HEADER + ("2026-11-20,B1,U1,100.00,0,0,CNY\n"
                                "2026-11-20,B1,U2,0,99.40,0,CNY\n"
                                "2026-11-20,B1,PLATFORM,0,0,0.60,CNY\n")
    parsed = formats.parse(good.encode(), config, "settle.csv")
    assert parsed.checks == ["sums_balance: debit = credit + fee in 1 currencies"]
    bad = good.replace("99.40", "99.41")
    with pytest.raises(formats.FormatError, match="trial balance fails in CNY: debit = 10000 "
                       r"but credit \+ fee = 10001 \(minor units; difference -1\)"):
        formats.parse(bad.encode(), config, "settle.csv")


def test_balances_file_checks_available_plus_frozen():
    config = CONFIGS["platform_balances"]
    header = ("as_of_date,account,account_type,currency,opening_balance,closing_balance,"
              "available_balance,frozen_balance\n")
    row = "2026-11-20,U1,user_fund,CNY,10.00,12.00,{available},2.00\n"
    assert formats.parse((header + row.format(available="10.00")).encode(), config, "b.csv")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse((header + row.format(available="9.99")).encode(), config, "b.csv")
    assert (caught.value.line, caught.value.field_name) == (2, "closing_balance")


def test_auto_encoding_reads_gbk_and_utf8_with_bom():
    config = CONFIGS["platform_custody_flows"]
    text = ("serial_no,user_fund_account,flow_type,amount,currency,status,bank_account,"
            "created_at,completed_at\nS1,张三的账户,recharge,5.00,CNY,success,622,"
            "2026-11-20 09:00:00,\n")
    for data in (text.encode("gbk"), b"\xef\xbb\xbf" + text.encode("utf-8")):
        parsed = formats.parse(data, config, "flows.csv")
        assert parsed.rows["user_fund_account"].tolist() == ["张三的账户"]
        assert parsed.rows["amount_minor"].tolist() == [500]
