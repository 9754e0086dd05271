"""Alerts to a webhook (HTTP POST of JSON) and by email (SMTP): a failed gate, breaks above a
limit, a source missing at its cut-off.

The DAG's callbacks call the plain functions at the bottom; settings are an AlertSettings,
built by the caller (`AlertSettings.from_env(settings.env)` reads the TALLY_ALERT_* variables
from what config.py has read). Standard library only: urllib and smtplib.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from urllib.parse import urlsplit

from tally import money
from tally.config import Settings
from tally.services import postgres

# A limit: one number for every project, or per project ({"*": default, project: limit}).
Limit = int | dict[str, int] | None


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    mail_from: str = "tally@localhost"
    mail_to: tuple[str, ...] = ()
    max_breaks: Limit = None
    max_break_amount_minor: Limit = None
    expected_sources: tuple[str, ...] = ()
    smtp_starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlertSettings:
        """From TALLY_ALERT_* variables (pass Settings.env: config.py reads the environment)."""
        def get(name: str) -> str | None:
            return env.get(f"TALLY_ALERT_{name}") or None

        return cls(
            webhook_url=get("WEBHOOK_URL"),
            smtp_host=get("SMTP_HOST"),
            smtp_port=int(get("SMTP_PORT") or 25),
            smtp_user=get("SMTP_USER"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_starttls=(get("SMTP_STARTTLS") or "").lower() in ("1", "true", "yes"),
            mail_from=get("MAIL_FROM") or "tally@localhost",
            mail_to=_names(get("MAIL_TO")),
            max_breaks=parse_limit(get("MAX_BREAKS")),
            max_break_amount_minor=parse_limit(get("MAX_BREAK_AMOUNT_MINOR")),
            expected_sources=_names(get("EXPECTED_SOURCES")),
        )


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def parse_limit(text: str | None) -> Limit:
    """"500" (every project) or "platform_vs_bank=500,*=1000" (per project, * the default)."""
    if not text:
        return None
    if "=" not in text:
        return int(text)
    return {k.strip(): int(v) for k, v in (part.split("=", 1) for part in _names(text))}


def limit_for(limit: Limit, project: str) -> int | None:
    if isinstance(limit, dict):
        return limit.get(project, limit.get("*"))
    return limit


@dataclass
class Event:
    kind: str  # gate_failed | breaks_above_limit | source_missing | projects_incomplete
    business_date: date
    title: str
    text: str
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"kind": self.kind, "business_date": self.business_date.isoformat(),
                "title": self.title, "text": self.text, "details": self.details}


class AlertNotDelivered(RuntimeError):
    pass


def send_webhook(config: AlertSettings, event: Event) -> None:
    if urlsplit(config.webhook_url).scheme not in ("http", "https"):
        raise ValueError(f"webhook URL must be http(s): {config.webhook_url!r}")
    body = json.dumps(event.as_json(), ensure_ascii=False, default=str).encode("utf-8")
    request = urllib.request.Request(
        config.webhook_url, data=body, method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "tally"})
    with urllib.request.urlopen(request, timeout=config.timeout) as response:  # noqa: S310
        response.read()  # HTTP errors raise HTTPError


def send_email(config: AlertSettings, event: Event) -> None:
    message = EmailMessage()
    message["Subject"] = f"[Tally] {event.title}"
    message["From"] = config.mail_from
    message["To"] = ", ".join(config.mail_to)
    details = json.dumps(event.details, indent=2, ensure_ascii=False, default=str)
    message.set_content(f"{event.text}\n\n{details}\n")
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
        if config.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.smtp_user:
            smtp.login(config.smtp_user, config.smtp_password or "")
        smtp.send_message(message)


def notify(config: AlertSettings, event: Event) -> list[str]:
    """Send the event to every configured channel; returns those that took it. Every channel
    is tried; if any failed, AlertNotDelivered names them after the others were sent."""
    channels = []
    if config.webhook_url:
        channels.append(("webhook", send_webhook))
    if config.smtp_host and config.mail_to:
        channels.append(("email", send_email))
    delivered, failed = [], []
    for name, send in channels:
        try:
            send(config, event)
            delivered.append(name)
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            failed.append(f"{name}: {exc}")
    if failed:
        raise AlertNotDelivered(f"alert {event.kind!r} not delivered by " + "; ".join(failed))
    return delivered


# What the DAG calls --------------------------------------------------------------------------

def gate_summary(settings: Settings, run_id: str) -> str:
    """The gate's verdict recorded for a run (tally.runs), as readable text."""
    with postgres.connect(settings, autocommit=True) as conn:
        row = conn.execute("select business_date, gate_summary from tally.runs"
                           " where run_id = %s", (run_id,)).fetchone()
    if not row or not row[1]:
        return f"run {run_id}: no gate verdict recorded"
    verdict = row[1]
    failures = verdict.get("failures", [])
    head = (f"gate {'passed' if verdict.get('passed') else 'FAILED'} for {row[0]}: "
            f"{verdict.get('evaluated', 0) - len(failures)}/{verdict.get('evaluated', 0)}"
            " expectations hold")
    return "\n".join([head, *(f"  - {f}" for f in failures)])


