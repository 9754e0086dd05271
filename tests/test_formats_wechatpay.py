"""WeChat Pay bills: trade bills of every type (plain or gzipped), the fund bill and the personal
export; rendered bills read back exactly, and broken ones are refused by line and field."""

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tally import config, formats, sources
from tally.devtools.samples import wechatpay

SETTINGS = config.load()
SAMPLES = SETTINGS.project_dir.parent / "shared" / "samples" / "wechatpay"
DAY = date(2026, 11, 20)


def load(source: str):
    return sources.parse_config(
        Path(SETTINGS.include_dir, "sources", f"{source}.yaml").read_text(encoding="utf-8"))


TRADE, FUND, PERSONAL = load("wechatpay_trade_bill"), load("wechatpay_fund_bill"), load(
    "wechatpay_personal")


def random_trades(n: int, seed: int = 20261120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    created = (np.datetime64("2026-11-20T00:00:00")
               + rng.integers(0, 86_000, n).astype("timedelta64[s]"))
    refund = rng.random(n) < 0.1
    ids = np.arange(n).astype(str)
    return pd.DataFrame({
        "channel_txn_no": np.char.add("42000000002026112", np.char.zfill(ids, 11)),
        "merchant_order_no": np.char.add("M20261120", np.char.zfill(rng.permutation(n).astype(str),
                                                                   9)),
        "created_at": created,
        "completed_at": created + rng.integers(1, 300, n).astype("timedelta64[s]"),
        "kind": np.where(refund, "refund", "payment"),
        "refund_no": np.where(refund, np.char.add("R", ids), ""),
        "amount_minor": rng.integers(1, 2_000_000, n).astype("int64"),
        "fee_minor": np.where(refund, 0, rng.integers(0, 5_000, n)).astype("int64"),
        "merchant_id": "1900000109",
    })


@pytest.fixture(scope="module")
def trades():
    return random_trades(2000)


def times(values: pd.Series) -> list[str]:
    return values.dt.strftime("%Y-%m-%d %H:%M:%S").tolist()


@pytest.mark.parametrize("bill_type", ["ALL", "SUCCESS", "REFUND"])
@pytest.mark.parametrize("packed", [False, True])
def test_rendered_trade_bill_reads_back_exactly(trades, bill_type, packed):
    data = wechatpay.render_trade_bill(trades, DAY, bill_type, gzip=packed)
    assert data.startswith(b"\x1f\x8b") == packed
    parsed = formats.parse(data, TRADE, f"{bill_type}.csv")
    rows = parsed.rows
    keep = {"ALL": trades, "SUCCESS": trades[trades["kind"].eq("payment")],
            "REFUND": trades[trades["kind"].eq("refund")]}[bill_type]
    refund = keep["kind"].eq("refund")
    amount = keep["amount_minor"]
    assert len(rows) == len(keep) > 0
    assert rows["channel_txn_no"].tolist() == keep["channel_txn_no"].tolist()
    assert rows["merchant_order_no"].tolist() == keep["merchant_order_no"].tolist()
    assert rows["kind"].tolist() == keep["kind"].tolist()
    assert rows["trade_time"].tolist() == times(keep["completed_at"])
    assert rows["merchant_id"].tolist() == keep["merchant_id"].tolist()
    assert rows["amount_minor"].tolist() == amount.where(~refund, 0).tolist()
    assert rows["settlement_amount_minor"].tolist() == amount.where(~refund, 0).tolist()
    assert rows["refund_amount_minor"].tolist() == amount.where(refund, 0).tolist()
    assert rows["refund_requested_amount_minor"].tolist() == amount.where(refund, 0).tolist()
    assert rows["fee_minor"].tolist() == keep["fee_minor"].tolist()
    assert not rows["fee_inexact"].any()
    assert set(rows["currency"]) == {"CNY"}
    assert rows.loc[rows["kind"].eq("refund"), "refund_no"].tolist() == keep.loc[
        refund, "refund_no"].tolist()
    assert rows.loc[rows["kind"].eq("refund"), "channel_refund_no"].str.startswith(
        "5020261120").all()
    if bill_type == "REFUND":
        assert rows["refund_completed_at"].tolist() == times(keep["completed_at"])
    assert rows["line_no"].tolist() == list(range(2, 2 + len(keep)))
    summaries = [f"summary {name}" for name in [
        "总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
        "订单总金额", "申请退款总金额"]]
    assert [c.split(":")[0] for c in parsed.checks] == ["fee signs", *summaries]


def test_columns_are_read_by_name_not_position(trades):
    lines = wechatpay.render_trade_bill(trades, DAY).decode().split("\r\n")
    order = np.random.default_rng(1).permutation(27)
    body = lines[:-3]  # header and rows; then the summary header, row and ""

    def shuffled(line):
        return ",".join(np.array(line.split(","), dtype=object)[order])

    data = "\r\n".join([*map(shuffled, body), *lines[-3:]]).encode()
    straight = formats.parse(wechatpay.render_trade_bill(trades, DAY), TRADE, "a.csv").rows
    assert formats.parse(data, TRADE, "b.csv").rows.equals(straight)


def test_summary_that_does_not_match_the_rows_names_line_and_field(trades):
    lines = wechatpay.render_trade_bill(trades, DAY).decode().split("\r\n")
    cells = lines[-2].split(",")
    cells[4] = "`" + str(int(cells[4].strip("`").split(".")[0]) + 1) + ".00"  # 手续费总金额
    lines[-2] = ",".join(cells)
    with pytest.raises(formats.FormatError) as caught:
        formats.parse("\r\n".join(lines).encode(), TRADE, "bill.csv")
    assert (caught.value.line, caught.value.field_name) == (len(lines) - 1, "手续费总金额")
    assert "total says" in str(caught.value)


def test_summary_count_that_does_not_match_is_refused(trades):
    lines = wechatpay.render_trade_bill(trades, DAY).decode().split("\r\n")
    del lines[5]  # one row fewer than the summary counts
    with pytest.raises(formats.FormatError) as caught:
        formats.parse("\r\n".join(lines).encode(), TRADE, "bill.csv")
    assert (caught.value.line, caught.value.field_name) == (len(lines) - 1, "总交易单数")
    assert "says 2000 rows, the file has 1999" in str(caught.value)


TRADE_BILL = """交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,\
交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,\
充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
`2026-11-20 10:00:00,`wx1,`1900000109,`0,`,`4200001,`M1,`o1,`NATIVE,`SUCCESS,`OTHERS,`CNY,\
`{amount},`0.00,`0,`0,`0.00,`0.00,`,`,`x,`,`{fee1},`0.60%,`{amount},`0.00,`
`2026-11-20 10:05:00,`wx1,`1900000109,`0,`,`4200002,`M2,`o1,`NATIVE,`SUCCESS,`OTHERS,`CNY,\
`1.00,`0.00,`0,`0,`0.00,`0.00,`,`,`x,`,`{fee2},`0.60%,`1.00,`0.00,`
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
`2,`{total},`0.00,`0.00,`{fees},`{total},`0.00
"""


def bill(amount="1.00", fee1="0.00600", fee2="0.01000", total="2.00", fees="0.02") -> bytes:
    return TRADE_BILL.format(amount=amount, fee1=fee1, fee2=fee2, total=total, fees=fees).encode()


def test_fee_with_digits_beyond_the_fen_is_kept_and_flagged():
    rows = formats.parse(bill(), TRADE, "bill.csv").rows
    assert rows["fee"].tolist() == ["0.00600", "0.01000"]  # exact text as given
    assert rows["fee_minor"].tolist() == [1, 1]  # half-even to the fen
    assert rows["fee_inexact"].tolist() == [True, False]  # trailing zeros are not excess


@pytest.mark.parametrize("fees,ok", [("0.02", True), ("0.03", False)])
def test_fee_total_is_the_exact_or_rounded_sum(fees, ok):
    # exact 0.01600 -> 0.02 and per-row rounded 0.01 + 0.01 = 0.02 agree; 0.03 is neither
    data = bill(fee1="0.00600", fee2="0.01000", fees=fees)
    if ok:
        assert "summary 手续费总金额: 0.02 CNY" in formats.parse(data, TRADE, "b.csv").checks
    else:
        with pytest.raises(formats.FormatError, match="the rows add up to 0.02"):
            formats.parse(data, TRADE, "b.csv")


def test_non_numeric_amount_names_line_and_field():
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(bill(amount="1.x0"), TRADE, "bill.csv")
    assert (caught.value.line, caught.value.field_name) == (2, "settlement_amount")
    assert "'1.x0' is not an amount" in str(caught.value)


@pytest.mark.parametrize("data,words", [
    (b"", "empty file"),
    (gzip.compress(b""), "empty file"),
    (b"\x1f\x8b\x08\x00garbage", "not a readable gzip file"),
    (bill().decode().split("总交易单数")[0].encode(), "no line matching"),  # truncated: no summary
])
def test_bad_input_is_refused(data, words):
    with pytest.raises(formats.FormatError, match=words):
        formats.parse(data, TRADE, "bill.csv")


def test_merchant_bill_sample_reconciles():
    path = SAMPLES / "wpap-bill.ALL.csv"
    parsed = formats.parse(path.read_bytes(), TRADE, path.name)
    rows = parsed.rows
    data_lines = path.read_bytes().decode("utf-8-sig").splitlines()
    assert len(rows) == len(data_lines) - 3  # header, summary header, summary row
    refunds = rows[rows["kind"].eq("refund")]
    assert set(refunds["trade_status"]) == {"REFUND"}
    assert set(rows.loc[rows["kind"].eq("payment"), "trade_status"]) == {"SUCCESS"}
    # every summary total of the 2019 layout, and the fee signs
    assert len(parsed.checks) == 8 and "fee signs: as_printed_cost" in parsed.checks
    assert rows["fee"].str.fullmatch(r"\d+\.\d{5}").all()


def test_gzipped_tab_separated_sandbox_sample_reconciles():
    path = SAMPLES / "elixir-wechat-sandbox-downloadbill-ALL-20160504.tsv.gz"
    parsed = formats.parse(path.read_bytes(), TRADE, path.name)
    text = gzip.decompress(path.read_bytes()).decode()
    assert len(parsed.rows) == text.count("\r\n") - 3
    assert "summary 总交易单数: 1269 rows" in parsed.checks
    assert len(parsed.checks) == 8
    # Excel-mangled identifiers and dates stay as the text given
    assert parsed.rows["channel_txn_no"].iloc[0] == "4.00123E+27"
    assert parsed.rows["trade_time"].iloc[0] == "2016/5/4 2:18"


def test_personal_export_sample_parses():
    path = SAMPLES / "deg-wechat-personal-records.csv"
    rows = formats.parse(path.read_bytes(), PERSONAL, path.name).rows
    text = path.read_bytes().decode().split("\n")
    header = next(i for i, line in enumerate(text, 1) if line.startswith("交易时间"))
    assert rows["line_no"].tolist() == [i for i, line in enumerate(text, 1)
                                         if i > header and line.strip()]
    first = rows.iloc[0]
    assert (first["amount"], first["amount_minor"], first["flow"]) == ("28.16", 2816, "支出")
    assert first["channel_txn_no"] == "3985734"  # quoted, with a TAB after the quote
    assert rows.loc[rows["amount"].eq("50.0"), "amount_minor"].tolist() == [5000]  # ¥50.0


FUND_BILL = """记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,\
收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号
`2026-11-20 09:00:00,`4200001,`F1,`交易,`交易,`收入,`100.00,`1100.00,`system,`,`M1
`2026-11-20 09:30:00,`4200001,`F2,`扣除交易手续费,`扣除交易手续费,`支出,`0.60,`1099.40,`system,`,`M1
`2026-11-20 10:00:00,`50300001,`F3,`退款,`退款,`支出,`{refund},`{balance},`1900000109API,`,`R1
资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额
`3.0,`1.0,`100.00,`2.0,`{out}
"""


def fund(refund="20.00", balance="1079.40", out="20.60") -> bytes:
    return FUND_BILL.format(refund=refund, balance=balance, out=out).encode()


def test_fund_bill_rolls_forward_and_matches_its_summary():
    parsed = formats.parse(gzip.compress(fund()), FUND, "fund.csv.gz")
    rows = parsed.rows
    assert rows["direction"].tolist() == ["credit", "debit", "debit"]
    assert rows["amount_minor"].tolist() == [10000, 60, 2000]
    assert rows["balance_minor"].tolist() == [110000, 109940, 107940]
    assert "balance: 3 bookings roll forward" in parsed.checks
    assert "summary 支出金额: 20.60 CNY" in parsed.checks


def test_fund_bill_whose_balance_breaks_is_refused():
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(fund(balance="1079.41"), FUND, "fund.csv")
    assert (caught.value.line, caught.value.field_name) == (4, "balance")


def test_fund_bill_summary_mismatch_names_the_field():
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(fund(out="20.61"), FUND, "fund.csv")
    assert (caught.value.line, caught.value.field_name) == (6, "支出金额")


def test_public_sample_fees_fit_the_configured_fee_sign():
    parsed = formats.parse((SAMPLES / "wpap-bill.ALL.csv").read_bytes(), TRADE, "bill.csv")
    assert "fee signs: as_printed_cost" in parsed.checks
    refunds = parsed.rows[parsed.rows["kind"].eq("refund")]
    assert refunds["fee_minor"].eq(0).all()  # the sample's refund rows print 0.00000


def test_a_refund_row_charging_a_fee_is_refused_naming_line_and_field():
    """fee_sign as_printed_cost: a refund row's fee is returned (<= 0). A positive one means
    the bill is in another convention, which would turn its fees around unseen."""
    text = (SAMPLES / "wpap-bill.ALL.csv").read_bytes().decode("utf-8-sig")
    lines = text.split("\r\n")
    row = next(i for i, line in enumerate(lines) if ",`REFUND," in line)
    lines[row] = lines[row].replace(",`0.00000,`39.00%,", ",`0.01000,`39.00%,")
    lines[-2] = lines[-2].replace(",`0.08,", ",`0.09,")  # the summary still agrees
    with pytest.raises(formats.FormatError) as caught:
        formats.parse("\r\n".join(lines).encode("utf-8-sig"), TRADE, "bill.csv")
    assert (caught.value.line, caught.value.field_name) == (row + 1, "fee")
    assert "does not fit fee_sign as_printed_cost" in caught.value.message
