"""Generate one coherent business day in every supported source's format, with ground truth.

The same transactions are written as the platform records them, as the channels (Alipay,
WeChat Pay) bill them, and as the banks book them: bank transfers on the collection accounts,
each channel's net settlement of the previous day as one credit the next morning, custody
recharges and withdrawals on the custody account. A known set of discrepancies is injected and
listed in a labels file, so tests and benchmarks can check that reconciliation finds exactly
those and nothing else. Everything is drawn from random streams seeded by (seed, date, part), so
a day is the same bytes for the same seed, and a part of the previous day can be recomputed
without the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

CURRENCY = "CNY"
# Labelled differences in a generated day: the six break types (missing_on_statement,
# missing_on_platform, amount_mismatch, duplicate, status_mismatch, timing) that reconciliation
# must report; within_tolerance and no_reference, which the rule named in the label must match;
# and late_file, a file held back (generate_day(late=...)).
# Bank transfers arrive on collection accounts, each exported in its bank's own format.
COLLECTION_ACCOUNTS = {
    "6222020200112233445": "bank_csv",
    "6214830100556677": "bank_camt053",
}
CUSTODY_ACCOUNT = "6228480011223344556"
# Operating accounts: a few bookings each (fees, payroll), in the remaining formats; loaded and
# kept in the canonical model, not reconciled by any project.
OPERATING_ACCOUNTS = {
    "6222021001122334455": "bank_icbc_csv",
    "NL91ABNA0417164300": "bank_mt940",
    "6225880112345678": "bank_cmb_csv",
    "6217000010012345678": "bank_ccb_xls",
}
STATEMENT_SOURCES = {**COLLECTION_ACCOUNTS, CUSTODY_ACCOUNT: "bank_camt053",
                     **OPERATING_ACCOUNTS}
ALIPAY_PID = "2088102000000001"
SETTLEMENT_ACCOUNT = "6222020200112233445"  # where the channels pay their net settlement
# How each channel pays out a bill day, as real payouts arrive: from the channel's legal
# entity (and its account), with a numeric end-to-end id, into its collection account (both in
# include/accounts.yaml), with a remittance text that names the bill date on some days only.
PAYOUTS = {
    "alipay": {"account": SETTLEMENT_ACCOUNT, "payer": "支付宝（中国）网络技术有限公司",
               "payer_account": "", "dated": "{day:%Y%m%d}交易结算", "undated": "支付宝结算款"},
    "wechatpay": {"account": "6214830100556677", "payer": "财付通支付科技有限公司",
                  "payer_account": "1200000000000001", "dated": "财付通结算 账单日{day:%Y-%m-%d}",
                  "undated": "微信支付商户结算"},
}
CHANNELS = {"alipay": 0.30, "wechatpay": 0.25}  # share of platform transactions
FEE_RATE_PPM = 6_000  # 0.6 %


@dataclass
class Day:
    business_date: date
    platform: pd.DataFrame  # the platform's transaction ledger
    channel_bills: dict[str, pd.DataFrame]  # channel -> trades as the channel bills them
    bookings: pd.DataFrame  # bank bookings on every account
    openings: dict[str, int]
    custody_flows: pd.DataFrame
    settlement: pd.DataFrame
    balances: pd.DataFrame
    discrepancies: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class GeneratedDay:
    business_date: date
    files: dict[str, Path]  # "<source>" or "<source>:<part>" -> file
    labels: Path


def _rng(seed: int, day: date, part: str) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), sum(part.encode()) * 7919 + len(part)])


def _times(day: date, seconds: np.ndarray) -> np.ndarray:
    midnight = np.datetime64(datetime.combine(day, datetime.min.time()), "s")
    return midnight + seconds.astype("timedelta64[s]")


def _ids(prefix: str, day: date, idx: np.ndarray, width: int = 9) -> np.ndarray:
    return np.char.add(f"{prefix}{day:%Y%m%d}", np.char.zfill(idx.astype(str), width))


def _fee(amount: np.ndarray) -> np.ndarray:
    # Channel fee per payment in fen, rounded half up (how the channels bill it).
    return (amount * FEE_RATE_PPM + 500_000) // 1_000_000


def _pick(rng, pool: np.ndarray, k: int) -> np.ndarray:
    return np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))


def _channel_part(day: date, n: int, seed: int, channel: str):
    """Platform rows for one channel, and the channel's bill of them, with discrepancies."""
    rng = _rng(seed, day, channel)
    idx = np.arange(n)
    prefix = {"alipay": "A", "wechatpay": "W"}[channel]
    order_no = _ids(f"M{prefix}", day, idx)
    amount = rng.integers(100, 500_000, n)
    refund = rng.random(n) < 0.05
    status = np.where(rng.random(n) < 0.02, "failed", "success").astype(object)
    created = np.sort(rng.integers(0, 86_400 - 600, n))
    completed = created + rng.integers(1, 300, n)
    k = max(1, n // 200)
    ok = np.flatnonzero(status == "success")
    chosen = _pick(rng, ok, 4 * k)
    missing, mismatch, twice, processing = np.array_split(chosen, 4)
    status[processing] = "processing"  # the channel says success; the platform lags
    # A refund is known by its own refund number; some orders are refunded twice the same day
    # (two partial refunds of the same amount): half the refunds no discrepancy touches are
    # paired, the second refunding the first one's order.
    order = order_no.copy()  # the order a row belongs to
    calm = np.flatnonzero(refund & (status == "success"))
    calm = calm[~np.isin(calm, chosen)]
    pairs = calm[: 2 * (len(calm) // 4)].reshape(-1, 2)
    order[pairs[:, 1]] = order_no[pairs[:, 0]]
    amount[pairs[:, 1]] = amount[pairs[:, 0]]
    refund_no = np.where(refund, np.char.add("R", order_no), "")
    # Whether the channel returns a refunded payment's fee on the refund row (negative), or
    # bills refunds without a fee: both are in use; chosen per seed and day.
    returned_fees = _rng(seed, day, f"{channel}:fees").random() < 0.5

    platform = pd.DataFrame({
        "txn_id": _ids(f"T{prefix}", day, idx), "merchant_order_no": order,
        "type": np.where(refund, "refund", "payment"), "refund_no": refund_no,
        "original_order_no": np.where(refund, order, ""),
        "channel": channel, "account": f"{channel}:2088{seed % 1000:03d}0001",
        "direction": np.where(refund, "debit", "credit"), "amount_minor": amount,
        "currency": CURRENCY, "status": status,
        "created_at": _times(day, created),
        "completed_at": np.where(status == "success", _times(day, completed), np.datetime64("NaT")),
    })
    billed = np.flatnonzero(status != "failed")
    billed = billed[~np.isin(billed, missing)]
    bill_amount = amount.copy()
    bill_amount[mismatch] += rng.integers(1, 300, len(mismatch))
    rows = np.concatenate([billed, twice])
    extra = max(1, n // 400)
    bill = pd.DataFrame({
        "channel_txn_no": np.concatenate([_ids(f"{prefix}X", day, rows, 12)[:len(billed)],
                                          _ids(f"{prefix}D", day, twice, 12)]),
        "merchant_order_no": order[rows],
        "created_at": _times(day, created[rows]), "completed_at": _times(day, completed[rows]),
        "kind": np.where(refund[rows], "refund", "payment"),
        "refund_no": refund_no[rows],
        "amount_minor": bill_amount[rows],
        "merchant_id": f"{channel}-merchant-01",
    })
    # Payments the platform never recorded.
    orphan_idx = np.arange(n, n + extra)
    orphan_t = rng.integers(0, 86_400 - 600, extra)
    bill = pd.concat([bill, pd.DataFrame({
        "channel_txn_no": _ids(f"{prefix}X", day, orphan_idx, 12),
        "merchant_order_no": _ids(f"M{prefix}Z", day, np.arange(extra)),
        "created_at": _times(day, orphan_t), "completed_at": _times(day, orphan_t + 5),
        "kind": "payment", "refund_no": "", "amount_minor": rng.integers(100, 50_000, extra),
        "merchant_id": f"{channel}-merchant-01",
    })], ignore_index=True)
    fee = _fee(bill["amount_minor"])
    bill["fee_minor"] = np.where(bill["kind"] == "payment", fee, -fee if returned_fees else 0)
    bill = bill.sort_values(["completed_at", "channel_txn_no"], kind="stable",
                            ignore_index=True)
    def label(kind: str, i: int) -> dict:
        # a refund is reported under its refund number (int_transactions.reference)
        return {"type": kind, "source": f"{channel}_bill",
                "reference": str(refund_no[i] if refund[i] else order_no[i]),
                "kind": "refund" if refund[i] else "payment"}

    labels = (
        [label("missing_on_statement", i) for i in missing]
        + [label("amount_mismatch", i) for i in mismatch]
        + [label("duplicate", i) for i in twice]
        + [label("status_mismatch", i) for i in processing]
        + [{"type": "missing_on_platform", "source": f"{channel}_bill", "reference": str(r),
            "kind": "payment"} for r in _ids(f"M{prefix}Z", day, np.arange(extra))]
    )
    return platform, bill, labels


def _channel_net(bill: pd.DataFrame) -> int:
    """What the channel pays out for a day: payments - refunds - fees charged + fees returned
    (fee_minor is the signed cost)."""
    signed = np.where(bill["kind"] == "payment", bill["amount_minor"], -bill["amount_minor"])
    return int(signed.sum() - bill["fee_minor"].sum())


def _transfer_part(day: date, n: int, seed: int):
    """Bank transfers: platform rows and the collection accounts' bookings, incl. timing."""
    rng = _rng(seed, day, "bank_transfer")
    idx = np.arange(n)
    order_no = _ids("MB", day, idx)
    accounts = np.array(list(COLLECTION_ACCOUNTS))
    account = accounts[rng.integers(0, len(accounts), n)]
    amount = rng.integers(100, 2_000_000, n)
    direction = np.where(rng.random(n) < 0.85, "credit", "debit")
    created = np.sort(rng.integers(0, 86_400 - 3_600, n))
    booked = created + rng.integers(1, 1_800, n)
    k = max(1, n // 100)
    missing, mismatch, twice, charged, unreferenced = np.array_split(_pick(rng, idx, 5 * k), 5)
    platform = pd.DataFrame({
        "txn_id": _ids("TB", day, idx), "merchant_order_no": order_no,
        "channel": "bank_transfer", "account": account, "direction": direction,
        "amount_minor": amount, "currency": CURRENCY, "status": "success",
        "created_at": _times(day, created), "completed_at": _times(day, booked),
    })
    bank_amount = amount.copy()
    # Well beyond any tolerance rule: these must be reported, not matched.
    delta = rng.integers(500, 50_000, len(mismatch)) * rng.choice([-1, 1], len(mismatch))
    # Never at or below zero: a smaller amount than that is shown as a larger one instead.
    delta = np.where(amount[mismatch] + delta > 0, delta, -delta)
    bank_amount[mismatch] += delta
    # Incoming transfers the bank charged a small fee on: matched within tolerance.
    charged = charged[direction[charged] == "credit"]
    bank_amount[charged] -= rng.integers(1, 100, len(charged))
    keep = np.setdiff1d(idx, missing)
    rows = np.concatenate([keep, twice])
    reference = order_no.astype(object)
    reference[unreferenced] = ""  # the bank lost the reference: matched by amount and time
    bookings = pd.DataFrame({
        "account": account[rows], "reference": reference[rows], "direction": direction[rows],
        "amount_minor": bank_amount[rows],
        "booked_at": _times(day, np.concatenate([booked[keep], booked[twice] + 60])),
        "counterparty": "Platform customer",
    })
    extra_refs = _ids("XB", day, np.arange(k))
    extra_t = rng.integers(0, 86_400 - 60, k)
    bookings = pd.concat([bookings, pd.DataFrame({
        "account": accounts[rng.integers(0, len(accounts), k)], "reference": extra_refs,
        "direction": "credit", "amount_minor": rng.integers(100, 500_000, k),
        "booked_at": _times(day, extra_t), "counterparty": "Unknown remitter",
    })], ignore_index=True)
    labels = (
        [{"type": "missing_on_statement", "source": "bank", "reference": str(order_no[i])}
         for i in missing]
        + [{"type": "amount_mismatch", "source": "bank", "reference": str(order_no[i])}
           for i in mismatch]
        + [{"type": "duplicate", "source": "bank", "reference": str(order_no[i])} for i in twice]
        + [{"type": "missing_on_platform", "source": "bank", "reference": str(r)}
           for r in extra_refs]
        + [{"type": "within_tolerance", "source": "bank", "reference": str(order_no[i]),
            "rule": "reference_amount_tolerance"} for i in charged]
        + [{"type": "no_reference", "source": "bank", "reference": str(order_no[i]),
            "rule": "amount_time_window"} for i in unreferenced]
    )
    return platform, bookings, labels


def _late_transfers(day: date, seed: int, n: int):
    """Transfers the platform records just before midnight; the bank books them after it, on
    the next day's statement (timing)."""
    rng = _rng(seed, day, "late")
    k = max(1, n // 500)
    order_no = _ids("ML", day, np.arange(k))
    seconds = 86_400 - rng.integers(1, 120, k)
    account = np.array(list(COLLECTION_ACCOUNTS))[rng.integers(0, len(COLLECTION_ACCOUNTS), k)]
    amount = rng.integers(100, 200_000, k)
    platform = pd.DataFrame({
        "txn_id": _ids("TL", day, np.arange(k)), "merchant_order_no": order_no,
        "channel": "bank_transfer", "account": account, "direction": "credit",
        "amount_minor": amount, "currency": CURRENCY, "status": "success",
        "created_at": _times(day, seconds), "completed_at": _times(day, seconds),
    })
    bookings = pd.DataFrame({
        "account": account, "reference": order_no, "direction": "credit",
        "amount_minor": amount,
        "booked_at": _times(day + timedelta(days=1), rng.integers(5, 300, k)),
        "counterparty": "Platform customer",
    })
    return platform, bookings


def _custody_part(day: date, n: int, seed: int):
    """Users' recharges and withdrawals through the custody bank account."""
    rng = _rng(seed, day, "custody")
    idx = np.arange(n)
    serial = _ids("CF", day, idx)
    flow = np.where(rng.random(n) < 0.6, "recharge", "withdrawal")
    amount = rng.integers(1_000, 5_000_000, n)
    created = np.sort(rng.integers(0, 86_400 - 3_600, n))
    status = np.where(rng.random(n) < 0.01, "failed", "success")
    users = np.char.add("U", np.char.zfill(rng.integers(0, max(10, n // 5), n).astype(str), 7))
    flows = pd.DataFrame({
        "serial_no": serial, "user_fund_account": users, "flow_type": flow,
        "amount_minor": amount, "currency": CURRENCY, "status": status,
        "bank_account": CUSTODY_ACCOUNT, "created_at": _times(day, created),
        "completed_at": np.where(status == "success", _times(day, created + 60),
                                 np.datetime64("NaT")),
    })
    ok = status == "success"
    bookings = pd.DataFrame({
        "account": CUSTODY_ACCOUNT, "reference": serial[ok],
        "direction": np.where(flow[ok] == "recharge", "credit", "debit"),
        "amount_minor": amount[ok], "booked_at": _times(day, created[ok] + 90),
        "counterparty": users[ok],
    })
    return flows, bookings


def _operating_part(day: date, n: int, seed: int) -> pd.DataFrame:
    """A few bookings on each operating account: fees and payroll, not reconciled."""
    rng = _rng(seed, day, "operating")
    parts = []
    for i, account in enumerate(OPERATING_ACCOUNTS):
        parts.append(pd.DataFrame({
            "account": account, "reference": _ids(f"OP{i}", day, np.arange(n)),
            "direction": np.where(rng.random(n) < 0.5, "credit", "debit"),
            "amount_minor": rng.integers(1_000, 1_000_000, n),
            "booked_at": _times(day, np.sort(rng.integers(3_600, 80_000, n))),
            "counterparty": "Operating counterparty",
        }))
    return pd.concat(parts, ignore_index=True)


def _settlement(day: date, platform: pd.DataFrame, seed: int):
    """The clearing file: each channel payment debits the buyer's fund account and credits the
    seller's, less the platform fee, which is credited to the platform's fee account."""
    rng = _rng(seed, day, "settlement")
    paid = platform[(platform["channel"] != "bank_transfer") & (platform["status"] == "success")
                    & (platform["direction"] == "credit")]
    n = len(paid)
    users = max(10, n // 20)
    buyer = np.char.add("U", np.char.zfill(rng.integers(0, users, n).astype(str), 7))
    seller = np.char.add("S", np.char.zfill(rng.integers(0, max(2, users // 10), n).astype(str),
                                             5))
    amount = paid["amount_minor"].to_numpy()
    fee = (amount * 2_000 + 500_000) // 1_000_000  # platform fee 0.2 %
    moves = pd.concat([
        pd.DataFrame({"user_fund_account": buyer, "debit": amount, "credit": 0, "fee": 0}),
        pd.DataFrame({"user_fund_account": seller, "debit": 0, "credit": amount - fee,
                      "fee": 0}),
        pd.DataFrame({"user_fund_account": ["PLATFORM_FEE"], "debit": [0], "credit": [0],
                      "fee": [int(fee.sum())]}),
    ])
    per_user = moves.groupby("user_fund_account", sort=True).sum().reset_index()
    per_user.insert(0, "batch_no", f"STL{day:%Y%m%d}01")
    per_user.insert(0, "settlement_date", day.isoformat())
    per_user["currency"] = CURRENCY
    return per_user


def _balances(day: date, settlement: pd.DataFrame, custody: pd.DataFrame, seed: int,
              mirrors: pd.DataFrame):
    """User fund and fee accounts (opening + settlement + recharges - withdrawals = closing),
    and the platform's own record of each bank account (`bank_mirror`)."""
    rng = _rng(seed, day, "balances")
    flows = custody[custody["status"] == "success"]
    signed = np.where(flows["flow_type"] == "recharge", flows["amount_minor"],
                      -flows["amount_minor"])
    change = pd.concat([
        pd.Series(settlement["credit"].to_numpy() - settlement["debit"].to_numpy()
                  + settlement["fee"].to_numpy(), index=settlement["user_fund_account"]),
        pd.Series(signed, index=flows["user_fund_account"].to_numpy()),
    ]).groupby(level=0).sum()
    opening = rng.integers(10_000_000, 100_000_000, len(change))
    closing = opening + change.to_numpy()
    frozen = (np.abs(closing) * rng.integers(0, 20, len(change))) // 100
    users = pd.DataFrame({
        "as_of_date": day.isoformat(), "account": change.index,
        "account_type": np.where(change.index == "PLATFORM_FEE", "platform_fee", "user_fund"),
        "currency": CURRENCY, "opening_balance": opening, "closing_balance": closing,
        "available": closing - frozen, "frozen": frozen,
    })
    return pd.concat([users, mirrors.assign(as_of_date=day.isoformat())], ignore_index=True)


def _mirrors(platform: pd.DataFrame, custody: pd.DataFrame, settle_rows: list[dict],
             openings: dict[str, int]) -> pd.DataFrame:
    """The platform's record of its bank accounts: it starts the day from the bank's opening
    balance and moves it by what the platform itself recorded that day (its transfers, its
    users' recharges and withdrawals, and the channels' settlement notices)."""
    transfers = platform[(platform["channel"] == "bank_transfer")
                         & (platform["status"] == "success")]
    flows = custody[custody["status"] == "success"]
    moves = pd.concat([
        pd.Series(np.where(transfers["direction"] == "credit", transfers["amount_minor"],
                           -transfers["amount_minor"]), index=transfers["account"].to_numpy()),
        pd.Series(np.where(flows["flow_type"] == "recharge", flows["amount_minor"],
                           -flows["amount_minor"]), index=flows["bank_account"].to_numpy()),
        pd.Series([r["amount_minor"] for r in settle_rows],
                  index=[r["account"] for r in settle_rows], dtype="int64"),
    ]).groupby(level=0).sum()
    accounts = [*COLLECTION_ACCOUNTS, CUSTODY_ACCOUNT]
    opening = np.array([openings[a] for a in accounts], dtype="int64")
    closing = opening + np.array([int(moves.get(a, 0)) for a in accounts], dtype="int64")
    return pd.DataFrame({
        "account": accounts, "account_type": "bank_mirror", "currency": CURRENCY,
        "opening_balance": opening, "closing_balance": closing, "available": closing,
        "frozen": 0,
    })


def _payout(business_date: date, bill_day: date, channel: str, n: int, seed: int,
            i: int) -> dict:
    """The bank credit of a channel's bill day, booked this morning: the remittance names the
    bill date on about half the days (else reconciliation finds the bill day by its net)."""
    _, bill, _ = _channel_part(bill_day, n, seed, channel)
    payout = PAYOUTS[channel]
    rng = _rng(seed, business_date, f"payout-{channel}")
    dated = bool(rng.random() < 0.5)
    return {
        "account": payout["account"],
        # the channel's numeric end-to-end id (CAMT EndToEndId; the reference of a CSV export)
        "reference": f"{business_date:%Y%m%d}{int(rng.integers(10**11, 10**12))}",
        "remittance": (payout["dated"] if dated else payout["undated"]).format(day=bill_day),
        "direction": "credit", "amount_minor": _channel_net(bill),
        "booked_at": _times(business_date, np.array([3_600 + 60 * i]))[0],
        "counterparty": payout["payer"], "counterparty_account": payout["payer_account"],
    }


def build_day(business_date: date, scale: int, seed: int = 7) -> Day:
    """All of a business day's data, in memory, before any file format."""
    if scale < 50:
        raise ValueError("scale must be at least 50 transactions")
    shares = {c: int(scale * s) for c, s in CHANNELS.items()}
    n_transfer = scale - sum(shares.values())
    platform_parts, bills, labels = [], {}, []
    for channel, n in shares.items():
        rows, bill, found = _channel_part(business_date, n, seed, channel)
        platform_parts.append(rows)
        bills[channel] = bill
        labels += found
    transfers, bookings, found = _transfer_part(business_date, n_transfer, seed)
    labels += found
    late_today, _ = _late_transfers(business_date, seed, n_transfer)
    _, late_yesterday = _late_transfers(business_date - timedelta(days=1), seed, n_transfer)
    labels += [{"type": "timing", "source": "bank", "reference": str(r),
                "booked_on": (business_date + timedelta(days=1)).isoformat()}
               for r in late_today["merchant_order_no"]]
    labels += [{"type": "timing", "source": "bank", "reference": str(r),
                "recorded_on": (business_date - timedelta(days=1)).isoformat()}
               for r in late_yesterday["reference"]]
    custody, custody_bookings = _custody_part(business_date, max(10, scale // 20), seed)
    operating = _operating_part(business_date, max(5, scale // 2000), seed)

    # Yesterday's channel bills are settled to the bank this morning, net of fees.
    yesterday = business_date - timedelta(days=1)
    settle_rows = [_payout(business_date, yesterday, channel, shares[channel], seed, i)
                   for i, channel in enumerate(CHANNELS)]
    bookings = pd.concat([bookings, late_yesterday, custody_bookings, operating,
                          pd.DataFrame(settle_rows)], ignore_index=True)
    bookings["currency"] = CURRENCY
    bookings = bookings.sort_values(["account", "booked_at", "reference"], kind="stable",
                                    ignore_index=True)
    bookings["bank_serial"] = (
        "B" + business_date.strftime("%Y%m%d")
        + bookings.groupby("account").cumcount().astype(str).str.zfill(9)
        + bookings["account"].str[-2:])
    rng = _rng(seed, business_date, "openings")
    openings = {a: int(rng.integers(50_000_000, 500_000_000))
                for a in sorted(bookings["account"].unique())}

    platform = pd.concat([*platform_parts, transfers, late_today], ignore_index=True)
    settlement = _settlement(business_date, platform, seed)
    mirrors = _mirrors(platform, custody, settle_rows, openings)
    balances = _balances(business_date, settlement, custody, seed, mirrors)
    return Day(business_date, platform, bills, bookings, openings, custody, settlement,
               balances, labels)


# ---- writing files: each format's renderer in tally.devtools.samples ------------------------

def _bank_files(day: Day) -> Iterator[tuple[str, str, bytes]]:
    """One statement per bank account, in the format that account's bank exports."""
    from tally.devtools.samples import camt053, cn_bank, mt940, platform

    d = f"{day.business_date:%Y%m%d}"
    for account, rows in day.bookings.groupby("account", sort=True):
        source = STATEMENT_SOURCES[account]
        rows = rows.reset_index(drop=True)
        tail = account[-4:]
        if source == "bank_csv":
            name, data = f"bank_{tail}_{d}.csv", platform.bank_csv(rows, day.openings[account])
        elif source == "bank_camt053":
            name = f"camt053_{tail}_{d}.xml"
            data = camt053.render(rows, day.openings, day.business_date, version="08")
        elif source == "bank_mt940":
            name, data = f"mt940_{tail}_{d}.sta", mt940.render(rows, day.openings,
                                                             day.business_date)
        elif source == "bank_icbc_csv":
            name = f"icbc_{tail}_{d}.csv"
            data = cn_bank.render_icbc_csv(rows, day.openings, day.business_date)
        elif source == "bank_cmb_csv":
            name = f"cmb_{tail}_{d}.csv"
            data = cn_bank.render_cmb_csv(rows, day.openings, day.business_date)
        else:
            name = f"ccb_{tail}_{d}.xls"
            data = cn_bank.render_ccb_xls(rows, day.openings, day.business_date)
        yield f"{source}:{tail}", name, data
        del data  # not kept while the next statement is rendered


def _channel_files(day: Day) -> Iterator[tuple[str, str, bytes]]:
    """The channels' bills as they deliver them: Alipay's zip, WeChat Pay's gzip."""
    from tally.devtools.samples import alipay, wechatpay

    d = f"{day.business_date:%Y%m%d}"
    # Both readings of the 汇总 订单金额 in use: every row signed, or the payments only.
    order_total = ("payments", "all_rows")[day.business_date.toordinal() % 2]
    yield "alipay_bill", *alipay.render_bill_zip(day.channel_bills["alipay"], day.business_date,
                                                 ALIPAY_PID, order_total=order_total)
    yield ("wechatpay_trade_bill", f"wechatpay_tradebill_ALL_{d}.csv.gz",
           wechatpay.render_trade_bill(day.channel_bills["wechatpay"], day.business_date, "ALL",
                                       gzip=True))


def render(day: Day) -> Iterator[tuple[str, str, bytes]]:
    """Every file of the day, one at a time (so one file's bytes are in memory at once):
    (key, file name, bytes); the key's source names the folder."""
    from tally.devtools.samples import platform

    d = f"{day.business_date:%Y%m%d}"
    yield "platform_ledger", f"platform_ledger_{d}.csv", platform.ledger_csv(day.platform)
    yield ("platform_custody_flows", f"custody_flows_{d}.csv",
           platform.custody_flows_csv(day.custody_flows))
    yield "platform_settlement", f"settlement_{d}.csv", platform.settlement_csv(day.settlement)
    yield "platform_balances", f"balances_{d}.csv", platform.balances_csv(day.balances)
    yield from _bank_files(day)
    yield from _channel_files(day)


def generate_day(business_date: date, scale: int, out_dir: Path, seed: int = 7,
                 late: tuple[str, ...] = ()) -> GeneratedDay:
    """Write the day's files under out_dir/<source>/<date>/ and labels under out_dir/labels/.
    Sources named in `late` are written under out_dir/late/<source>/<date>/ instead: files
    delivered after their day ran, to be dropped in the inbox later."""
    day = build_day(business_date, scale, seed)
    out_dir = Path(out_dir)
    written = {}
    late_files = []
    for key, name, data in render(day):
        source = key.split(":")[0]
        folder = (out_dir / "late" if source in late else out_dir) / source / \
            business_date.isoformat()
        if source in late:
            late_files.append({"type": "late_file", "source": source,
                               "file": str(folder / name)})
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        written[key] = folder / name
        del data  # before the next file is rendered
    labels = {
        "business_date": business_date.isoformat(), "seed": seed, "scale": scale,
        "rows": {"platform_ledger": len(day.platform), "bank": len(day.bookings),
                 **{f"{c}_bill": len(b) for c, b in day.channel_bills.items()},
                 "platform_custody_flows": len(day.custody_flows),
                 "platform_settlement": len(day.settlement),
                 "platform_balances": len(day.balances)},
        "discrepancies": day.discrepancies + late_files,
    }
    labels_path = out_dir / "labels" / f"{business_date.isoformat()}.json"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels_path.write_text(json.dumps(labels, indent=1))
    return GeneratedDay(business_date, written, labels_path)
