"""Sample Alipay merchant bills, read back by tally.formats.alipay_bill with
include/sources/alipay_bill.yaml.

`render_bill_zip(trades, business_date, pid)` writes the zip Alipay's bill download returns,
`<PID>0156_<yyyyMMdd>.csv.zip`, with GBK members 业务明细 (one row per trade, refunds negative),
业务明细(汇总) (the 合计 row) and 账务明细 (the account's fund flow: each trade moves the
balance, and a non-zero fee is a 收费 booking of its own). `trades` has the columns
channel_txn_no, merchant_order_no, created_at, completed_at (naive local datetime64),
kind ('payment'|'refund'), refund_no, amount_minor (int64, positive) and fee_minor (int64,
the fee charged, written with its sign as given); rows are written in the given order. The
bill is one partner's: `merchant_id` is not written, the 账号 is `<pid>0156`.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta

import numpy as np
import pandas as pd

DETAIL_HEADER = ",".join([
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
    "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）",
    "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）",
    "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
    "分润（元）", "备注"])
SUMMARY_HEADER = ",".join([
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）",
    "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）",
    "实收净额（元）"])
ACCOUNT_HEADER = ",".join([
    "账务流水号", "业务流水号", "商户订单号", "商品名称", "发生时间", "对方账号", "收入金额（+元）",
    "支出金额（-元）", "账户余额（元）", "交易渠道", "业务类型", "备注"])
DASHES = "-" * 41
ZERO = "0.00"
PRODUCT = "商品"


def render_bill_zip(trades: pd.DataFrame, business_date: date, pid: str,
                    order_total: str = "all_rows") -> tuple[str, bytes]:
    account = f"{pid}0156"
    stem = f"{account}_{business_date:%Y%m%d}"
    trades = trades.reset_index(drop=True)
    kinds = set(trades["kind"].unique())
    if not kinds <= {"payment", "refund"}:
        raise ValueError(f"kind must be 'payment' or 'refund', got {sorted(kinds)}")
    members = {
        f"{stem}_业务明细.csv": _detail(trades, business_date, account),
        f"{stem}_业务明细(汇总).csv": _summary(trades, business_date, account, order_total),
        f"{stem}_账务明细.csv": _account(trades, business_date, account),
    }
    buffer = io.BytesIO()
    exported = (business_date + timedelta(days=1)).timetuple()[:3] + (5, 0, 0)
    # Fastest deflate: a million-row day is ~300 MB of CSV; size hardly matters for samples.
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            # A fixed member time: the same trades always give the same bytes.
            info = zipfile.ZipInfo(name, date_time=exported)
            archive.writestr(info, text.encode("gbk"), zipfile.ZIP_DEFLATED, compresslevel=1)
    return f"{stem}.csv.zip", buffer.getvalue()


def _yuan(minor) -> pd.Series:
    """Integer fen -> "-12.34" text, vectorised."""
    minor = pd.Series(minor).astype("int64").reset_index(drop=True)
    magnitude = minor.abs()
    sign = pd.Series(np.where(minor < 0, "-", ""))
    return sign + (magnitude // 100).astype(str) + "." + (magnitude % 100).astype(str).str.zfill(2)


def _one_yuan(minor: int) -> str:
    return _yuan([minor]).iloc[0]


def _times(values: pd.Series) -> pd.Series:
    return pd.Series(values).dt.strftime("%Y-%m-%d %H:%M:%S").reset_index(drop=True)


def _preamble(title: str, business_date: date, account: str, table: str) -> list[str]:
    def day(d: date) -> str:
        return f"{d:%Y}年{d:%m}月{d:%d}日 00:00:00"

    return [f"#支付宝{title}查询", f"#账号：[{account}]",
            f"#起始日期：[{day(business_date)}]   终止日期：[{day(business_date + timedelta(1))}]",
            f"#{DASHES}{table}{DASHES}"]


def _exported(business_date: date) -> str:
    return f"#导出时间：[{business_date + timedelta(1):%Y年%m月%d日} 05:00:00]"


def _join(columns: list) -> list[str]:
    """Columns of text (Series or str) -> CSV lines, one string concatenation per column."""
    line = columns[0]
    for column in columns[1:]:
        line = line + "," + column
    return line.tolist()


def _signed(trades: pd.DataFrame) -> pd.Series:
    """Order amounts as the bill prints them: refunds negative."""
    amount = trades["amount_minor"].astype("int64")
    return amount.where(trades["kind"].eq("payment"), -amount)


def _detail(trades: pd.DataFrame, business_date: date, account: str) -> str:
    refund = trades["kind"].eq("refund")
    amount = _yuan(_signed(trades))
    fee = _yuan(trades["fee_minor"])
    tab = "\t"  # identifiers end in a TAB, as in Alipay's files
    lines = _join([
        trades["channel_txn_no"].astype(str) + tab, trades["merchant_order_no"].astype(str) + tab,
        pd.Series(np.where(refund, "退款", "交易")) + tab, PRODUCT,
        _times(trades["created_at"]), _times(trades["completed_at"]), tab, tab, tab, tab, tab,
        amount, amount, ZERO, ZERO, ZERO, ZERO, ZERO, "", ZERO + tab, ZERO,
        trades["refund_no"].fillna("").astype(str) + tab, fee, ZERO, "",
    ])
    signed = _signed(trades)
    footer = [
        f"#{DASHES}业务明细列表结束{DASHES}",
        f"#交易合计：{int((~refund).sum())}笔，商家实收共{_one_yuan(signed[~refund].sum())}元，"
        f"商家优惠共{ZERO}元",
        f"#退款合计：{int(refund.sum())}笔，商家实收退款共{_one_yuan(signed[refund].sum())}元，"
        f"商家优惠退款共{ZERO}元",
        _exported(business_date),
    ]
    return "\r\n".join([*_preamble("业务明细", business_date, account, "业务明细列表"),
                        DETAIL_HEADER, *lines, *footer, ""])


def _summary(trades: pd.DataFrame, business_date: date, account: str, order_total: str) -> str:
    """The 合计 row. 订单金额 is the signed sum of every row (`order_total="all_rows"`) or the
    sum of the payments only (`"payments"`): bills of both kinds are in use."""
    refund = trades["kind"].eq("refund")
    signed = int(_signed(trades).sum())
    if order_total not in ("all_rows", "payments"):
        raise ValueError(f"order_total must be 'all_rows' or 'payments', got {order_total!r}")
    ordered = signed if order_total == "all_rows" else int(_signed(trades)[~refund].sum())
    fee = int(trades["fee_minor"].sum())
    total = ",".join(["合计", "", str(int((~refund).sum())), str(int(refund.sum())),
                      _one_yuan(ordered), _one_yuan(signed), ZERO, ZERO, ZERO, _one_yuan(fee),
                      ZERO, _one_yuan(signed - fee)])
    return "\r\n".join([*_preamble("业务汇总", business_date, account, "业务汇总列表"),
                        SUMMARY_HEADER, total, f"#{DASHES}业务汇总列表结束{DASHES}",
                        _exported(business_date), ""])


def _account(trades: pd.DataFrame, business_date: date, account: str) -> str:
    """The fund flow in completion order: the trade's own booking, then its fee booking."""
    order = trades.sort_values("completed_at", kind="stable").assign(
        seq=np.arange(len(trades)))
    payment = order["kind"].eq("payment")
    amount = order["amount_minor"].astype("int64")
    moves = pd.DataFrame({
        "seq": order["seq"] * 2, "delta": amount.where(payment, -amount),
        "business_no": order["channel_txn_no"].astype(str),
        "order_no": order["merchant_order_no"].astype(str), "at": order["completed_at"],
        "type": np.where(payment, "在线支付", "交易退款"),
    })
    charged = order[order["fee_minor"].ne(0)]
    fees = pd.DataFrame({
        "seq": charged["seq"] * 2 + 1, "delta": -charged["fee_minor"].astype("int64"),
        "business_no": charged["channel_txn_no"].astype(str),
        "order_no": charged["merchant_order_no"].astype(str), "at": charged["completed_at"],
        "type": "收费",
    })
    flow = pd.concat([moves, fees]).sort_values("seq").reset_index(drop=True)
    delta = flow["delta"]
    income, expense = delta.clip(lower=0), delta.clip(upper=0)  # outflows printed negative
    flow_no = pd.Series(np.arange(1, len(flow) + 1)).astype(str).str.zfill(12)
    tab = "\t"
    lines = _join([
        f"{business_date:%Y%m%d}" + flow_no + tab, flow["business_no"] + tab,
        flow["order_no"] + tab, PRODUCT + tab, _times(flow["at"]), tab, _yuan(income),
        _yuan(expense), _yuan(delta.cumsum()), "支付宝", pd.Series(flow["type"]), "",
    ])
    out = delta.lt(0)
    footer = [
        f"#{DASHES}账务明细列表结束{DASHES}",
        f"#支出合计：{int(out.sum())}笔，共{_one_yuan(expense.sum())}元",
        f"#收入合计：{int((~out).sum())}笔，共{_one_yuan(income.sum())}元",
        _exported(business_date),
    ]
    return "\r\n".join([*_preamble("账务明细", business_date, account, "账务明细列表"),
                        ACCOUNT_HEADER, *lines, *footer, ""])
