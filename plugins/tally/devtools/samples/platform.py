"""The platform's own files and the generic bank CSV export, written from canonical frames
(see docs/formats.md). Pure: data in, bytes out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tally import money


def _times(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")


def _amounts(minor: pd.Series, currency: pd.Series) -> pd.Series:
    (code,) = currency.unique()  # one currency per generated file
    return money.series_format(minor, code)


def ledger_csv(p: pd.DataFrame) -> bytes:
    frame = pd.DataFrame({
        "txn_id": p["txn_id"], "merchant_order_no": p["merchant_order_no"],
        "channel": p["channel"], "account": p["account"], "direction": p["direction"],
        "amount": _amounts(p["amount_minor"], p["currency"]), "currency": p["currency"],
        "status": p["status"],
        # optional columns (docs/formats.md): empty where a row has none. Before the times, so
        # that a file cut short in its last field is cut in a timestamp, which is checked.
        **{c: p[c].fillna("") if c in p else "" for c in ("type", "refund_no",
                                                          "original_order_no")},
        "created_at": _times(p["created_at"]), "completed_at": _times(p["completed_at"]),
    })
    return frame.to_csv(index=False).encode()


def custody_flows_csv(f: pd.DataFrame) -> bytes:
    frame = f.drop(columns=["amount_minor"]).assign(
        amount=_amounts(f["amount_minor"], f["currency"]), created_at=_times(f["created_at"]),
        completed_at=_times(f["completed_at"]))
    columns = ["serial_no", "user_fund_account", "flow_type", "amount", "currency", "status",
               "bank_account", "created_at", "completed_at"]
    return frame[columns].to_csv(index=False).encode()


def settlement_csv(s: pd.DataFrame) -> bytes:
    frame = pd.DataFrame({
        "settlement_date": s["settlement_date"], "batch_no": s["batch_no"],
        "user_fund_account": s["user_fund_account"],
        "debit_amount": _amounts(s["debit"], s["currency"]),
        "credit_amount": _amounts(s["credit"], s["currency"]),
        "fee_amount": _amounts(s["fee"], s["currency"]), "currency": s["currency"]})
    return frame.to_csv(index=False).encode()


def balances_csv(b: pd.DataFrame) -> bytes:
    frame = b[["as_of_date", "account", "account_type", "currency"]].assign(
        opening_balance=_amounts(b["opening_balance"], b["currency"]),
        closing_balance=_amounts(b["closing_balance"], b["currency"]),
        available_balance=_amounts(b["available"], b["currency"]),
        frozen_balance=_amounts(b["frozen"], b["currency"]))
    return frame.to_csv(index=False).encode()


def bank_csv(bookings: pd.DataFrame, opening: int) -> bytes:
    """The generic bank CSV export for one account: debit and credit columns, the running
    balance after each booking, amounts with thousands separators. The export has one text
    column: a booking with a remittance text (optional column `remittance`) shows it there,
    before its reference."""
    (currency,) = bookings["currency"].unique()
    signed = np.where(bookings["direction"] == "credit", bookings["amount_minor"],
                      -bookings["amount_minor"])
    balance = pd.Series(opening + np.cumsum(signed), index=bookings.index)
    amount = money.series_format(bookings["amount_minor"], currency, grouped=True)
    booked = pd.to_datetime(bookings["booked_at"])
    reference = bookings["reference"]
    if "remittance" in bookings:
        remittance = bookings["remittance"].fillna("").astype(str)
        reference = (remittance + " " + reference.fillna("").astype(str)).where(
            remittance.ne(""), reference)
    frame = pd.DataFrame({
        "Account": bookings["account"],
        "Value Date": booked.dt.strftime("%Y-%m-%d"),
        "Booking Time": booked.dt.strftime("%H:%M:%S"),
        "Bank Serial": bookings["bank_serial"], "Reference": reference,
        "Counterparty": bookings["counterparty"],
        "Debit": np.where(bookings["direction"] == "debit", amount, ""),
        "Credit": np.where(bookings["direction"] == "credit", amount, ""),
        "Balance": money.series_format(balance, currency, grouped=True),
        "Currency": bookings["currency"],
    })
    return frame.to_csv(index=False).encode()
