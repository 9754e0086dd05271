"""Real files through the real pipeline (land, load, dbt): a bill day's net is what the channel
pays out, fees signed as each channel prints them; refunds are matched by their refund number.

The WeChat Pay bills are the public samples in ../shared/samples/wechatpay (see SOURCES.md
there); the Alipay bill and the platform ledgers are written by hand per the documented layouts
(tests/fixtures/README.md)."""

from __future__ import annotations

import csv
import gzip
from datetime import date
from pathlib import Path

import pytest

from tally import money, pipeline, transform
from tests import handwritten

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "wechatpay"
DAY = date(2026, 11, 20)


def drop(settings, source: str, day: date, name: str, data: bytes) -> None:
    folder = settings.inbox_dir / source / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def run(settings, day: date) -> None:
    pipeline.land_day(settings, day)
    result = pipeline.load_day(settings, day)
    assert result["quarantined"] == [], result["quarantined"]
    transform.build(settings, day)


def net_of(conn, source: str, day: date) -> tuple[int, int]:
    """(rows, sum of net_amount_minor) of a source's rows of the bill day."""
    rows, net = conn.execute(
        "select count(*), sum(net_amount_minor) from intermediate.int_transactions"
        " where source = %s and business_date = %s", (source, day)).fetchone()
    return rows, int(net)


def wechat_summary(text: str) -> dict[str, str]:
    """The bill's own summary: its last two lines, a header and one row (values backticked)."""
    lines = [line for line in text.replace("\r", "").split("\n") if line.strip()]
    delimiter = "\t" if "\t" in lines[-2] else ","
    header, values = (next(csv.reader([line], delimiter=delimiter)) for line in lines[-2:])
    return {h.strip(): v.strip().lstrip("`") for h, v in zip(header, values, strict=False)
            if h.strip()}


WECHAT_SAMPLES = [
    pytest.param("wpap-bill.ALL.csv", date(2019, 2, 19), id="wpap-ALL"),
    pytest.param("elixir-wechat-sandbox-downloadbill-ALL-20160504.tsv.gz", date(2016, 5, 4),
                 id="elixir-sandbox-ALL"),
]


@pytest.mark.parametrize("name, day", WECHAT_SAMPLES)
def test_wechat_sample_bill_day_nets_to_its_own_summary(clean, conn, name, day):
    data = (SAMPLES / name).read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8-sig")
    summary = wechat_summary(text)
    # What WeChat Pay pays out for the day, by the bill's own totals.
    expected = (money.to_minor(summary["应结订单总金额"], "CNY")
                - money.to_minor(summary["退款总金额"], "CNY")
                - money.to_minor(summary["手续费总金额"], "CNY"))
    drop(clean, "wechatpay_trade_bill", day, name, data)
    run(clean, day)
    rows, net = net_of(conn, "wechatpay_trade_bill", day)
    assert rows == int(float(summary["总交易单数"]))
    assert net == expected


def test_wechat_refund_rows_return_their_fee(clean, conn):
    """A refund row printing a negative 手续费 (the fee of the refunded amount returned): the
    canonical fee is a negative cost, so the day's net adds it back. Written from the public
    sample by giving its first refund row the fee back and the summary the new total."""
    name, day = "wpap-bill.ALL.csv", date(2019, 2, 19)
    text = (SAMPLES / name).read_bytes().decode("utf-8-sig")
    lines = text.split("\r\n")
    first_refund = next(i for i, line in enumerate(lines) if ",`REFUND," in line)
    assert ",`0.00000,`39.00%," in lines[first_refund]
    lines[first_refund] = lines[first_refund].replace(",`0.00000,`39.00%,", ",`-0.01000,`39.00%,")
    summary = wechat_summary(text)
    assert summary["手续费总金额"] == "0.08"
    lines[-2] = lines[-2].replace(",`0.08,", ",`0.07,")
    drop(clean, "wechatpay_trade_bill", day, "wechatpay_fee_returned.csv",
         "\r\n".join(lines).encode("utf-8-sig"))
    run(clean, day)
    (fee,) = conn.execute(
        "select fee_minor from intermediate.int_transactions where source ="
        " 'wechatpay_trade_bill' and kind = 'refund' and line_no = %s",
        (first_refund + 1,)).fetchone()
    assert fee == -1
    assert net_of(conn, "wechatpay_trade_bill", day)[1] == 47 - 14 - 7


@pytest.mark.parametrize("convention", handwritten.ALIPAY_SUMMARIES)
def test_alipay_bill_day_nets_to_its_summary(clean, conn, convention):
    """The hand-written bill: 商家实收 90.00, fees 0.60 + 0.30 charged and 0.18 twice returned;
    the 汇总 says 实收净额 (and the day's net must be it) whatever its 订单金额 convention."""
    name, data = handwritten.alipay_zip(convention)
    drop(clean, "alipay_bill", DAY, name, data)
    run(clean, DAY)
    stated = conn.execute(
        "select settlement_amount_minor, fee_minor, net_amount_minor from"
        " raw.alipay_bill__summary where trim(store_id) = '合计'").fetchone()
    rows, net = net_of(conn, "alipay_bill", DAY)
    assert rows == 4
    if convention == "payments-only-fee-charged":
        # 服务费 of the payments only: 实收净额 does not count the returned fees
        assert stated == (9000, 90, 8910)
        assert net == 9000 - 54
    else:
        assert stated == (9000, 54, 8946)
        assert net == stated[2] == stated[0] - stated[1]


