"""The benchmark's baselines: what a team might write instead of Tally, on the same files.

1. pandas: read the files, standardise them, merge on reference (exact), then a tolerance pass
   and the grouping pass on what is left;
2. the same rules as plain SQL in one in-process DuckDB connection (it standardises too).

Both read the files with Tally's own parsers (parsing is the same for everyone), apply the
waterfall of include/reconciliation.yaml to one business day and return the rows they leave
unmatched and the pairs each rule made, to be compared with Tally's marts for that day. Each
runs in a child process of its own, so its time and peak memory are its own.

To find exactly what Tally finds, the baselines reproduce its conventions: raw tables hold
NULL for an empty field (COPY), NULL keys never match, the n-th of identical rows pairs with
the n-th, and ties are broken by the same stable transaction key (an md5 of the row's natural
identity in its source, as dbt's `stable_key` macro computes it).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tally import formats, recon, sources
from tally.config import Settings

CN_BANKS = ("bank_icbc_csv", "bank_cmb_csv", "bank_ccb_xls", "bank_abc_csv", "bank_boc_csv",
            "bank_bocom_csv")
# The canonical columns the baselines need (a subset of int_transactions).
CANONICAL = ["transaction_key", "source", "side", "kind", "account", "reference",
             "settlement_batch", "channel", "direction", "amount_minor", "fee_minor",
             "currency", "status", "event_at", "business_date", "original_order_no"]
# A bank booking's texts that tell a channel's payout (not canonical columns the baselines keep).
PAYOUT_TEXTS = ["counterparty", "counterparty_account", "remittance"]
# How an unmatched row is recognised in Tally's outcomes and in a baseline's result.
IDENTITY = ["project", "recon_side", "source", "reference", "direction", "amount_minor"]


@dataclass
class BaselineResult:
    """What one run of the waterfall left: the unmatched rows (a multiset of IDENTITY tuples:
    two identical rows left open count twice) and the pairs each (project, rule) made."""

    open_rows: Counter = field(default_factory=Counter)
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)

    def projects(self) -> set[str]:
        return {row[0] for row in self.open_rows} | {project for project, _ in self.pairs}


@dataclass(frozen=True)
class Day:
    """A day's parsed files (raw-table shape, by source) and what matching needs besides."""

    business_date: date
    raw: dict[str, pd.DataFrame]
    bank_roles: dict[str, str]  # bank account -> collection, custody, operating
    timezone: str  # the zone naive source times are read in (dbt var default_timezone)
    fee_signs: dict[str, str] = field(default_factory=dict)  # source -> fee_sign (dbt var)
    settlements: tuple = ()  # tally.accounts.Settlement: how channel payouts are recognised


# ---- reading ---------------------------------------------------------------------------------

def read_day(files: dict[str, Path], settings: Settings) -> dict[str, pd.DataFrame]:
    """Parse a day's files (keys "<source>" or "<source>:<part>") with Tally's parsers, into
    one frame per source in raw-table shape, as loading COPYs them: an empty text is NULL, each
    file's rows are numbered (record_no) and carry the file's business date, which is the
    inbox folder the file was dropped in (<inbox>/<source>/<business_date>/)."""
    configs = sources.load_all(settings)
    parts: dict[str, list[pd.DataFrame]] = {}
    # Tally numbers files as it lands them: source by source, each folder's files by name.
    for file_order, (key, path) in enumerate(sorted(files.items(),
                                                    key=lambda kv: (kv[0], kv[1].name))):
        source = key.split(":")[0]
        rows = formats.parse(path.read_bytes(), configs[source], path.name).rows
        rows = rows.replace("", None)
        rows.insert(0, "record_no", np.arange(1, len(rows) + 1))
        rows.insert(0, "file_order", file_order)
        rows["business_date"] = pd.Timestamp(date.fromisoformat(path.parent.name))
        parts.setdefault(source, []).append(rows)
    return {source: pd.concat(frames, ignore_index=True) for source, frames in parts.items()}


def day_of(frames: dict[str, pd.DataFrame], settings: Settings) -> Day:
    """The parsed frames of one business day, with the bank accounts' roles (the registry,
    include/accounts.yaml) and the zone naive times are read in (dbt var default_timezone)."""
    from tally import accounts

    registry = accounts.load(settings)
    roles = registry.roles()
    project = yaml.safe_load(Path(settings.dbt_project_dir, "dbt_project.yml").read_text())
    days = {d.date() for frame in frames.values() for d in frame["business_date"].unique()}
    if len(days) != 1:
        raise ValueError(f"the baselines reconcile one business day; the files have {days}")
    return Day(days.pop(), frames, roles, project["vars"]["default_timezone"],
               recon.fee_signs(settings),  # as dbt gets them (var fee_signs)
               tuple(registry.settlements()))


# ---- pandas: standardise ---------------------------------------------------------------------

def _trim(values: pd.Series) -> pd.Series:
    return values.str.strip()


def _nonempty(values: pd.Series) -> pd.Series:
    values = values.str.strip()
    return values.mask(values == "")


def _local(text: pd.Series, tz: str) -> pd.Series:
    """A naive source time read in the source's zone (the dbt macro local_timestamp)."""
    return pd.to_datetime(_nonempty(text), format="ISO8601").dt.tz_localize(tz)


def _occurrence(raw: pd.DataFrame, partition: list[str]) -> pd.Series:
    """row_number() over (partition by ..., business_date order by file_id, record_no): the
    staging models number true copies so, within a date (record_no and line_no run in the
    same order)."""
    ordered = raw.sort_values(["business_date", "file_order", "record_no"], kind="stable")
    return (ordered.groupby([*partition, "business_date"], dropna=False, sort=False).cumcount()
            .reindex(raw.index) + 1)


def _day(raw: pd.DataFrame) -> pd.Series:
    """The business date as PostgreSQL prints a date: part of every key with an occurrence."""
    return raw["business_date"].dt.strftime("%Y-%m-%d")


def _stable_key(source: str, *parts: pd.Series) -> pd.Series:
    """md5(concat_ws('|', source, coalesce(part::text, ''), ...)), as the dbt macro does."""
    joined = pd.Series(source, index=parts[0].index, dtype=object)
    for part in parts:
        joined = joined + "|" + part.astype(object).where(part.notna(), "").astype(str)
    return pd.Series([hashlib.md5(text.encode()).hexdigest() for text in joined],
                     index=joined.index, dtype=object)


