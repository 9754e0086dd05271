"""A channel's payout as it really arrives, through the real pipeline over consecutive days on
one warehouse: an Alipay bill day (业务明细, written by hand per Alipay's documented layout)
and the collection account's ISO 20022 camt.053.001.02 statements (written by hand), where
Alipay pays the bill day out the next morning from its legal entity (Dbtr/Nm 支付宝（中国）网络
技术有限公司), with a numeric EndToEndId and a remittance text that does not name the bill date.

The bill day's three rows are one settlement batch: one suspense item while it waits, matched
to the payout when it comes; a short payout is one amount_mismatch for the batch; a credit from
Alipay that fits no bill day is an unidentified settlement, and never a customer's transfer."""

from datetime import date

import pytest

from tally import pipeline, transform

D1, D2, D3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
ACCOUNT = "6214830100556677"  # a collection account Alipay settles into (include/accounts.yaml)
ALIPAY = "支付宝（中国）网络技术有限公司"
PROJECT = "channel_settlement_vs_bank"

# Two payments (100.00 with a 0.60 fee, 50.00 with 0.30) and a refund of 20.00: the bill day's
# net is 100.00 + 50.00 - 20.00 - 0.90 = 129.10.
NET_MINOR = 12910
BILL = "\r\n".join([
    "#支付宝业务明细查询",
    "#账号：[20881020000000010156]",
    "#起始日期：[2026年11月20日 00:00:00]   终止日期：[2026年11月21日 00:00:00]",
    "#-----------------------------------------业务明细列表-----------------------------------------",
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,"
    "券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,"
    "备注",
    "2026112022001458860515315453\t,ORDER-1001\t,交易\t,会员充值,2026-11-20 10:55:16,"
    "2026-11-20 10:55:23,\t,\t,\t,\t,*津水(602***@qq.com)\t,100.00,100.00,0.00,0.00,0.00,0.00,"
    "0.00,,0.00\t,0.00,\t,0.60,0.00,",
    "2026112022001458860515315454\t,ORDER-1002\t,交易\t,会员充值,2026-11-20 14:02:10,"
    "2026-11-20 14:02:31,\t,\t,\t,\t,*明(139***@163.com)\t,50.00,50.00,0.00,0.00,0.00,0.00,"
    "0.00,,0.00\t,0.00,\t,0.30,0.00,",
    "2026112022001458860515315455\t,ORDER-0990\t,退款\t,会员充值,2026-11-19 09:12:00,"
    "2026-11-20 16:40:02,\t,\t,\t,\t,*华(186***@qq.com)\t,-20.00,-20.00,0.00,0.00,0.00,0.00,"
    "0.00,,0.00\t,0.00,RF20261120001\t,0.00,0.00,",
    "#-----------------------------------------业务明细列表结束-----------------------------------------",
    "#交易合计：2笔，商家实收共150.00元，商家优惠共0.00元",
    "#退款合计：1笔，商家实收退款共-20.00元，商家优惠退款共0.00元",
    "#导出时间：[2026年11月21日 05:00:00]",
    "",
]).encode("gbk")


