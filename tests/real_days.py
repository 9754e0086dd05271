"""Statement days written from the outside: the vendors' own files (the public WeChat Pay
sample bill, byte for byte) and bills written by hand in the layout the vendor documents,
with the platform's ledger written against them in Tally's documented ledger format
(docs/formats.md). Nothing here comes from Tally's generator, so the tests built on it do not
share the generator's assumptions."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
WECHAT_SAMPLE = SAMPLES / "wechatpay" / "wpap-bill.ALL.csv"  # 2019-02-19, 45 rows (MIT)

LEDGER_HEADER = ["txn_id", "merchant_order_no", "channel", "account", "direction", "amount",
                 "currency", "status", "created_at", "completed_at"]
MERCHANT_ACCOUNT = "1921000401"

# The WeChat Pay trade bill (bill_type=ALL) as the public sample has it: a header, one line a
# row with every value behind a backtick, then a summary header and line. The two header lines
# are taken from the sample itself.
_SAMPLE_LINES = WECHAT_SAMPLE.read_text(encoding="utf-8-sig").splitlines()
WECHAT_HEADER, WECHAT_SUMMARY_HEADER = _SAMPLE_LINES[0], _SAMPLE_LINES[-2]


@dataclass
class WechatRow:
    """One bill line: a payment (SUCCESS) or a refund (REFUND) of an order."""
    time: str
    order_no: str
    amount: str  # yuan, as printed
    refund_no: str = ""
    transaction_id: str = ""

    @property
    def is_refund(self) -> bool:
        return bool(self.refund_no)

    def cells(self, serial: int) -> list[str]:
        txn = self.transaction_id or f"42000002632019{serial:014d}"
        zero = "0.00"
        if self.is_refund:
            values = [self.time, "wxab8acd895ab1638a", MERCHANT_ACCOUNT, "0", "", txn,
                      self.order_no, "oHkLxtOutsideUser", "JSAPI", "REFUND", "OTHERS", "CNY",
                      zero, zero, f"5000070967{serial:020d}", self.refund_no, self.amount, zero,
                      "ORIGINAL", "SUCCESS", "outside", "", "0.00000", "0.60%", zero,
                      self.amount, ""]
        else:
            values = [self.time, "wxab8acd895ab1638a", MERCHANT_ACCOUNT, "0", "", txn,
                      self.order_no, "oHkLxtOutsideUser", "JSAPI", "SUCCESS", "OTHERS", "CNY",
                      self.amount, zero, "0", "0", zero, zero, "", "", "outside", "",
                      "0.00000", "0.60%", self.amount, zero, ""]
        return values


def wechat_bill(rows: list[WechatRow], settled_total: str | None = None) -> bytes:
    """A bill in the sample's layout (UTF-8 with BOM, CRLF, backtick-prefixed values). Its
    summary adds up unless `settled_total` (应结订单总金额) says otherwise."""
    settled = sum((Decimal(r.amount) for r in rows if not r.is_refund), Decimal("0"))
    refunded = sum((Decimal(r.amount) for r in rows if r.is_refund), Decimal("0"))
    lines = [WECHAT_HEADER]
    lines += [",".join(f"`{v}" for v in r.cells(i)) for i, r in enumerate(rows, 1)]
    lines += [WECHAT_SUMMARY_HEADER,
              ",".join(f"`{v}" for v in [f"{len(rows)}.0", settled_total or f"{settled:.2f}",
                                        f"{refunded:.2f}", "0.0", "0.00", f"{settled:.2f}",
                                        f"{refunded:.2f}"])]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def sample_wechat_rows() -> list[dict]:
    """The public sample bill's rows, read with the csv module: the facts a platform's ledger
    is written against."""
    text = WECHAT_SAMPLE.read_text(encoding="utf-8-sig")
    records = list(csv.reader(io.StringIO(text)))
    header = records[0]
    body = [r for r in records[1:] if r and r[0].startswith("`") and len(r) == len(header)]
    return [{h: v.lstrip("`") for h, v in zip(header, r, strict=True)} for r in body]


@dataclass
class Ledger:
    """The platform's ledger file for one business date."""
    business_date: date
    rows: list[dict] = field(default_factory=list)

    def add(self, order_no: str, amount: str, *, created: str, direction: str = "credit",
            status: str = "success", channel: str = "wechatpay") -> None:
        self.rows.append({
            "txn_id": f"T{self.business_date:%Y%m%d}{len(self.rows) + 1:05d}",
            "merchant_order_no": order_no, "channel": channel, "account": MERCHANT_ACCOUNT,
            "direction": direction, "amount": amount, "currency": "CNY", "status": status,
            "created_at": created, "completed_at": created if status == "success" else ""})

    def csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, LEDGER_HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue().encode("utf-8")
