"""When each feed's files are expected: include/schedule.yaml, read into plain objects.

A feed is a group of sources that arrive the same way at about the same time (the platform's
files, the bank statements, one channel's bills). The DAGs are generated from this file, and
the set of every feed's sources is what a business date needs before it is reconciled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import yaml

from tally.config import Settings


@dataclass(frozen=True)
class Feed:
    name: str
    sources: tuple[str, ...]
    schedule: str  # cron, in the platform's time zone
    cutoff: timedelta  # how long after the scheduled start to keep waiting
    poke: timedelta
    max_poke: timedelta


def load(settings: Settings) -> list[Feed]:
    doc = yaml.safe_load((settings.include_dir / "schedule.yaml").read_text()) or {}
    poke = timedelta(minutes=float(doc.get("poke_minutes", 5)))
    max_poke = timedelta(minutes=float(doc.get("max_poke_minutes", 30)))
    feeds = []
    for name, spec in (doc.get("feeds") or {}).items():
        feeds.append(Feed(name=name, sources=tuple(spec["sources"]), schedule=spec["schedule"],
                          cutoff=timedelta(hours=float(spec["cutoff_hours"])),
                          poke=poke, max_poke=max_poke))
    _validate(feeds)
    return feeds


def expected_sources(settings: Settings) -> list[str]:
    """Every source a business date needs, in feed order."""
    return [source for feed in load(settings) for source in feed.sources]


def _validate(feeds: list[Feed]) -> None:
    seen: dict[str, str] = {}
    for feed in feeds:
        if not feed.sources:
            raise ValueError(f"schedule.yaml: feed {feed.name!r} lists no sources")
        for source in feed.sources:
            if source in seen:
                raise ValueError(f"schedule.yaml: source {source!r} is in feeds "
                                 f"{seen[source]!r} and {feed.name!r}")
            seen[source] = feed.name


def landed_asset(settings: Settings, source: str) -> tuple[str, str]:
    """(name, uri) of the asset that says a source's files for a business date are in the raw
    zone; the DAGs make Airflow assets of these, partitioned by business date."""
    return f"tally_landed_{source}", f"s3://{settings.s3.raw_bucket}/raw/{source}/"


def business_date_for(settings: Settings, chosen: str | None, partition_key: str | None,
                      logical_date: datetime | None) -> date:
    """The date a run is for: a manual `business_date`, else the run's partition key (the
    business date), else the day before the run's logical date in the platform's time zone."""
    if chosen or partition_key:
        return date.fromisoformat(chosen or partition_key)
    if logical_date is None:
        raise ValueError("a run with neither a business_date, a partition nor a logical date")
    return logical_date.astimezone(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