def _frame(raw: pd.DataFrame, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(index=raw.index)
    for name in [*CANONICAL, *PAYOUT_TEXTS]:
        value = columns.get(name)
        frame[name] = raw["business_date"] if name == "business_date" else value
    return frame


def _platform_ledger(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    occurrence = _occurrence(raw, ["txn_id"])
    channel, direction = _trim(raw["channel"]), _trim(raw["direction"])
    given = _nonempty(raw["type"])
    kind = np.select([channel == "bank_transfer", given.notna(), direction == "debit"],
                     ["transfer", given, "refund"], "payment")
    order = _nonempty(raw["original_order_no"]).fillna(_trim(raw["merchant_order_no"]))
    reference = _trim(raw["merchant_order_no"]).where(
        kind != "refund", _nonempty(raw["refund_no"]).fillna(order))
    return _frame(
        raw, transaction_key=_stable_key("platform_ledger", raw["txn_id"], _day(raw),
                                         occurrence),
        source="platform_ledger", side="platform", kind=kind, account=_trim(raw["account"]),
        reference=reference, original_order_no=order, channel=channel, direction=direction,
        amount_minor=raw["amount_minor"], fee_minor=0,
        currency=_trim(raw["currency"]).str.upper(), status=_trim(raw["status"]),
        event_at=_local(raw["created_at"], day.timezone))


def _custody_flows(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    occurrence = _occurrence(raw, ["serial_no"])
    flow_type = _trim(raw["flow_type"])
    return _frame(
        raw, transaction_key=_stable_key("platform_custody_flows", _trim(raw["serial_no"]),
                                         _day(raw), occurrence),
        source="platform_custody_flows", side="platform", kind=flow_type,
        account=_trim(raw["bank_account"]), reference=_trim(raw["serial_no"]),
        channel="custody", direction=np.where(flow_type == "recharge", "credit", "debit"),
        amount_minor=raw["amount_minor"], fee_minor=0,
        currency=_trim(raw["currency"]).str.upper(), status=_trim(raw["status"]),
        event_at=_local(raw["created_at"], day.timezone))


def _channel_bill(raw: pd.DataFrame, day: Day, source: str, channel: str, refund_no: str,
                  amount: pd.Series, event_at: str, merchant_refund_no: pd.Series
                  ) -> pd.DataFrame:
    """A channel's bill: refunds are debits; the bill day's rows are paid out as one batch."""
    occurrence = _occurrence(raw, ["channel_txn_no", refund_no, "kind"])
    order = _nonempty(raw["merchant_order_no"])
    key = _stable_key(source, _trim(raw["channel_txn_no"]), _trim(raw[refund_no]), raw["kind"],
                      _day(raw), occurrence)
    batch = f"{channel.upper()}-SETTLE-" + raw["business_date"].dt.strftime("%Y%m%d")
    return _frame(
        raw, transaction_key=key, source=source, side="channel", kind=raw["kind"],
        account=_trim(raw["merchant_id"]),
        reference=order.where(raw["kind"] != "refund", merchant_refund_no.fillna(order)),
        original_order_no=order, settlement_batch=batch, channel=channel,
        direction=np.where(raw["kind"] == "refund", "debit", "credit"), amount_minor=amount,
        fee_minor=_fee_cost(raw["fee_minor"], raw["kind"], day.fee_signs.get(source)),
        currency=_trim(raw["currency"]).str.upper(),
        status="success", event_at=_local(raw[event_at], day.timezone))


def _fee_cost(fee: pd.Series, kind: pd.Series, convention: str | None) -> pd.Series:
    """The printed fee as a signed cost (the dbt macro fee_cost)."""
    if convention == "as_printed_cost":
        return fee
    if convention == "as_printed_deduction":
        return -fee
    if convention == "charged_on_payments":
        return fee.abs().where(kind != "refund", -fee.abs())
    raise ValueError(f"no fee_sign convention {convention!r}")


def _fee_cost_sql(convention: str | None) -> str:
    if convention == "as_printed_cost":
        return "fee_minor"
    if convention == "as_printed_deduction":
        return "(-fee_minor)"
    if convention == "charged_on_payments":
        return "(case when kind = 'refund' then -abs(fee_minor) else abs(fee_minor) end)"
    raise ValueError(f"no fee_sign convention {convention!r}")


def _alipay(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    return _channel_bill(raw, day, "alipay_bill", "alipay", "refund_no",
                         raw["amount_minor"].abs(), "completed_at", _nonempty(raw["refund_no"]))


def _wechatpay(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    amount = raw["refund_amount_minor"].where(raw["kind"] == "refund",
                                              raw["settlement_amount_minor"])
    refund_no = _nonempty(raw["refund_no"])
    return _channel_bill(raw, day, "wechatpay_trade_bill", "wechatpay", "channel_refund_no",
                         amount, "trade_time", refund_no.mask(refund_no == "0"))


def _bank(raw: pd.DataFrame, source, key, account, reference, direction, amount,
          booked_at, counterparty, counterparty_account, remittance) -> pd.DataFrame:
    """A bank booking (whether it is a channel's payout is decided by _payouts)."""
    return _frame(
        raw, transaction_key=key, source=source, side="bank", kind="booking", account=account,
        reference=reference, settlement_batch=None, channel=None, direction=direction,
        amount_minor=amount, fee_minor=0, currency=_trim(raw["currency"]).str.upper(),
        status="success", event_at=booked_at, counterparty=counterparty,
        counterparty_account=counterparty_account, remittance=remittance)


def _bank_csv(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    occurrence = _occurrence(raw, ["account", "bank_serial"])
    net = raw["credit_minor"] - raw["debit_minor"]
    time_of_day = _nonempty(raw["booking_time"]).fillna("00:00:00")
    return _bank(raw, "bank_csv",
                 _stable_key("bank_csv", _trim(raw["account"]), _trim(raw["bank_serial"]),
                             _day(raw), occurrence),
                 _trim(raw["account"]), _nonempty(raw["reference"]),
                 np.where(net >= 0, "credit", "debit"), net.abs(),
                 _local(raw["value_date"] + " " + time_of_day, day.timezone),
                 _trim(raw["counterparty"]), None, _nonempty(raw["reference"]))


def _camt053(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    occurrence = _occurrence(raw, ["account", "statement_id", "entry_seq", "bank_reference"])
    text = raw["booking_date_text"]
    with_offset = text.str.contains(r"[+-]\d\d:?\d\d$|Z$", regex=True).fillna(False)
    with_time = text.str.contains("T", regex=False).fillna(False)
    booked_at = pd.Series(pd.NaT, index=raw.index, dtype=f"datetime64[ns, {day.timezone}]")
    if with_offset.any():
        booked_at[with_offset] = pd.to_datetime(text[with_offset], format="ISO8601",
                                                utc=True).dt.tz_convert(day.timezone)
    local = with_time & ~with_offset
    booked_at[local] = _local(text[local].str.replace("T", " "), day.timezone)
    dated = ~with_time & ~with_offset
    booked_at[dated] = _local(raw["booking_date"][dated] + " 00:00:00", day.timezone)
    return _bank(raw, "bank_camt053",
                 _stable_key("bank_camt053", _trim(raw["account"]), raw["statement_id"],
                             raw["entry_seq"], raw["bank_reference"], _day(raw), occurrence),
                 _trim(raw["account"]),
                 _nonempty(raw["end_to_end_id"]).fillna(_nonempty(raw["remittance"])),
                 raw["direction"], raw["amount_minor"], booked_at,
                 _nonempty(raw["counterparty"]), _nonempty(raw["counterparty_account"]),
                 _nonempty(raw["remittance"]).fillna(_nonempty(raw["additional_info"])))


def _mt940(raw: pd.DataFrame, day: Day) -> pd.DataFrame:
    occurrence = _occurrence(raw, ["account", "statement_ref", "bank_reference",
                                   "customer_reference", "amount_minor"])
    return _bank(raw, "bank_mt940",
                 _stable_key("bank_mt940", _trim(raw["account"]), raw["statement_ref"],
                             raw["bank_reference"], raw["customer_reference"],
                             raw["amount_minor"], _day(raw), occurrence),
                 _trim(raw["account"]),
                 _nonempty(raw["customer_reference"]), raw["direction"], raw["amount_minor"],
                 _local(raw["value_date"] + " 00:00:00", day.timezone),
                 _nonempty(raw["info"]), None, _nonempty(raw["info"]))


def _cn_bank(raw: pd.DataFrame, day: Day, source: str) -> pd.DataFrame:
    raw = raw.assign(source=source)
    occurrence = _occurrence(raw, ["source", "account", "booking_date", "bank_serial",
                                   "reference", "direction", "amount_minor"])
    time_of_day = _nonempty(raw["booking_time"]).fillna("00:00:00")
    return _bank(raw, source,
                 _stable_key("bank_cn", raw["source"], _trim(raw["account"]),
                             raw["booking_date"], raw["bank_serial"], raw["reference"],
                             raw["direction"], raw["amount_minor"], _day(raw), occurrence),
                 _nonempty(raw["account"]),
                 _nonempty(raw["reference"]).fillna(_nonempty(raw["summary"])),
                 raw["direction"], raw["amount_minor"],
                 _local(raw["booking_date"] + " " + time_of_day, day.timezone),
                 _nonempty(raw["counterparty"]), _nonempty(raw["counterparty_account"]),
                 _remittance_cn(raw))


def _remittance_cn(raw: pd.DataFrame) -> pd.Series:
    """摘要 and the remittance text joined by a space (concat_ws skips NULLs)."""
    summary, reference = _nonempty(raw["summary"]), _nonempty(raw["reference"])
    both = summary + " " + reference
    return both.fillna(summary).fillna(reference)


def _name_key(name) -> str | None:
    """A payer name as compared (the dbt macro payer_name_key)."""
    if not isinstance(name, str):
        return None
    return name.replace("（", "(").replace("）", ")").replace(" ", "").upper()


def _captured_date(text: str) -> pd.Timestamp | None:
    digits = text.replace("-", "")
    if not re.fullmatch(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])", digits):
        return None
    try:
        return pd.Timestamp(date(int(digits[:4]), int(digits[4:6]), int(digits[6:])))
    except ValueError:
        return None


def _payouts(rows: pd.DataFrame, day: Day) -> pd.DataFrame:
    """int_transactions' bank CTE and batch rows: a credit from a channel's payer on an account
    it settles into is its payout (kind settlement, its batch when the remittance names the
    bill date; unidentified_settlement when it names none and no bill day's net fits), and each
    channel bill day is one settlement_batch row."""
    bills = rows[rows["side"] == "channel"]
    batches = (bills.groupby(["channel", "account", "business_date", "currency"], as_index=False)
               .agg(settlement_batch=("settlement_batch", "min"),
                    net=("net_amount_minor", "sum"), event_at=("event_at", "max"),
                    row_count=("transaction_key", "size")))
    batch_rows = pd.DataFrame({
        "transaction_key": _stable_key("channel_batch", batches["channel"], batches["account"],
                                       batches["business_date"].dt.strftime("%Y-%m-%d"),
                                       batches["currency"]),
        "source": "channel_batch", "side": "channel", "kind": "settlement_batch",
        "account": batches["account"], "reference": batches["settlement_batch"],
        "settlement_batch": batches["settlement_batch"], "channel": batches["channel"],
        "direction": np.where(batches["net"] >= 0, "credit", "debit"),
        "amount_minor": batches["net"].abs().astype("int64"), "fee_minor": 0,
        "currency": batches["currency"], "status": "success", "event_at": batches["event_at"],
        "business_date": batches["business_date"],
        "signed_amount_minor": batches["net"].astype("int64"),
        "net_amount_minor": batches["net"].astype("int64"),
    })
    rows = rows.copy()
    candidates = rows[(rows["side"] == "bank") & (rows["direction"] == "credit")]
    names = candidates["counterparty"].map(_name_key)
    for index in candidates.index:
        found = None
        for rule in sorted(day.settlements, key=lambda s: s.channel):
            if rule.account != candidates.at[index, "account"]:
                continue
            payer_account = candidates.at[index, "counterparty_account"]
            name = names[index] if isinstance(names[index], str) else None
            if (name is not None and any(_name_key(n) in name for n in rule.payer_names)) or (
                    isinstance(payer_account, str) and payer_account in rule.payer_accounts):
                found = rule
                break
        if found is None:
            continue
        text, bill_date = candidates.at[index, "remittance"], None
        for pattern in found.remittance_patterns if isinstance(text, str) else ():
            match = re.search(pattern, text)
            if match:
                bill_date = _captured_date(match.group(1) or "")
                break
        booked = candidates.at[index, "business_date"]
        if bill_date is not None:
            kind = "settlement"
            rows.at[index, "settlement_batch"] = f"{found.channel.upper()}-SETTLE-" \
                                                 f"{bill_date:%Y%m%d}"
        else:
            delay = (booked - batches["business_date"]).dt.days
            fits = ((batches["channel"] == found.channel) & (batches["net"] >= 0)
                    & (batches["net"] == candidates.at[index, "amount_minor"])
                    & (batches["currency"] == candidates.at[index, "currency"])
                    & delay.between(found.min_delay_days, found.max_delay_days))
            kind = "settlement" if fits.any() else "unidentified_settlement"
        rows.at[index, "kind"] = kind
        rows.at[index, "channel"] = found.channel
    return pd.concat([rows, batch_rows], ignore_index=True)


STANDARDISE = {"platform_ledger": _platform_ledger, "platform_custody_flows": _custody_flows,
               "alipay_bill": _alipay, "wechatpay_trade_bill": _wechatpay,
               "bank_csv": _bank_csv, "bank_camt053": _camt053, "bank_mt940": _mt940}


def standardise(day: Day) -> pd.DataFrame:
    """The canonical rows (int_transactions, the columns matching needs)."""
    parts = []
    for source, raw in day.raw.items():
        if source in STANDARDISE:
            parts.append(STANDARDISE[source](raw, day))
        elif source in CN_BANKS:
            parts.append(_cn_bank(raw, day, source))
    rows = pd.concat(parts, ignore_index=True)
    rows["event_at"] = pd.to_datetime(rows["event_at"], utc=True)
    rows["amount_minor"] = rows["amount_minor"].astype("int64")
    rows["fee_minor"] = rows["fee_minor"].astype("int64")
    signed = rows["amount_minor"].where(rows["direction"] == "credit", -rows["amount_minor"])
    rows["signed_amount_minor"] = signed
    rows["net_amount_minor"] = signed - rows["fee_minor"]
    rows["business_date"] = pd.to_datetime(rows["business_date"])
    rows = _payouts(rows, day)
    rows["account_role"] = rows["account"].map(day.bank_roles)
    return rows


# ---- pandas: match ---------------------------------------------------------------------------

_TERM = re.compile(r"^(\w+)\s*(=|<>)\s*'([^']*)'$|^(\w+)\s+is\s+(not\s+)?null$"
                   r"|^(\w+)\s+in\s+\(([^)]*)\)$", re.IGNORECASE)


def _where(rows: pd.DataFrame, condition: str) -> pd.Series:
    """A project's side condition (SQL on int_transactions) as a mask. It understands what the
    configuration uses: `col = 'v'`, `col <> 'v'`, `col is [not] null`, `col in ('v', ...)`,
    joined by `and`; a NULL compares as SQL does (never equal, never unequal)."""
    mask = pd.Series(True, index=rows.index)
    for term in re.split(r"\s+and\s+", condition.strip(), flags=re.IGNORECASE):
        found = _TERM.match(term.strip())
        if not found:
            raise ValueError(f"the pandas baseline cannot read the condition {term!r}")
        column, op, value, null_column, negated, in_column, values = found.groups()
        if in_column:
            mask &= rows[in_column].isin(re.findall(r"'([^']*)'", values))
        elif null_column:
            mask &= rows[null_column].notna() if negated else rows[null_column].isna()
        else:
            known = rows[column].notna()
            mask &= known & ((rows[column] == value) if op == "=" else (rows[column] != value))
    return mask


def _days_ok(pairs: pd.DataFrame, rule: dict) -> pd.Series:
    apart = (pairs["business_date_l"] - pairs["business_date_r"]).dt.days.abs()
    ok = pd.Series(True, index=pairs.index)
    if rule.get("min_days_apart") is not None:
        ok &= apart >= rule["min_days_apart"]
    if rule.get("max_days_apart") is not None:
        ok &= apart <= rule["max_days_apart"]
    return ok


def _first_by(frame: pd.DataFrame, partition: str, order: list[str]) -> pd.Series:
    """row_number() over (partition by ... order by ...) = 1."""
    ordered = frame.sort_values(order, kind="stable")
    return ordered.groupby(partition, sort=False).cumcount().reindex(frame.index) == 0


def _join(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Inner join on keys, every column of each side kept with its suffix (_l, _r); a NULL key
    never equals anything, as in SQL."""
    left, right = left.dropna(subset=keys), right.dropna(subset=keys)
    return left.add_suffix("_l").merge(right.add_suffix("_r"),
                                       left_on=[f"{k}_l" for k in keys],
                                       right_on=[f"{k}_r" for k in keys])


def _exact(left: pd.DataFrame, right: pd.DataFrame, rule: dict) -> pd.DataFrame:
    """Keys and amount equal; the n-th identical row (by event time, key) with the n-th."""
    keys = [*rule["keys"], "amount_minor"]

    def numbered(rows):
        rows = rows.sort_values(["event_at", "transaction_key"], kind="stable")
        return rows.assign(occurrence=rows.groupby(keys, dropna=False).cumcount())

    pairs = _join(numbered(left), numbered(right), [*keys, "occurrence"])
    return pairs[_days_ok(pairs, rule)]


def _tolerance(left: pd.DataFrame, right: pd.DataFrame, rule: dict) -> pd.DataFrame:
    """Keys equal, amount and time within the rule; mutual nearest candidates pair."""
    pairs = _join(left, right, rule["keys"])
    difference = pairs["amount_minor_r"] - pairs["amount_minor_l"]
    # amounts are positive minor units: // is the integer division SQL does
    allowed = np.maximum(rule.get("amount_tolerance_minor", 0),
                         pairs["amount_minor_l"] * rule.get("amount_tolerance_ppm", 0)
                         // 1_000_000)
    apart = (pairs["event_at_l"] - pairs["event_at_r"]).abs()
    window = pd.Timedelta(minutes=rule.get("time_window_minutes", 1440))
    pairs = pairs.assign(difference=difference.abs(), apart=apart)
    pairs = pairs[(difference.abs() <= allowed) & (apart <= window) & _days_ok(pairs, rule)]
    left_best = _first_by(pairs, "transaction_key_l",
                          ["difference", "apart", "transaction_key_r"])
    right_best = _first_by(pairs, "transaction_key_r",
                           ["difference", "apart", "transaction_key_l"])
    return pairs[left_best & right_best]


def _group_sides(left, right, rule: dict) -> tuple:
    """A grouping rule's sides: whether the many are on the right, the many side and the one
    side (frames or relations), and the amount column each sums or compares."""
    many_right = rule.get("group_side", "left") == "right"
    many, one = (right, left) if many_right else (left, right)
    many_amount = rule.get("right_amount" if many_right else "left_amount",
                           "signed_amount_minor")
    one_amount = rule.get("left_amount" if many_right else "right_amount",
                          "signed_amount_minor")
    return many_right, many, one, many_amount, one_amount


def _group(left: pd.DataFrame, right: pd.DataFrame, rule: dict) -> pd.DataFrame:
    """Many rows sharing group_key whose amounts sum to one row on the other side (the
    earliest of that key there), within amount_tolerance_minor."""
    key = rule["group_key"]
    many_right, many, one, many_amount, one_amount = _group_sides(left, right, rule)
    many = many.dropna(subset=[key])
    groups = many.groupby(key, as_index=False).agg(group_amount=(many_amount, "sum"))
    targets = one.dropna(subset=[key])
    targets = targets[_first_by(targets, key, ["event_at", "transaction_key"])]
    paired = groups.merge(targets[[key, "transaction_key", one_amount]], on=key)
    difference = (paired[one_amount] - paired["group_amount"]).abs()
    paired = paired[difference <= rule.get("amount_tolerance_minor", 0)]
    pairs = many.merge(paired[[key, "transaction_key"]], on=key, suffixes=("_many", "_one"))
    ends = ("_one", "_many") if many_right else ("_many", "_one")
    return pd.DataFrame({"transaction_key_l": pairs["transaction_key" + ends[0]],
                         "transaction_key_r": pairs["transaction_key" + ends[1]]})


PASSES = {"exact": _exact, "tolerance": _tolerance, "group": _group}


def _identities(project: str, side: str, rows: pd.DataFrame) -> Counter:
    values = rows[["source", "reference", "direction", "amount_minor"]].astype(object)
    values = values.where(values.notna(), None)
    return Counter((project, side, s, r, d, int(a)) for s, r, d, a in values.itertuples(
        index=False))


def run_pandas(frames: dict[str, pd.DataFrame], rules: dict,
               settings: Settings) -> BaselineResult:
    """The waterfall of every project with pandas merges, on the day's parsed frames."""
    day = day_of(frames, settings)
    rows = standardise(day)
    rows = rows[(rows["business_date"] <= pd.Timestamp(day.business_date))
                & rows["status"].notna() & (rows["status"] != "failed")]
    result = BaselineResult()
    for project in rules["projects"]:
        name = project["project"]
        left, right = rows[_where(rows, project["left"])], rows[_where(rows, project["right"])]
        for rule in project["rules"]:
            pairs = PASSES[rule["kind"]](left, right, rule)
            result.pairs[(name, rule["rule"])] = len(pairs)
            left = left[~left["transaction_key"].isin(pairs["transaction_key_l"])]
            right = right[~right["transaction_key"].isin(pairs["transaction_key_r"])]
        result.open_rows += _identities(name, "left", left) + _identities(name, "right", right)
    return result


# ---- DuckDB: the same, as SQL ----------------------------------------------------------------

def _local_sql(text: str, tz: str) -> str:
    return f"(nullif(trim({text}), '')::timestamp at time zone '{tz}')"


# The business date as PostgreSQL prints a date: part of every key with an occurrence.
_DAY_SQL = "strftime(business_date, '%Y-%m-%d')"


def _key_sql(source: str, parts: list[str]) -> str:
    coalesced = "".join(f", coalesce(({part})::varchar, '')" for part in parts)
    return f"md5(concat_ws('|', '{source}'{coalesced}))"


def _numbered(table: str, partition: str) -> str:
    return (f"(select *, row_number() over (partition by {partition}"
            f", business_date order by file_order, record_no) as occurrence from {table})")


def _camt_booked_at(tz: str) -> str:
    return f"""case
        when regexp_matches(booking_date_text, '[+-]\\d\\d:?\\d\\d$|Z$')
            then booking_date_text::timestamptz
        when booking_date_text like '%T%'
            then {_local_sql("replace(booking_date_text, 'T', ' ')", tz)}
        else {_local_sql("booking_date || ' 00:00:00'", tz)}
    end"""


def _platform_sql(source: str, tz: str, fee_sign: str | None = None) -> str:
    """The staging model and its int_transactions part, for a platform or channel source."""
    if source == "platform_ledger":
        return f"""
        select {_key_sql(source, ['txn_id', _DAY_SQL, 'occurrence'])} as transaction_key,
               '{source}' as source, 'platform' as side,
               kind, trim(account) as account,
               case when kind = 'refund' then coalesce(nullif(trim(refund_no), ''), order_no)
                    else trim(merchant_order_no) end as reference, order_no as original_order_no,
               null::varchar as settlement_batch, trim(channel) as channel,
               trim(direction) as direction, amount_minor, 0::bigint as fee_minor,
               upper(trim(currency)) as currency, trim(status) as status,
               {_local_sql('created_at', tz)} as event_at, business_date
        from (select *,
                     case when trim(channel) = 'bank_transfer' then 'transfer'
                          when nullif(trim(type), '') is not null then trim(type)
                          when trim(direction) = 'debit' then 'refund' else 'payment' end
                         as kind,
                     coalesce(nullif(trim(original_order_no), ''), trim(merchant_order_no))
                         as order_no
              from {_numbered('raw_platform_ledger', 'txn_id')})"""
    if source == "platform_custody_flows":
        return f"""
        select {_key_sql(source, ['trim(serial_no)', _DAY_SQL, 'occurrence'])} as transaction_key,
               '{source}' as source, 'platform' as side, trim(flow_type) as kind,
               trim(bank_account) as account, trim(serial_no) as reference,
               null::varchar as original_order_no, null::varchar as settlement_batch,
               'custody' as channel,
               case when trim(flow_type) = 'recharge' then 'credit' else 'debit' end
                   as direction,
               amount_minor, 0::bigint as fee_minor, upper(trim(currency)) as currency,
               trim(status) as status, {_local_sql('created_at', tz)} as event_at,
               business_date
        from {_numbered('raw_platform_custody_flows', 'serial_no')}"""
    alipay = source == "alipay_bill"
    channel = "alipay" if alipay else "wechatpay"
    refund_no = "refund_no" if alipay else "channel_refund_no"
    # the merchant's refund number (stg_alipay__bill, stg_wechatpay__trade_bill: refund_no)
    merchant_refund_no = ("nullif(trim(refund_no), '')" if alipay else
                          "nullif(nullif(trim(refund_no), ''), '0')")
    amount = ("abs(amount_minor)" if alipay else
              "case when kind = 'refund' then refund_amount_minor"
              " else settlement_amount_minor end")
    key = _key_sql(source, ["trim(channel_txn_no)", f"trim({refund_no})", "kind",
                            _DAY_SQL, "occurrence"])
    return f"""
        select {key} as transaction_key, '{source}' as source, 'channel' as side, kind,
               trim(merchant_id) as account,
               case when kind = 'refund' then coalesce({merchant_refund_no},
                                                      nullif(trim(merchant_order_no), ''))
                    else nullif(trim(merchant_order_no), '') end as reference,
               nullif(trim(merchant_order_no), '') as original_order_no,
               '{channel.upper()}-SETTLE-' || strftime(business_date, '%Y%m%d')
                   as settlement_batch,
               '{channel}' as channel,
               case when kind = 'refund' then 'debit' else 'credit' end as direction,
               {amount} as amount_minor, {_fee_cost_sql(fee_sign)} as fee_minor,
               upper(trim(currency)) as currency, 'success' as status,
               {_local_sql('completed_at' if alipay else 'trade_time', tz)} as event_at,
               business_date
        from {_numbered(f'raw_{source}', f'channel_txn_no, {refund_no}, kind')}"""


def _bank_sql(source: str, tz: str) -> str:
    """A bank statement source's bookings (transaction_key, source, account, reference,
    direction, amount_minor, currency, event_at, business_date, counterparty,
    counterparty_account, remittance), as its staging model."""
    table = f"raw_{source}"
    if source == "bank_csv":
        return f"""
        select {_key_sql(source, ['trim(account)', 'trim(bank_serial)', _DAY_SQL, 'occurrence'])},
               '{source}', trim(account), nullif(trim(reference), ''),
               case when credit_minor - debit_minor >= 0 then 'credit' else 'debit' end,
               abs(credit_minor - debit_minor), upper(trim(currency)),
               {_local_sql("value_date || ' ' || coalesce(nullif(trim(booking_time), ''),"
                           " '00:00:00')", tz)},
               business_date, trim(counterparty), null::varchar, nullif(trim(reference), '')
        from {_numbered(table, 'account, bank_serial')}"""
    if source == "bank_camt053":
        key = _key_sql(source, ["trim(account)", "statement_id", "entry_seq", "bank_reference",
                                _DAY_SQL, "occurrence"])
        return f"""
        select {key}, '{source}', trim(account),
               coalesce(nullif(trim(end_to_end_id), ''), nullif(trim(remittance), '')),
               direction, amount_minor, upper(trim(currency)), {_camt_booked_at(tz)},
               business_date, nullif(trim(counterparty), ''),
               nullif(trim(counterparty_account), ''),
               coalesce(nullif(trim(remittance), ''), nullif(trim(additional_info), ''))
        from {_numbered(table, 'account, statement_id, entry_seq, bank_reference')}"""
    if source == "bank_mt940":
        key = _key_sql(source, ["trim(account)", "statement_ref", "bank_reference",
                                "customer_reference", "amount_minor", _DAY_SQL, "occurrence"])
        partition = "account, statement_ref, bank_reference, customer_reference, amount_minor"
        return f"""
        select {key}, '{source}', trim(account), nullif(trim(customer_reference), ''),
               direction, amount_minor, upper(trim(currency)),
               {_local_sql("value_date || ' 00:00:00'", tz)}, business_date,
               nullif(trim(info), ''), null::varchar, nullif(trim(info), '')
        from {_numbered(table, partition)}"""
    key = _key_sql("bank_cn", [f"'{source}'", "trim(account)", "booking_date", "bank_serial",
                               "reference", "direction", "amount_minor", _DAY_SQL, "occurrence"])
    partition = "account, booking_date, bank_serial, reference, direction, amount_minor"
    return f"""
        select {key}, '{source}', nullif(trim(account), ''),
               coalesce(nullif(trim(reference), ''), nullif(trim(summary), '')),
               direction, amount_minor, upper(trim(currency)),
               {_local_sql("booking_date || ' ' || coalesce(nullif(trim(booking_time), ''),"
                           " '00:00:00')", tz)},
               business_date, nullif(trim(counterparty), ''),
               nullif(trim(counterparty_account), ''),
               nullif(concat_ws(' ', nullif(trim(summary), ''), nullif(trim(reference), '')), '')
        from {_numbered(table, partition)}"""


BANK_SOURCES = ("bank_csv", "bank_camt053", "bank_mt940", *CN_BANKS)
PLATFORM_SOURCES = ("platform_ledger", "platform_custody_flows", "alipay_bill",
                    "wechatpay_trade_bill")


def _transactions_sql(day: Day) -> str:
    """int_transactions (the columns matching needs) over the registered raw_<source> tables."""
    platform = [_platform_sql(s, day.timezone, day.fee_signs.get(s)) for s in PLATFORM_SOURCES
                if s in day.raw]
    bookings = [_bank_sql(s, day.timezone) for s in BANK_SOURCES if s in day.raw]
    name_key = ("upper(replace(replace(replace(b.counterparty, '（', '('), '）', ')'),"
                " ' ', ''))")
    bank = """
        select b.transaction_key, b.source, 'bank' as side,
               case when r.transaction_key is null then 'booking'
                    when r.bill_date is not null or exists (
                        select 1 from batches as c
                        where c.channel = r.channel and c.direction = 'credit'
                          and c.amount_minor = b.amount_minor and c.currency = b.currency
                          and b.business_date::date - c.business_date::date
                              between r.min_delay_days and r.max_delay_days)
                        then 'settlement'
                    else 'unidentified_settlement' end as kind,
               b.account, b.reference, null::varchar as original_order_no,
               case when r.bill_date is not null
                   then upper(r.channel) || '-SETTLE-' || strftime(r.bill_date, '%Y%m%d')
               end as settlement_batch,
               r.channel, b.direction, b.amount_minor, 0::bigint as fee_minor,
               b.currency, 'success' as status, b.event_at, b.business_date
        from bookings as b left join recognised as r using (transaction_key)"""
    recognised = f"""
        select b.transaction_key, s.channel, s.min_delay_days, s.max_delay_days,
               (select case when regexp_full_match(replace(c, '-', ''),
                           '\\d{{4}}(0[1-9]|1[0-2])(0[1-9]|[12]\\d|3[01])')
                       then try_strptime(replace(c, '-', ''), '%Y%m%d')::date end
                from (select regexp_extract(b.remittance, p.pattern, 1) as c, p.n
                      from payout_patterns as p
                      where p.account = s.account and p.channel = s.channel
                        and regexp_matches(b.remittance, p.pattern)
                      order by p.n limit 1)) as bill_date
        from bookings as b inner join payout_rules as s on s.account = b.account
        where b.direction = 'credit' and exists (
            select 1 from payout_payers as p
            where p.account = s.account and p.channel = s.channel
              and (contains({name_key}, p.name_key)
                   or p.payer_account = b.counterparty_account))
        qualify row_number() over (partition by b.transaction_key order by s.channel) = 1"""
    batches = """
        select md5(concat_ws('|', 'channel_batch', channel, account,
                             strftime(business_date::date, '%Y-%m-%d'), currency))
                   as transaction_key,
               'channel_batch' as source, 'channel' as side, 'settlement_batch' as kind,
               account, settlement_batch as reference, null::varchar as original_order_no,
               settlement_batch, channel,
               case when net >= 0 then 'credit' else 'debit' end as direction,
               abs(net)::bigint as amount_minor, 0::bigint as fee_minor, currency,
               'success' as status, event_at, business_date
        from (select channel, account, business_date, currency,
                     min(settlement_batch) as settlement_batch,
                     sum(case when direction = 'credit' then amount_minor else -amount_minor end
                         - fee_minor) as net, max(event_at) as event_at
              from platform_rows where side = 'channel' group by all)"""
    columns = ("transaction_key, source, account, reference, direction, amount_minor, currency,"
               " event_at, business_date, counterparty, counterparty_account, remittance")
    empty = (f"select {', '.join(f'null::varchar as {c}' for c in columns.split(', '))}"
             " where false")
    return f"""
        with platform_rows as ({' union all '.join(platform)}),
        batches as ({batches}),
        bookings ({columns}) as ({' union all '.join(bookings) if bookings else empty}),
        recognised as ({recognised}),
        unioned as (
            select * from platform_rows
            union all {bank}
            union all select * from batches
        )
        select unioned.* replace (business_date::date as business_date),
               case when direction = 'credit' then amount_minor else -amount_minor end
                   as signed_amount_minor,
               case when direction = 'credit' then amount_minor else -amount_minor end
                   - fee_minor as net_amount_minor,
               accounts.role as account_role
        from unioned left join bank_accounts as accounts using (account)"""


def _days_ok_sql(rule: dict) -> str:
    bounds = []
    if rule.get("min_days_apart") is not None:
        bounds.append(f"abs(l.business_date - r.business_date) >= {int(rule['min_days_apart'])}")
    if rule.get("max_days_apart") is not None:
        bounds.append(f"abs(l.business_date - r.business_date) <= {int(rule['max_days_apart'])}")
    return " and ".join(bounds) or "true"


def _pass_sql(rule: dict, left: str, right: str) -> str:
    """One pass of a rule over the rows still open: (left_key, right_key) pairs. The same
    SQL as the dbt macro recon_pass, times compared in whole microseconds."""
    if rule["kind"] == "exact":
        partition = ", ".join([*rule["keys"], "amount_minor"])
        on = " and ".join(f"l.{k} = r.{k}" for k in [*rule["keys"], "amount_minor"])
        number = (f"row_number() over (partition by {partition}"
                  " order by event_at, transaction_key) as occurrence")
        return f"""
        with l as (select *, {number} from {left}), r as (select *, {number} from {right})
        select l.transaction_key as left_key, r.transaction_key as right_key
        from l inner join r on {on} and l.occurrence = r.occurrence
        where {_days_ok_sql(rule)}"""
    if rule["kind"] == "tolerance":
        on = " and ".join(f"l.{k} = r.{k}" for k in rule["keys"])
        tolerance = rule.get("amount_tolerance_minor", 0)
        ppm = rule.get("amount_tolerance_ppm", 0)
        window_us = rule.get("time_window_minutes", 1440) * 60_000_000
        return f"""
        with candidates as (
            select l.transaction_key as left_key, r.transaction_key as right_key,
                   abs(r.amount_minor - l.amount_minor) as difference,
                   abs(epoch_us(l.event_at) - epoch_us(r.event_at)) as apart_us
            from {left} as l inner join {right} as r on {on}
            where abs(r.amount_minor - l.amount_minor)
                    <= greatest({tolerance}, l.amount_minor * {ppm} // 1000000)
              and abs(epoch_us(l.event_at) - epoch_us(r.event_at)) <= {window_us}
              and {_days_ok_sql(rule)}
        ),
        ranked as (
            select *,
                row_number() over (partition by left_key
                    order by difference, apart_us, right_key) as left_rank,
                row_number() over (partition by right_key
                    order by difference, apart_us, left_key) as right_rank
            from candidates
        )
        select left_key, right_key from ranked where left_rank = 1 and right_rank = 1"""
    key = rule["group_key"]
    many_right, many, one, many_amount, one_amount = _group_sides(left, right, rule)
    keys = ("p.one_key as left_key, many.transaction_key as right_key" if many_right
            else "many.transaction_key as left_key, p.one_key as right_key")
    return f"""
        with groups as (
            select {key} as group_key, sum({many_amount}) as group_amount
            from {many} where {key} is not null group by {key}
        ),
        targets as (
            select *, row_number() over (partition by {key}
                order by event_at, transaction_key) as occurrence
            from {one} where {key} is not null
        ),
        paired as (
            select g.group_key, t.transaction_key as one_key
            from groups as g inner join targets as t
                on t.{key} = g.group_key and t.occurrence = 1
            where abs(t.{one_amount} - g.group_amount)
                <= {rule.get('amount_tolerance_minor', 0)}
        )
        select {keys} from paired as p inner join {many} as many on many.{key} = p.group_key"""


def duckdb_transactions(day: Day):
    """An in-process DuckDB connection holding the day's raw frames (raw_<source>) and their
    canonical rows (temp table `transactions`, int_transactions' columns that matching uses)."""
    import duckdb

    con = duckdb.connect()
    for source, raw in day.raw.items():
        con.register(f"raw_{source}", raw)
    roles = pd.DataFrame(list(day.bank_roles.items()), columns=["account", "role"])
    con.register("bank_accounts", roles)
    rules = list(day.settlements)
    con.register("payout_rules", pd.DataFrame(
        [(s.account, s.channel, s.min_delay_days, s.max_delay_days) for s in rules],
        columns=["account", "channel", "min_delay_days", "max_delay_days"]).astype(
        {"account": object, "channel": object, "min_delay_days": "int64",
         "max_delay_days": "int64"}))
    con.register("payout_payers", pd.DataFrame(
        [(s.account, s.channel, _name_key(n), None) for s in rules for n in s.payer_names]
        + [(s.account, s.channel, None, a) for s in rules for a in s.payer_accounts],
        columns=["account", "channel", "name_key", "payer_account"]).astype(object))
    con.register("payout_patterns", pd.DataFrame(
        [(s.account, s.channel, n, p) for s in rules
         for n, p in enumerate(s.remittance_patterns)],
        columns=["account", "channel", "n", "pattern"]).astype(
        {"account": object, "channel": object, "n": "int64", "pattern": object}))
    con.execute(f"create temp table transactions as {_transactions_sql(day)}")
    return con


def run_duckdb(frames: dict[str, pd.DataFrame], rules: dict,
               settings: Settings) -> BaselineResult:
    """The waterfall of every project as plain SQL in one in-process DuckDB connection, which
    also standardises the day's parsed frames (threads: DuckDB's default)."""
    day = day_of(frames, settings)
    result = BaselineResult()
    with duckdb_transactions(day) as con:
        con.execute(f"""create temp table scope as select * from transactions
                        where business_date <= '{day.business_date}'::date
                          and status <> 'failed'""")
        for project in rules["projects"]:
            name = project["project"]
            con.execute(f"create temp table {name}_left_0 as select * from scope"
                        f" where {project['left']}")
            con.execute(f"create temp table {name}_right_0 as select * from scope"
                        f" where {project['right']}")
            for i, rule in enumerate(project["rules"], start=1):
                left, right = f"{name}_left_{i - 1}", f"{name}_right_{i - 1}"
                con.execute(f"create temp table {name}_pass_{i} as"
                            f" {_pass_sql(rule, left, right)}")
                for side, rows, key in (("left", left, "left_key"),
                                        ("right", right, "right_key")):
                    con.execute(f"""create temp table {name}_{side}_{i} as
                        select open.* from {rows} as open anti join {name}_pass_{i} as p
                            on p.{key} = open.transaction_key""")
                result.pairs[(name, rule["rule"])] = con.execute(
                    f"select count(*) from {name}_pass_{i}").fetchone()[0]
            last = len(project["rules"])
            for side in ("left", "right"):
                for source, reference, direction, amount, count in con.execute(f"""
                        select source, reference, direction, amount_minor, count(*)
                        from {name}_{side}_{last} group by all""").fetchall():
                    result.open_rows[(name, side, source, reference, direction,
                                      int(amount))] += count
    return result


# ---- Tally's result, and the comparison ------------------------------------------------------

def tally_open_rows(conn, business_date: date) -> BaselineResult:
    """What Tally left unmatched on the day (suspense and breaks: on a single day most are
    suspense, which the baselines do not know about) and the pairs each rule made."""
    result = BaselineResult()
    for project, side, source, reference, direction, amount, count in conn.execute(
            "select project, recon_side, source, reference, direction, amount_minor, count(*)"
            " from marts.fct_outcomes where as_of_date = %s and outcome in ('suspense', 'break')"
            " group by 1, 2, 3, 4, 5, 6", (business_date,)).fetchall():
        result.open_rows[(project, side, source, reference, direction, int(amount))] = count
    for project, rule, count in conn.execute(
            "select project, rule, count(*) from marts.fct_matches where as_of_date = %s"
            " group by 1, 2", (business_date,)).fetchall():
        result.pairs[(project, rule)] = count
    return result


def compare(tally: BaselineResult, baseline: BaselineResult, examples: int = 5) -> dict:
    """Whether a baseline left exactly the rows Tally left unmatched, project by project, and
    made as many pairs with each rule; if not, a few of the rows that differ and why."""
    only_tally = tally.open_rows - baseline.open_rows
    only_baseline = baseline.open_rows - tally.open_rows
    rules = sorted(set(tally.pairs) | set(baseline.pairs))
    pairs = {f"{p}.{r}": {"tally": tally.pairs.get((p, r), 0),
                          "baseline": baseline.pairs.get((p, r), 0)} for p, r in rules}
    pair_differences = {rule: n for rule, n in pairs.items() if n["tally"] != n["baseline"]}
    projects = {}
    for project in sorted(tally.projects() | baseline.projects()):
        counts = [sum(n for row, n in rows.items() if row[0] == project)
                  for rows in (tally.open_rows, baseline.open_rows, only_tally, only_baseline)]
        projects[project] = {"open_tally": counts[0], "open_baseline": counts[1],
                             "same": counts[2] == counts[3] == 0 and not any(
                                 rule.startswith(f"{project}.") for rule in pair_differences)}
    same = not only_tally and not only_baseline and not pair_differences
    reasons = [f"rule {rule}: Tally made {n['tally']} pairs, the baseline {n['baseline']}"
               for rule, n in pair_differences.items()]
    if only_tally:
        reasons.append(f"{only_tally.total()} rows Tally left open were matched by the baseline")
    if only_baseline:
        reasons.append(f"{only_baseline.total()} rows the baseline left open were matched by"
                       " Tally")
    return {
        "same": same,
        "open_rows": {"tally": tally.open_rows.total(), "baseline": baseline.open_rows.total()},
        "pairs": {"tally": sum(tally.pairs.values()), "baseline": sum(baseline.pairs.values())},
        "projects": projects,
        "pair_differences": pair_differences,
        "only_in_tally": [dict(zip(IDENTITY, row, strict=True))
                          for row in sorted(only_tally, key=str)[:examples]],
        "only_in_baseline": [dict(zip(IDENTITY, row, strict=True))
                             for row in sorted(only_baseline, key=str)[:examples]],
        "reason": "; ".join(reasons) or None,
    }


# ---- time and memory -------------------------------------------------------------------------

def _timed(fn, args):
    started = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - started
    return result, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(fn, *args) -> tuple[object, float, float]:
    """Run fn(*args) in a fresh (spawned) process: (result, seconds of the call, peak resident
    MiB of that process). The peak includes the interpreter, the libraries and the arguments
    it was handed; the seconds do not include starting it or handing the arguments over."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_timed, (fn, args))


def _holds(frames: dict[str, pd.DataFrame]) -> int:
    """Nothing: what a child process that only receives the parsed frames weighs."""
    return len(frames)


def run_baselines(settings: Settings, generated_day_files: dict[str, Path],
                  business_date: date, conn, tally_seconds: dict[str, float] | None = None
                  ) -> dict:
    """Both baselines on a generated day's files, after Tally's dbt build for that day: their
    seconds and peak memory (each in its own process; `inputs_rss_mib` is what such a process
    weighs holding only the parsed frames it is handed), whether they found exactly what Tally
    found, and, given Tally's seconds by stage (e.g. {"matching": s, "end_to_end": s}), the
    ratios (baseline seconds / Tally's).
    The baselines know one day only: compare them on a warehouse where this is the first day
    (no suspense carried from earlier days), as the benchmark's is."""
    frames = read_day(generated_day_files, settings)
    found = {d.date() for frame in frames.values() for d in frame["business_date"].unique()}
    if found != {business_date}:
        raise ValueError(f"the files are of {sorted(found)}, not {business_date}")
    rules = recon.load(settings)
    tally = tally_open_rows(conn, business_date)
    _, _, inputs_mib = measure(_holds, frames)
    report = {}
    for name, fn in (("pandas", run_pandas), ("duckdb", run_duckdb)):
        result, seconds, peak_mib = measure(fn, frames, rules, settings)
        comparison = compare(tally, result)
        report[name] = {
            "seconds": round(seconds, 3), "peak_rss_mib": round(peak_mib),
            "inputs_rss_mib": round(inputs_mib),
            "same_breaks": comparison["same"], "open_rows": comparison["open_rows"],
            "pairs": comparison["pairs"],
            "differences": None if comparison["same"] else comparison,
        }
        for stage, tally_stage_seconds in (tally_seconds or {}).items():
            report[name][f"ratio_to_tally_{stage}"] = round(seconds / tally_stage_seconds, 3)
    return report