def on_gate_failed(config: AlertSettings, business_date: date, summary: str,
                   run_id: str | None = None) -> Event:
    """The gate task's failure callback: the summary names the invariants that broke and
    their first offending rows (GateFailed's message, or gate_summary(settings, run_id))."""
    event = Event("gate_failed", business_date,
                  f"Gate failed for {business_date}: nothing was published",
                  summary, {"run_id": run_id})
    notify(config, event)
    return event


def check_breaks(settings: Settings, config: AlertSettings, business_date: date
                 ) -> Event | None:
    """Alert when a project's open breaks exceed the count limit, or their amount the amount
    limit (per currency, in minor units). Reads the reporting views."""
    with postgres.connect(settings, autocommit=True) as conn:
        counts = conn.execute(
            "select project, sum(break_count)::bigint from reporting.daily_summary"
            " where business_date = %s group by project order by project",
            (business_date,)).fetchall()
        amounts = conn.execute(
            "select project, currency, sum(break_amount_minor)::bigint from"
            " reporting.daily_summary where business_date = %s group by project, currency"
            " order by project, currency", (business_date,)).fetchall()
        over = []
        for project, count in counts:
            limit = limit_for(config.max_breaks, project)
            if limit is not None and count > limit:
                over.append({"project": project, "breaks": count, "max_breaks": limit})
        for project, currency, amount in amounts:
            limit = limit_for(config.max_break_amount_minor, project)
            if limit is not None and amount > limit:
                over.append({"project": project, "currency": currency,
                             "break_amount_minor": amount, "max_break_amount_minor": limit,
                             "break_amount": money.format_minor(amount, currency)})
        if not over:
            return None
        projects = sorted({o["project"] for o in over})
        largest = conn.execute(
            "select project, break_type, reference, account, amount_minor, currency from"
            " reporting.breaks where business_date = %s and outcome = 'break'"
            " and project = any(%s) order by amount_minor desc limit 5",
            (business_date, projects)).fetchall()
    lines = [f"{o['project']}: {o['breaks']} open breaks (limit {o['max_breaks']})"
             if "breaks" in o else
             f"{o['project']}: breaks of {o['break_amount']} {o['currency']}"
             f" (limit {money.format_minor(o['max_break_amount_minor'], o['currency'])})"
             for o in over]
    event = Event("breaks_above_limit", business_date,
                  f"Breaks above the limit on {business_date}: {', '.join(projects)}",
                  "\n".join(lines), {
                      "over": over,
                      "largest_breaks": [
                          {"project": p, "break_type": t, "reference": r, "account": a,
                           "amount": money.format_minor(m, c), "currency": c}
                          for p, t, r, a, m, c in largest]})
    notify(config, event)
    return event


def check_missing_sources(settings: Settings, config: AlertSettings, business_date: date,
                          expected: list[str] | None = None) -> Event | None:
    """At a cut-off: alert for each expected source with no usable file for the date in
    tally.files (a source whose only files were quarantined counts as missing)."""
    expected = list(expected if expected is not None else config.expected_sources)
    with postgres.connect(settings, autocommit=True) as conn:
        files = conn.execute(
            "select source, status, count(*) from tally.files where business_date = %s"
            " group by source, status", (business_date,)).fetchall()
    arrived = {s for s, status, _ in files if status in ("landed", "loaded", "duplicate")}
    quarantined = {s: n for s, status, n in files if status == "quarantined"}
    missing = [s for s in expected if s not in arrived]
    if not missing:
        return None
    lines = [f"{s}: no file" + (f" ({quarantined[s]} quarantined)" if s in quarantined else "")
             for s in missing]
    event = Event("source_missing", business_date,
                  f"Missing at cut-off for {business_date}: {', '.join(missing)}",
                  "\n".join(lines), {"missing": missing, "expected": expected,
                                     "arrived": sorted(arrived),
                                     "quarantined": quarantined})
    notify(config, event)
    return event


def incomplete_projects(conn, business_date: date) -> dict[str, str]:
    """Projects reconciled on the date without a counterpart source: project -> the sources
    its rows are awaiting."""
    return dict(conn.execute(
        "select project, string_agg(distinct awaiting_sources, ', ') from"
        " reporting.daily_summary where business_date = %s and not complete"
        " group by project order by project", (business_date,)).fetchall())


def check_incomplete_projects(settings: Settings, config: AlertSettings, business_date: date
                              ) -> Event | None:
    """After a run: tell a person which projects could not be reconciled in full because a
    counterpart source was not received (their rows wait in suspense; no break is raised)."""
    with postgres.connect(settings, autocommit=True) as conn:
        incomplete = incomplete_projects(conn, business_date)
    if not incomplete:
        return None
    lines = [f"{project}: awaiting {sources}" for project, sources in incomplete.items()]
    event = Event("projects_incomplete", business_date,
                  f"Incomplete on {business_date}: {', '.join(incomplete)}", "\n".join(lines),
                  {"incomplete": incomplete})
    notify(config, event)
    return event
