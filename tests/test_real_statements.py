"""A platform nobody here built, reconciled over three consecutive days on one warehouse
through the real upload path (`tally upload`, `tally run --date`): its WeChat Pay merchant bill
is the public sample bill byte for byte on the first day, and bills written by hand in the
same documented layout after it; its ledger is written against the bills, with differences a
person knows the answer to. Each class of difference has its exact expected breaks, suspense
and corrections.

Day 1 (2019-02-19, the public sample bill): one bill payment the platform never recorded (长款),
one recorded with another amount, one the platform holds as failed, one platform order the
bill does not have (短款), one still processing, and one paid at 23:59:50 that the bill books
just after midnight. The bill day waits for its payout as one item.
Day 2 (hand-written bill; the collection account's camt.053 statement): WeChat Pay pays day 1
out from its legal entity (财付通支付科技有限公司) with a numeric end-to-end id and a remittance
that does not name the bill date, the net the bill's own summary gives; the late payment
arrives (the break closes as a timing difference); the channel refunds in full an order the
platform holds as paid (a console refund); a statement comes for an account nobody registered.
Day 3: the bill does not add up and is quarantined: the day's orders wait for it, saying so;
the payout of day 2, naming its bill date, is 1.00 short: one break for the batch.
"""

from __future__ import annotations

import contextlib
import io
import os
from datetime import date

import pytest

from tally import cli, money, storage
from tests.real_days import WECHAT_SAMPLE, Ledger, WechatRow, sample_wechat_rows, wechat_bill
from tests.receivers import WebhookReceiver
from tests.test_settlement import ACCOUNT, camt053

DAY1, DAY2, DAY3 = date(2019, 2, 19), date(2019, 2, 20), date(2019, 2, 21)
PROJECT = "platform_vs_wechatpay"
SETTLEMENT = "channel_settlement_vs_bank"
TENPAY = "财付通支付科技有限公司"  # WeChat Pay's legal entity, the payer of its payouts
STRANGER = "6230580000099990001"  # an account the registry (include/accounts.yaml) lacks
# Day 1's net as the public sample bill's own summary gives it: 应结订单总金额 0.47 − 退款总金额
# 0.14 − 手续费总金额 0.08.
DAY1_NET_MINOR = 47 - 14 - 8
DAY2_NET_MINOR = 1200 + 2500 + 888  # its three payments (no fee); the refund is below


def tenpay_payout(minor: int, remittance: str, serial: str) -> dict:
    return {"minor": minor, "time": "09:30:00", "serial": serial,
            "end_to_end_id": f"1000{serial[-6:]}2019022000371", "payer": TENPAY,
            "payer_account": "1211000000000000001", "remittance": remittance}


def _payments(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["交易状态"] == "SUCCESS"]