def _amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def camt053(day: date, entries: list[dict], opening_minor: int = 1_000_000,
            account: str = ACCOUNT) -> bytes:
    """The collection account's statement of the day (camt.053.001.02): OPBD, CLBD, a
    transaction summary and one <Ntry> per credit."""
    credits = sum(e["minor"] for e in entries)
    ntries = "".join(f"""
      <Ntry>
        <Amt Ccy="CNY">{_amount(e["minor"])}</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><DtTm>{day:%Y-%m-%d}T{e["time"]}+08:00</DtTm></BookgDt>
        <ValDt><Dt>{day:%Y-%m-%d}</Dt></ValDt>
        <AcctSvcrRef>{e["serial"]}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>OTHR</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>{e["end_to_end_id"]}</EndToEndId></Refs>
            <RltdPties>
              <Dbtr><Nm>{e["payer"]}</Nm></Dbtr>
              <DbtrAcct><Id><Othr><Id>{e["payer_account"]}</Id></Othr></Id></DbtrAcct>
            </RltdPties>
            <RmtInf><Ustrd>{e["remittance"]}</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>""" for e in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT{day:%Y%m%d}</MsgId><CreDtTm>{day:%Y-%m-%d}T23:30:00+08:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>{account}-{day:%Y%m%d}</Id>
      <CreDtTm>{day:%Y-%m-%d}T23:30:00+08:00</CreDtTm>
      <Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="CNY">{_amount(opening_minor)}</Amt><CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>{day:%Y-%m-%d}</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="CNY">{_amount(opening_minor + credits)}</Amt><CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>{day:%Y-%m-%d}</Dt></Dt>
      </Bal>
      <TxsSummry>
        <TtlNtries><NbOfNtries>{len(entries)}</NbOfNtries><Sum>{_amount(credits)}</Sum></TtlNtries>
        <TtlCdtNtries><NbOfNtries>{len(entries)}</NbOfNtries><Sum>{_amount(credits)}</Sum></TtlCdtNtries>
        <TtlDbtNtries><NbOfNtries>0</NbOfNtries><Sum>0.00</Sum></TtlDbtNtries>
      </TxsSummry>{ntries}
    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode()


def payout(minor: int, remittance: str = "支付宝结算款", serial: str = "AS2026112100017",
           payer: str = ALIPAY) -> dict:
    return {"minor": minor, "time": "08:15:00", "serial": serial,
            "end_to_end_id": "20261121800100375512", "payer": payer,
            "payer_account": "1234567890123456789", "remittance": remittance}


def run_day(settings, day: date, files: dict[str, tuple[str, bytes]]) -> None:
    """Drop the day's files in the inbox, then land, load and build as the daily run does."""
    for source, (name, data) in files.items():
        folder = settings.inbox_dir / source / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    pipeline.land_day(settings, day, pulls=False)
    loaded = pipeline.load_day(settings, day)
    assert not loaded.get("quarantined"), loaded
    transform.build(settings, day)


def outcomes(conn, day: date, project: str = PROJECT) -> list[tuple]:
    return conn.execute(
        "select source, kind, outcome, break_type, amount_difference_minor, transaction_key"
        " from marts.fct_outcomes where as_of_date = %s and project = %s order by 1, 2",
        (day, project)).fetchall()


def first_day(settings) -> None:
    run_day(settings, D1, {
        "alipay_bill": ("20881020000000010156_20261120_业务明细.csv", BILL),
        "bank_camt053": (f"camt053_{ACCOUNT}_20261120.xml", camt053(D1, [])),
    })


def test_a_bill_day_waits_as_one_item_and_matches_the_next_mornings_payout(clean, conn):
    settings = clean
    first_day(settings)
    batch = conn.execute(
        "select transaction_key, reference, amount_minor, direction, row_count"
        " from intermediate.int_transactions where source = 'channel_batch'").fetchall()
    assert [row[1:] for row in batch] == [("ALIPAY-SETTLE-20261120", NET_MINOR, "credit", 3)]
    # Day 1: the bill day is ONE suspense item, not one per bill row.
    assert outcomes(conn, D1) == [
        ("channel_batch", "settlement_batch", "suspense", "missing_on_statement", None,
         batch[0][0])]

    run_day(settings, D2, {"bank_camt053": (f"camt053_{ACCOUNT}_20261121.xml",
                                            camt053(D2, [payout(NET_MINOR)]))})
    credit = conn.execute(
        "select transaction_key, kind, channel, settlement_batch, counterparty,"
        " counterparty_account, remittance, reference from intermediate.int_transactions"
        " where side = 'bank'").fetchall()
    assert [row[1:] for row in credit] == [
        ("settlement", "alipay", None, ALIPAY, "1234567890123456789", "支付宝结算款",
         "20261121800100375512")]
    # Day 2: the payout names no bill date; it is the bill day's net within the delay.
    assert conn.execute(
        "select rule, left_key, right_key, amount_difference_minor from marts.fct_matches"
        " where as_of_date = %s and project = %s", (D2, PROJECT)).fetchall() == [
        ("settlement_by_amount", batch[0][0], credit[0][0], 0)]
    assert {row[2] for row in outcomes(conn, D2)} == {"matched"}
    # Nothing of it is a customer's transfer, and nothing is a break anywhere.
    assert outcomes(conn, D2, "platform_vs_bank") == []
    assert conn.execute("select count(*) from marts.fct_breaks where as_of_date = %s"
                        " and project = %s", (D2, PROJECT)).fetchone()[0] == 0


def test_a_payout_naming_its_bill_date_matches_its_batch(clean, conn):
    """Also: the bank prints the payer's name with ASCII parentheses and an account suffix."""
    settings = clean
    first_day(settings)
    run_day(settings, D2, {"bank_camt053": (
        f"camt053_{ACCOUNT}_20261121.xml",
        camt053(D2, [payout(NET_MINOR, remittance="支付宝结算 账单日2026-11-20",
                            payer="支付宝(中国)网络技术有限公司 客户备付金")]))})
    assert conn.execute(
        "select rule from marts.fct_matches where as_of_date = %s and project = %s",
        (D2, PROJECT)).fetchall() == [("batch_exact",)]


def test_a_short_payout_is_one_amount_mismatch_for_the_batch(clean, conn):
    settings = clean
    first_day(settings)
    short = NET_MINOR - 10
    run_day(settings, D2, {"bank_camt053": (
        f"camt053_{ACCOUNT}_20261121.xml",
        camt053(D2, [payout(short, remittance="20261120交易结算")]))})
    batch_key, row_count = conn.execute(
        "select transaction_key, row_count from intermediate.int_transactions"
        " where source = 'channel_batch'").fetchone()
    assert row_count == 3
    mismatches = conn.execute(
        "select transaction_key, amount_minor, amount_difference_minor, explanation"
        " from marts.fct_outcomes where as_of_date = %s and project = %s"
        " and recon_side = 'left' and break_type = 'amount_mismatch'", (D2, PROJECT)).fetchall()
    assert len(mismatches) == 1
    key, amount, difference, explanation = mismatches[0]
    assert (key, amount, difference) == (batch_key, NET_MINOR, -10)
    assert "ALIPAY-SETTLE-20261120" in explanation and "0.10" in explanation
    # The bill rows are not breaks: not in this project, nor anywhere as amount mismatches.
    assert conn.execute(
        "select count(*) from marts.fct_outcomes where as_of_date = %s and source ="
        " 'alipay_bill' and project = %s", (D2, PROJECT)).fetchone()[0] == 0
    assert conn.execute(
        "select count(*) from marts.fct_breaks where as_of_date = %s and source ="
        " 'alipay_bill' and break_type = 'amount_mismatch'", (D2,)).fetchone()[0] == 0
    assert outcomes(conn, D2, "platform_vs_bank") == []


@pytest.fixture
def unidentified(clean, conn):
    """A credit from Alipay's legal entity that names no bill date and equals no bill day's net
    within the delay, followed by a day without a payout (so it is old enough to be a break)."""
    settings = clean
    first_day(settings)
    run_day(settings, D2, {"bank_camt053": (f"camt053_{ACCOUNT}_20261121.xml",
                                            camt053(D2, [payout(77_700)]))})
    run_day(settings, D3, {"bank_camt053": (f"camt053_{ACCOUNT}_20261122.xml",
                                            camt053(D3, [], opening_minor=1_077_700))})
    return settings


def test_a_payout_fitting_no_bill_day_is_an_unidentified_settlement(unidentified, conn):
    kinds = conn.execute(
        "select kind, channel, settlement_batch from intermediate.int_transactions"
        " where side = 'bank'").fetchall()
    assert kinds == [("unidentified_settlement", "alipay", None)]
    credit = [row for row in outcomes(conn, D3) if row[0] == "bank_camt053"]
    assert [(kind, outcome) for _, kind, outcome, *_ in credit] == [
        ("unidentified_settlement", "break")]
    # Never a 长款 in the transfer project.
    for day in (D2, D3):
        assert outcomes(conn, day, "platform_vs_bank") == []


def test_an_unidentified_settlement_has_its_own_break_type(unidentified, conn):
    assert conn.execute(
        "select break_type, label_zh, needs_person from marts.fct_breaks where as_of_date = %s"
        " and source = 'bank_camt053'", (D3,)).fetchall() == [
        ("unidentified_settlement", "未识别结算款", True)]


def test_a_bill_days_net_is_what_the_merchant_receives_after_its_own_discounts(clean, conn):
    """A payment of 100.00 on which the merchant gave 5.00 of its own discount (商家优惠): Alipay
    settles its 商家实收 of 95.00, so the batch is 5.00 less than the order amounts say."""
    text = BILL.decode("gbk")
    discounted = text.replace(",100.00,100.00,0.00,0.00,0.00,0.00,0.00,,0.00\t",
                              ",100.00,95.00,0.00,0.00,0.00,5.00,0.00,,0.00\t")
    discounted = discounted.replace("商家实收共150.00元，商家优惠共0.00元",
                                    "商家实收共145.00元，商家优惠共5.00元")
    assert discounted.count("95.00") == 1 and "145.00" in discounted
    run_day(clean, D1, {
        "alipay_bill": ("20881020000000010156_20261120_业务明细.csv", discounted.encode("gbk")),
        "bank_camt053": (f"camt053_{ACCOUNT}_20261120.xml", camt053(D1, [])),
    })
    assert conn.execute(
        "select amount_minor, row_count from intermediate.int_transactions"
        " where source = 'channel_batch'").fetchall() == [(NET_MINOR - 500, 3)]
    # The order itself still reconciles against the platform at its order amount.
    assert conn.execute(
        "select amount_minor from intermediate.int_transactions where source = 'alipay_bill'"
        " and reference = 'ORDER-1001'").fetchall() == [(10000,)]