# ---- refunds by refund number ---------------------------------------------------------------

def matches(conn) -> list[tuple]:
    return conn.execute(
        "select m.rule, m.left_reference, m.right_reference, l.txn_id, m.right_amount_minor"
        " from marts.fct_matches as m"
        " join intermediate.int_transactions as t on t.transaction_key = m.left_key"
        " join staging.stg_platform__ledger as l on l.transaction_key = m.left_key"
        " where m.project = 'platform_vs_alipay' and m.as_of_date = %s"
        " order by l.txn_id", (DAY,)).fetchall()


def open_rows(conn) -> list[tuple]:
    return conn.execute(
        "select recon_side, reference, outcome from marts.fct_outcomes"
        " where project = 'platform_vs_alipay' and as_of_date = %s and outcome <> 'matched'",
        (DAY,)).fetchall()


def ledger(name: str) -> bytes:
    return (handwritten.FIXTURES / "platform_ledger" / name).read_bytes()


def test_two_partial_refunds_of_one_order_pair_by_their_refund_numbers(clean, conn):
    drop(clean, "platform_ledger", DAY, "platform_ledger_20261120.csv",
         ledger("ledger-refund-numbers.csv"))
    drop(clean, "alipay_bill", DAY, *handwritten.alipay_zip("signed-all-rows"))
    run(clean, DAY)
    # The platform recorded refund B before refund A; the bill completed A first. By order
    # number and position they would cross; by refund number each pairs with its own.
    assert matches(conn) == [
        ("exact_order", "ORD-20261120-0001", "ORD-20261120-0001", "T-20261120-0001", 10000),
        ("exact_order", "ORD-20261120-0002", "ORD-20261120-0002", "T-20261120-0002", 5000),
        ("exact_order", "RF-20261120-0001-B", "RF-20261120-0001-B", "T-20261120-0003", 3000),
        ("exact_order", "RF-20261120-0001-A", "RF-20261120-0001-A", "T-20261120-0004", 3000),
    ]
    assert open_rows(conn) == []
    canonical = conn.execute(
        "select source, kind, reference, merchant_order_no, original_order_no"
        " from intermediate.int_transactions where kind = 'refund' order by source, reference"
    ).fetchall()
    assert canonical == [
        ("alipay_bill", "refund", f"RF-20261120-0001-{x}", "ORD-20261120-0001",
         "ORD-20261120-0001") for x in "AB"] + [
        ("platform_ledger", "refund", f"RF-20261120-0001-{x}", "ORD-20261120-0001",
         "ORD-20261120-0001") for x in "AB"]


def test_a_ledger_without_the_new_columns_loads_and_its_refunds_pair_by_order(clean, conn):
    drop(clean, "platform_ledger", DAY, "platform_ledger_20261120.csv",
         ledger("ledger-old-format.csv"))
    drop(clean, "alipay_bill", DAY, *handwritten.alipay_zip("signed-all-rows"))
    run(clean, DAY)
    kinds = conn.execute(
        "select txn_id, type, refund_no, original_order_no from staging.stg_platform__ledger"
        " order by txn_id").fetchall()
    assert kinds == [(f"T-20261120-000{i}", None, None, None) for i in range(1, 5)]
    # No refund number on the platform side: its refunds are known by their order, and the
    # second rule pairs them with the bill's refunds of that order, in time order.
    found = matches(conn)
    assert [row[0] for row in found] == ["exact_order", "exact_order", "refund_original_order",
                                         "refund_original_order"]
    assert [(row[1], row[2]) for row in found[2:]] == [
        ("ORD-20261120-0001", "RF-20261120-0001-A"), ("ORD-20261120-0001", "RF-20261120-0001-B")]
    assert open_rows(conn) == []


def test_old_format_ledger_is_read_with_empty_new_columns():
    from tally import config, formats, sources

    cfg = sources.load_all(config.load())["platform_ledger"]
    rows = formats.parse(ledger("ledger-old-format.csv"), cfg, "old.csv").rows
    assert rows[["type", "refund_no", "original_order_no"]].eq("").all().all()
    new = formats.parse(ledger("ledger-refund-numbers.csv"), cfg, "new.csv").rows
    assert new["refund_no"].tolist() == ["", "", "RF-20261120-0001-B", "RF-20261120-0001-A"]
    bad = ledger("ledger-refund-numbers.csv").replace(b",refund,RF-20261120-0001-B",
                                                       b",chargeback,RF-20261120-0001-B")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(bad, cfg, "bad.csv")
    assert (caught.value.line, caught.value.field_name) == (4, "type")


