"""Sample WeChat Pay merchant trade bills, read back by tally.formats.wechatpay_bill with
include/sources/wechatpay_trade_bill.yaml.

`render_trade_bill(trades, business_date, bill_type="ALL", gzip=False)` writes the bill the
trade-bill download returns: UTF-8, CRLF, every value prefixed by a backtick, the columns of
the bill type (ALL: every row; SUCCESS: payments only, no refund columns; REFUND: refunds only,
with the refund times), then the summary header and row. `trades` has the columns
channel_txn_no, merchant_order_no, created_at, completed_at (naive local datetime64), kind
('payment'|'refund'), refund_no, amount_minor (int64, positive), fee_minor (int64, the fee
charged, written with five decimals) and merchant_id; rows keep their order. 交易时间 is the
completion time; a refund's 微信退款单号 is made up from the date and its position.
"""

from __future__ import annotations

import gzip as gzip_module
from datetime import date

import numpy as np
import pandas as pd

ORDER = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号",
         "商户订单号", "用户标识", "交易类型", "交易状态", "付款银行", "货币种类",
         "应结订单金额", "代金券金额"]
REFUND = ["微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态"]
GOODS = ["商品名称", "商户数据包", "手续费", "费率", "订单金额"]
# Columns by bill type: SUCCESS has no refund columns, REFUND adds the two refund times.
COLUMNS = {
    "ALL": [*ORDER, *REFUND, *GOODS, "申请退款金额", "费率备注"],
    "SUCCESS": [*ORDER, *GOODS, "费率备注"],
    "REFUND": [*ORDER, "退款申请时间", "退款成功时间", *REFUND, *GOODS, "申请退款金额", "费率备注"],
}
SUMMARY = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
           "订单总金额", "申请退款总金额"]
APP_ID = "wx0000000000000000"
FEE_RATE = "0.60%"


def render_trade_bill(trades: pd.DataFrame, business_date: date, bill_type: str = "ALL",
                      gzip: bool = False) -> bytes:
    if bill_type not in COLUMNS:
        raise ValueError(f"bill_type must be one of {list(COLUMNS)}, got {bill_type!r}")
    kinds = set(trades["kind"].unique())
    if not kinds <= {"payment", "refund"}:
        raise ValueError(f"kind must be 'payment' or 'refund', got {sorted(kinds)}")
    keep = {"ALL": trades["kind"].notna(), "SUCCESS": trades["kind"].eq("payment"),
            "REFUND": trades["kind"].eq("refund")}[bill_type]
    t = trades[keep].reset_index(drop=True)
    refund = t["kind"].eq("refund")
    amount = t["amount_minor"].astype("int64")
    paid = amount.where(~refund, 0)
    refunded = amount.where(refund, 0)
    n_refunds = int(refund.sum())
    channel_refund_no = pd.Series("0", index=t.index)  # payments carry 0, as WeChat writes
    channel_refund_no[refund] = (f"50{business_date:%Y%m%d}"
                                 + pd.Series(np.arange(1, n_refunds + 1)).astype(str).str.zfill(18)
                                 ).to_numpy()
    values = {
        "交易时间": _times(t["completed_at"]), "公众账号ID": APP_ID,
        "商户号": t["merchant_id"].astype(str), "特约商户号": "0", "设备号": "",
        "微信订单号": t["channel_txn_no"].astype(str),
        "商户订单号": t["merchant_order_no"].astype(str),
        "用户标识": "", "交易类型": "NATIVE",
        "交易状态": pd.Series(np.where(refund, "REFUND", "SUCCESS")), "付款银行": "OTHERS",
        "货币种类": "CNY", "应结订单金额": _decimal(paid, 2), "代金券金额": "0.00",
        "退款申请时间": _times(t["created_at"]), "退款成功时间": _times(t["completed_at"]),
        "微信退款单号": channel_refund_no,
        "商户退款单号": t["refund_no"].fillna("").astype(str).where(refund, "0"),
        "退款金额": _decimal(refunded, 2), "充值券退款金额": "0.00",
        "退款类型": pd.Series(np.where(refund, "ORIGINAL", "")),
        "退款状态": pd.Series(np.where(refund, "SUCCESS", "")), "商品名称": "商品",
        "商户数据包": "", "手续费": _decimal(t["fee_minor"].astype("int64") * 1000, 5),
        "费率": FEE_RATE, "订单金额": _decimal(paid, 2), "申请退款金额": _decimal(refunded, 2),
        "费率备注": "",
    }
    columns = COLUMNS[bill_type]
    line = "`" + _text(values[columns[0]], len(t))
    for name in columns[1:]:
        line = line + ",`" + _text(values[name], len(t))
    totals = [str(len(t)), _one(paid.sum()), _one(refunded.sum()), "0.00",
              _one(t["fee_minor"].sum()), _one(paid.sum()), _one(refunded.sum())]
    text = "\r\n".join([",".join(columns), *line.tolist(), ",".join(SUMMARY),
                        ",".join("`" + v for v in totals), ""])
    data = text.encode("utf-8")
    # mtime 0: the same trades always give the same bytes
    return gzip_module.compress(data, mtime=0) if gzip else data


def _text(value, n: int) -> pd.Series:
    return value.reset_index(drop=True) if isinstance(value, pd.Series) else pd.Series([value] * n)


def _decimal(minor: pd.Series, exponent: int) -> pd.Series:
    """Integer units of 10**-exponent yuan -> decimal text, vectorised."""
    minor = pd.Series(minor).astype("int64").reset_index(drop=True)
    magnitude = minor.abs()
    sign = pd.Series(np.where(minor < 0, "-", ""))
    scale = 10**exponent
    return (sign + (magnitude // scale).astype(str) + "."
            + (magnitude % scale).astype(str).str.zfill(exponent))


def _one(minor) -> str:
    return _decimal(pd.Series([int(minor)]), 2).iloc[0]


def _times(values: pd.Series) -> pd.Series:
    return pd.Series(values).dt.strftime("%Y-%m-%d %H:%M:%S").reset_index(drop=True)