@pytest.fixture(scope="module")
def outside(request, tmp_path_factory):
    """Three days landed with `tally upload` and reconciled with `tally run --date`; the
    printed summaries are kept."""
    from tests.conftest import reset

    settings = reset(request.getfixturevalue("settings"))
    folder = tmp_path_factory.mktemp("outside")
    bill = sample_wechat_rows()
    payments = _payments(bill)
    never_recorded, other_amount, failed, console_refunded = (payments[0], payments[1],
                                                              payments[2], payments[3])

    day1 = Ledger(DAY1)
    for row in bill:
        if row is never_recorded:
            continue
        if row["交易状态"] == "REFUND":
            day1.add(row["商户订单号"], row["退款金额"], created=row["交易时间"], direction="debit")
        elif row is other_amount:
            day1.add(row["商户订单号"], "0.05", created=row["交易时间"])
        else:
            day1.add(row["商户订单号"], row["应结订单金额"], created=row["交易时间"],
                     status="failed" if row is failed else "success")
    day1.add("OUTSIDE-MISSING-0219", "30.00", created="2019-02-19 12:00:00")
    day1.add("OUTSIDE-PROCESSING-0219", "5.00", created="2019-02-19 13:00:00",
             status="processing")
    day1.add("OUTSIDE-LATE-0219", "12.00", created="2019-02-19 23:59:50")

    day2 = Ledger(DAY2)
    day2.add("OUTSIDE-0220-01", "25.00", created="2019-02-20 10:15:00")
    day2.add("OUTSIDE-0220-02", "8.88", created="2019-02-20 11:20:00")
    bill2 = wechat_bill([
        WechatRow("2019-02-20 00:00:05", "OUTSIDE-LATE-0219", "12.00"),
        WechatRow("2019-02-20 10:15:03", "OUTSIDE-0220-01", "25.00"),
        WechatRow("2019-02-20 11:20:02", "OUTSIDE-0220-02", "8.88"),
        WechatRow("2019-02-20 15:00:00", console_refunded["商户订单号"],
                  console_refunded["应结订单金额"], refund_no="REFCONSOLE0220"),
    ])

    day3 = Ledger(DAY3)
    day3.add("OUTSIDE-0221-01", "9.99", created="2019-02-21 09:00:00")
    day3.add("OUTSIDE-0221-02", "19.90", created="2019-02-21 10:00:00")
    bill3 = wechat_bill([WechatRow("2019-02-21 09:00:04", "OUTSIDE-0221-01", "9.99"),
                         WechatRow("2019-02-21 10:00:03", "OUTSIDE-0221-02", "19.90")],
                        settled_total="39.89")  # the rows add up to 29.89

    refunded_minor = money.to_minor(console_refunded["应结订单金额"], "CNY")
    payout1 = tenpay_payout(DAY1_NET_MINOR, "微信支付商户结算款", "WX0220000017")
    statement2 = camt053(DAY2, [payout1])
    stranger = camt053(DAY2, [tenpay_payout(5_000, "往来款", "XX0220000001")], account=STRANGER)
    statement3 = camt053(DAY3, [tenpay_payout(DAY2_NET_MINOR - refunded_minor - 100,
                                              "2019-02-20 交易结算", "WX0221000009")],
                         opening_minor=1_000_000 + DAY1_NET_MINOR)
    files = {DAY1: [("platform_ledger", "ledger_20190219.csv", day1.csv()),
                    ("wechatpay_trade_bill", "wpap-bill.ALL.csv", WECHAT_SAMPLE.read_bytes())],
             DAY2: [("platform_ledger", "ledger_20190220.csv", day2.csv()),
                    ("wechatpay_trade_bill", "bill_20190220.csv", bill2),
                    ("bank_camt053", f"camt053_{ACCOUNT}_20190220.xml", statement2),
                    ("bank_camt053", f"camt053_{STRANGER}_20190220.xml", stranger)],
             DAY3: [("platform_ledger", "ledger_20190221.csv", day3.csv()),
                    ("wechatpay_trade_bill", "bill_20190221.csv", bill3),
                    ("bank_camt053", f"camt053_{ACCOUNT}_20190221.xml", statement3)]}
    printed, codes, alerted = {}, {}, {}
    # The daily run's alerts go to a local webhook, as a deployment's would.
    with WebhookReceiver() as hook:
        os.environ["TALLY_ALERT_WEBHOOK_URL"] = hook.url
        try:
            for day, day_files in files.items():
                for source, name, data in day_files:
                    path = folder / day.isoformat() / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                    assert cli.main(["upload", "--source", source, "--date", day.isoformat(),
                                     str(path)]) == 0
                sent = len(hook.posts)
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    codes[day] = cli.main(["run", "--date", day.isoformat()])
                printed[day] = out.getvalue()
                alerted[day] = {p["json"]["kind"]: p["json"] for p in hook.posts[sent:]}
        finally:
            os.environ.pop("TALLY_ALERT_WEBHOOK_URL")
    printed["alerts"] = alerted
    refs = {"never_recorded": never_recorded["商户订单号"],
            "other_amount": other_amount["商户订单号"], "failed": failed["商户订单号"],
            "console_refunded": console_refunded["商户订单号"], "refunded_minor": refunded_minor,
            "other_amount_minor": money.to_minor(other_amount["应结订单金额"], "CNY")}
    return settings, refs, printed, codes


def breaks(conn, day) -> set[tuple]:
    return set(conn.execute(
        "select break_type, left_reference, right_reference, needs_person from reporting.breaks"
        " where business_date = %s and project = %s", (day, PROJECT)).fetchall())


