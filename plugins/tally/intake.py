"""How a day's files arrive, in one place: the local file drop, an S3 file drop, and the
channels' APIs (include/pulls.yaml). Every file that arrives is landed the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import yaml

from tally import connectors, landing
from tally.config import Settings
from tally.connectors.inbox import LocalInbox, S3Inbox


@dataclass
class Intake:
    landed: list[landing.Landed] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)  # pulls to ask again later
    failed: list[str] = field(default_factory=list)  # pulls that failed for good, with reason


def load_pulls(settings: Settings) -> list[dict]:
    path = settings.include_dir / "pulls.yaml"
    if not path.exists():
        return []
    return (yaml.safe_load(path.read_text()) or {}).get("pulls") or []


def _fetchers(settings: Settings, pull: dict):
    """The fetch calls a configured pull makes for a day: [(label, fetch(day) -> Fetched)]."""
    kind, name = pull["connector"], pull["name"]
    options = {k: v for k, v in pull.items() if k not in ("name", "connector", "secret", "bills")}
    secret = settings.secret(pull["secret"])
    if kind == "alipay":
        from tally.connectors.alipay import AlipayConnector

        return [(name, AlipayConnector(sign_key=secret, **options).fetch)]
    if kind == "wechatpay":
        from tally.connectors.wechatpay import WeChatPayConnector

        client = WeChatPayConnector(sign_key=secret, **options)
        bills = pull.get("bills", ["trade"])
        calls = {"trade": client.trade_bill, "fund": client.fund_flow_bill}
        return [(f"{name}:{bill}", calls[bill]) for bill in bills]
    if kind == "bank_api":
        from tally.connectors.bank_api import BankStatementConnector

        return [(name, BankStatementConnector(token=secret, **options).fetch)]
    raise ValueError(f"pull {name!r}: unknown connector {kind!r}")


def pull_sources(pull: dict) -> set[str]:
    """The sources a configured pull delivers."""
    kind = pull["connector"]
    if kind == "alipay":
        return {"alipay_bill"}
    if kind == "wechatpay":
        names = {"trade": "wechatpay_trade_bill", "fund": "wechatpay_fund_bill"}
        return {names[bill] for bill in pull.get("bills", ["trade"])}
    return {pull.get("source", "bank_camt053")}


def collect_day(settings: Settings, conn, s3, configs: dict, business_date: date,
                pulls: bool = True) -> Intake:
    """Land every file of the day for the sources in `configs`: file drops, then (if `pulls`)
    the channel and bank APIs that deliver those sources."""
    result = Intake()

    def land(fetched: connectors.Fetched) -> None:
        result.landed.append(landing.land_bytes(
            settings, conn, s3, configs[fetched.source], business_date, fetched.data,
            fetched.file_name))

    drops = [LocalInbox(settings.inbox_dir)]
    if settings.inbox_bucket:
        drops.append(S3Inbox(s3, settings.inbox_bucket, settings.inbox_prefix))
    for drop in drops:
        for source in configs:
            drop.collect(source, business_date, land)

    for pull in load_pulls(settings) if pulls else []:
        if not pull_sources(pull) & set(configs):
            continue
        for label, fetch in _fetchers(settings, pull):
            try:
                land(fetch(business_date))
            except connectors.NotReady as exc:
                result.not_ready.append(f"{label}: {exc}")
            except connectors.FetchFailed as exc:
                result.failed.append(f"{label}: {exc}")
    return result

