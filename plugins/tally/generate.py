"""Generate one coherent business day in every supported source's format, with ground truth.

The same transactions are written as the platform sees them and as the bank books them; a
known set of discrepancies is injected and listed in a labels file, so tests and benchmarks
can check that reconciliation finds exactly those and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tally import money

CURRENCY = "CNY"
BANK_ACCOUNTS = ["6222020200112233445", "6214830100556677"]
DISCREPANCY_TYPES = ("missing_on_statement", "missing_on_platform", "amount_mismatch",
                     "duplicate")


@dataclass(frozen=True)
class GeneratedDay:
    business_date: date
    files: dict[str, Path]  # source -> file
    labels: Path


def _amount_text(minor: np.ndarray) -> list[str]:
    return [money.format_minor(int(m), CURRENCY) for m in minor]


def generate_day(business_date: date, scale: int, out_dir: Path, seed: int = 7) -> GeneratedDay:
    if scale < 10:
        raise ValueError("scale must be at least 10 transactions")
    rng = np.random.default_rng([seed, business_date.toordinal()])
    n = scale
    day = business_date.strftime("%Y%m%d")
    idx = np.arange(n)
    txn_id = np.char.add(f"T{day}", np.char.zfill(idx.astype(str), 9))
    order_no = np.char.add(f"M{day}", np.char.zfill(rng.permutation(n).astype(str), 9))
    amount = rng.integers(100, 2_000_000, n)  # 1.00 .. 20,000.00 CNY, in fen
    direction = np.where(rng.random(n) < 0.85, "credit", "debit")
    account = np.array(BANK_ACCOUNTS)[rng.integers(0, len(BANK_ACCOUNTS), n)]
    # Created during the day (local time); the bank books each a few seconds to minutes later,
    # never past midnight here (cross-day timing is a discrepancy of its own).
    created_s = np.sort(rng.integers(0, 86_400 - 3_600, n))
    booked_s = created_s + rng.integers(1, 1_800, n)
    midnight = datetime.combine(business_date, datetime.min.time())

    k = max(1, n // 100)
    chosen = rng.choice(n, size=3 * k, replace=False)
    missing_on_statement, amount_mismatch, booked_twice = np.split(chosen, [k, 2 * k])
    delta = rng.integers(1, 500, k) * np.where(rng.random(k) < 0.5, -1, 1)

    platform = pd.DataFrame({
        "txn_id": txn_id, "merchant_order_no": order_no, "channel": "bank_transfer",
        "account": account, "direction": direction, "amount": _amount_text(amount),
        "currency": CURRENCY, "status": "success",
        "created_at": [(midnight + timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S")
                       for s in created_s],
    })
    platform["completed_at"] = [(midnight + timedelta(seconds=int(s))).strftime(
        "%Y-%m-%d %H:%M:%S") for s in booked_s]

    bank_amount = amount.copy()
    bank_amount[amount_mismatch] += delta
    keep = np.ones(n, dtype=bool)
    keep[missing_on_statement] = False
    bank = pd.DataFrame({
        "account": account[keep], "reference": order_no[keep], "direction": direction[keep],
        "amount": bank_amount[keep], "seconds": booked_s[keep],
        "counterparty": "Platform customer",
    })
    # Money the platform never recorded: bank bookings with references it does not know.
    extra_refs = np.char.add(f"X{day}", np.char.zfill(np.arange(k).astype(str), 9))
    extra = pd.DataFrame({
        "account": np.array(BANK_ACCOUNTS)[rng.integers(0, len(BANK_ACCOUNTS), k)],
        "reference": extra_refs, "direction": "credit",
        "amount": rng.integers(100, 500_000, k), "seconds": rng.integers(0, 86_400, k),
        "counterparty": "Unknown remitter",
    })
    # The bank books some payments twice: same reference and amount, a new serial.
    twice = pd.DataFrame({
        "account": account[booked_twice], "reference": order_no[booked_twice],
        "direction": direction[booked_twice], "amount": bank_amount[booked_twice],
        "seconds": booked_s[booked_twice] + 60, "counterparty": "Platform customer",
    })
    bank = pd.concat([bank, extra, twice], ignore_index=True)

    out_dir = Path(out_dir)
    files = {
        "platform_ledger": out_dir / "platform_ledger" / business_date.isoformat()
        / f"platform_ledger_{day}.csv",
    }
    files["platform_ledger"].parent.mkdir(parents=True, exist_ok=True)
    platform.to_csv(files["platform_ledger"], index=False)

    for n_acct, (acct, rows) in enumerate(bank.groupby("account", sort=True)):
        rows = rows.sort_values(["seconds", "reference"], kind="stable").reset_index(drop=True)
        signed = np.where(rows["direction"] == "credit", rows["amount"], -rows["amount"])
        opening = int(rng.integers(50_000_000, 500_000_000))
        balance = opening + np.cumsum(signed)
        statement = pd.DataFrame({
            "Account": acct,
            "Value Date": business_date.isoformat(),
            "Booking Time": [(midnight + timedelta(seconds=int(s))).strftime("%H:%M:%S")
                             for s in rows["seconds"]],
            "Bank Serial": [f"B{day}{n_acct}{i:09d}" for i in range(len(rows))],
            "Reference": rows["reference"],
            "Counterparty": rows["counterparty"],
            "Debit": [f"{int(a) // 100:,}.{int(a) % 100:02d}" if d == "debit" else ""
                      for a, d in zip(rows["amount"], rows["direction"], strict=True)],
            "Credit": [f"{int(a) // 100:,}.{int(a) % 100:02d}" if d == "credit" else ""
                       for a, d in zip(rows["amount"], rows["direction"], strict=True)],
            "Balance": [f"{int(b) // 100:,}.{int(b) % 100:02d}" for b in balance],
            "Currency": CURRENCY,
        })
        path = out_dir / "bank_csv" / business_date.isoformat() / f"bank_{acct[-4:]}_{day}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        statement.to_csv(path, index=False)
        files[f"bank_csv:{acct[-4:]}"] = path

    labels = {
        "business_date": business_date.isoformat(),
        "seed": seed,
        "scale": n,
        "expected": {
            "platform_rows": n,
            "bank_rows": int(len(bank)),
            "matched_pairs": int(n - 2 * k),
        },
        "discrepancies": (
            [{"type": "missing_on_statement", "source": "platform_ledger",
              "reference": str(order_no[i])} for i in sorted(missing_on_statement)]
            + [{"type": "missing_on_platform", "source": "bank_csv", "reference": str(r)}
               for r in extra_refs]
            + [{"type": "duplicate", "source": "bank_csv", "reference": str(order_no[i])}
               for i in sorted(booked_twice)]
            + [{"type": "amount_mismatch", "source": "platform_ledger",
                "reference": str(order_no[i]), "difference_minor": int(d)}
               for i, d in sorted(zip(amount_mismatch, delta, strict=True))]
        ),
    }
    labels_path = out_dir / "labels" / f"{business_date.isoformat()}.json"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels_path.write_text(json.dumps(labels, indent=1))
    return GeneratedDay(business_date, files, labels_path)