def suspense(conn, day) -> set[tuple]:
    return set(conn.execute(
        "select side, reference, awaiting from reporting.suspense where business_date = %s"
        " and project = %s", (day, PROJECT)).fetchall())


def test_every_day_is_published(outside, conn):
    _, _, printed, codes = outside
    assert codes == {DAY1: 0, DAY2: 0, DAY3: 0}, {d: printed[d] for d in codes}
    assert conn.execute(
        "select count(*) from tally.runs where status = 'published' and gate_passed"
    ).fetchone()[0] == 3


def test_day_one_each_difference_is_one_break_on_its_own_day(outside, conn):
    """A settled row with no counterpart is a break that day (not suspense); an amount
    difference is one break naming both sides; money the channel settled for an order the
    platform holds as failed is a status mismatch, not a 长款."""
    _, refs, _, _ = outside
    assert breaks(conn, DAY1) == {
        ("missing_on_platform", None, refs["never_recorded"], True),
        ("amount_mismatch", refs["other_amount"], refs["other_amount"], True),
        ("status_mismatch", refs["failed"], refs["failed"], True),
        ("missing_on_statement", "OUTSIDE-MISSING-0219", None, True),
        ("missing_on_statement", "OUTSIDE-LATE-0219", None, True),
    }
    # Only what is in flight waits.
    assert suspense(conn, DAY1) == {("platform", "OUTSIDE-PROCESSING-0219", None)}
    mismatch = conn.execute(
        "select left_amount_minor, right_amount_minor, amount_difference_minor from"
        " reporting.breaks where business_date = %s and break_type = 'amount_mismatch'",
        (DAY1,)).fetchone()
    billed = refs["other_amount_minor"]
    assert mismatch == (5, billed, billed - 5)


def test_day_two_the_late_payment_closes_its_break_as_timing(outside, conn):
    """The counterpart arrived within the date window: matched, recorded as one timing
    difference with both dates, no longer a break; a full refund made in the channel's console
    of an order the platform holds as paid is a status mismatch on the order."""
    _, refs, _, _ = outside
    assert breaks(conn, DAY2) == {
        ("missing_on_platform", None, refs["never_recorded"], True),
        ("amount_mismatch", refs["other_amount"], refs["other_amount"], True),
        ("status_mismatch", refs["failed"], refs["failed"], True),
        ("missing_on_statement", "OUTSIDE-MISSING-0219", None, True),
        ("timing", "OUTSIDE-LATE-0219", "OUTSIDE-LATE-0219", False),
        # the refund is known by its refund number; the break names the order it refunds
        ("status_mismatch", refs["console_refunded"], "REFCONSOLE0220", True),
    }
    timing = conn.execute(
        "select left_business_date, right_business_date from reporting.breaks"
        " where business_date = %s and break_type = 'timing'", (DAY2,)).fetchone()
    assert timing == (DAY1, DAY2)
    # The breaks still open keep their keys from day one.
    keys = [set(k for (k,) in conn.execute(
        "select break_key from reporting.breaks where business_date = %s and needs_person"
        " and break_type <> 'status_mismatch'", (day,)).fetchall()) for day in (DAY1, DAY2)]
    assert len(keys[0] & keys[1]) == 3


def test_day_three_a_quarantined_bill_makes_the_orders_wait_saying_so(outside, conn, s3):
    """Nothing is a break on a side that was never received: the day's orders wait for the
    bill, the project is incomplete in the summary, the gate's verdict, the report and the
    alert."""
    settings, _, printed, _ = outside
    assert conn.execute(
        "select status from tally.files where source = 'wechatpay_trade_bill'"
        " and business_date = %s", (DAY3,)).fetchall() == [("quarantined",)]
    assert {s for s in suspense(conn, DAY3) if s[1].startswith("OUTSIDE-0221")} == {
        ("platform", "OUTSIDE-0221-01", "wechatpay_trade_bill"),
        ("platform", "OUTSIDE-0221-02", "wechatpay_trade_bill")}
    assert not {b for b in breaks(conn, DAY3) if "OUTSIDE-0221" in str(b)}
    assert f"incomplete   {PROJECT}: awaiting wechatpay_trade_bill" in printed[DAY3]
    gate = conn.execute(
        "select gate_passed, gate_summary::json -> 'incomplete' ->> %s from tally.runs"
        " where business_date = %s and status = 'published'", (PROJECT, DAY3)).fetchone()
    assert gate == (True, "wechatpay_trade_bill")
    complete = conn.execute(
        "select complete, awaiting_sources from reporting.daily_summary where business_date"
        " = %s and project = %s", (DAY3, PROJECT)).fetchone()
    assert complete == (False, "wechatpay_trade_bill")
    uri = conn.execute("select report_uri from tally.runs where business_date = %s"
                       " and status = 'published'", (DAY3,)).fetchone()[0]
    prefix = uri.removeprefix(f"s3://{settings.s3.published_bucket}/")
    html = storage.get_bytes(s3, settings.s3.published_bucket,
                             f"{prefix}report_{DAY3}.html").decode("utf-8")
    assert "Incomplete projects" in html and "wechatpay_trade_bill" in html
    # The alert says so too; a complete day sends none.
    alerted = printed["alerts"]
    assert alerted[DAY3]["projects_incomplete"]["details"] == {
        "incomplete": {PROJECT: "wechatpay_trade_bill"}}
    assert "projects_incomplete" not in alerted[DAY1]


def settlement(conn, day) -> set[tuple]:
    return set(conn.execute(
        "select source, kind, outcome, break_type, amount_difference_minor from"
        " marts.fct_outcomes where as_of_date = %s and project = %s",
        (day, SETTLEMENT)).fetchall())


def test_a_bill_day_waits_as_one_item_for_its_payout(outside, conn):
    assert settlement(conn, DAY1) == {
        ("channel_batch", "settlement_batch", "suspense", "missing_on_statement", None)}
    assert conn.execute(
        "select count(*) from reporting.suspense where business_date = %s and project = %s",
        (DAY1, SETTLEMENT)).fetchone()[0] == 1


def test_the_channel_pays_from_its_legal_entity_with_a_numeric_reference(outside, conn):
    """No remittance names the bill date and no reference follows a pattern of ours: the payer
    is WeChat Pay's legal entity, and the bill day within the delay whose net (the bill's own
    summary) the credit is, is the one it pays."""
    assert settlement(conn, DAY2) == {
        ("channel_batch", "settlement_batch", "matched", None, 0),
        ("bank_camt053", "settlement", "matched", None, 0),
        ("channel_batch", "settlement_batch", "suspense", "missing_on_statement", None)}
    paid = conn.execute(
        "select left_business_date, right_reference, rule from marts.fct_matches"
        " where as_of_date = %s and project = %s", (DAY2, SETTLEMENT)).fetchall()
    assert [(day, reference.isdigit(), rule) for day, reference, rule in paid] == [
        (DAY1, True, "settlement_by_amount")]
    # Nothing of it is a customer's transfer.
    assert conn.execute("select count(*) from reporting.outcomes where business_date = %s"
                        " and project = 'platform_vs_bank'", (DAY2,)).fetchone()[0] == 0


def test_a_short_payout_is_one_break_for_the_batch(outside, conn):
    _, refs, _, _ = outside
    rows = conn.execute(
        "select break_type, left_reference, left_amount_minor, right_amount_minor,"
        " amount_difference_minor, row_count from reporting.breaks where business_date = %s"
        " and project = %s", (DAY3, SETTLEMENT)).fetchall()
    net = DAY2_NET_MINOR - refs["refunded_minor"]
    assert rows == [("amount_mismatch", "WECHATPAY-SETTLE-20190220", net, net - 100, -100, 4)]


def test_a_statement_of_an_account_nobody_registered_is_named(outside, conn):
    _, _, printed, _ = outside
    assert f"UNREGISTERED {STRANGER} (bank_camt053, 1 bookings)" in printed[DAY2]
    assert conn.execute("select count(*) from marts.fct_outcomes where account = %s",
                        (STRANGER,)).fetchone()[0] == 0
