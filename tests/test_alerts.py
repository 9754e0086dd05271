"""Alerts reach a local webhook and a local SMTP server: gate failures, breaks above a limit and
sources missing at their cut-off, read from the real warehouse."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from tally import gate, pipeline, transform
from tally.publish import alerts
from tests.conftest import reset
from tests.receivers import SmtpReceiver, WebhookReceiver
from tests.test_transform import DAY, load_generated


@pytest.fixture(scope="module")
def built(settings):
    reset(settings)
    load_generated(settings, scale=150, seed=5)
    transform.build(settings, DAY)
    return settings


@pytest.fixture
def receivers():
    with WebhookReceiver() as hook, SmtpReceiver(user="alerts", password="s3cret") as smtp:
        config = alerts.AlertSettings(
            webhook_url=hook.url, smtp_host="127.0.0.1", smtp_port=smtp.port,
            smtp_user="alerts", smtp_password="s3cret", mail_from="tally@example.org",
            mail_to=("finance@example.org", "ops@example.org"), timeout=5)
        yield config, hook, smtp


def mail_text(received):
    return received["message"].get_body(("plain",)).get_content()


def test_an_event_goes_to_the_webhook_and_by_mail(receivers):
    config, hook, smtp = receivers
    event = alerts.Event("source_missing", DAY, "缺少对账单 bank_csv", "bank_csv: no file",
                         {"missing": ["bank_csv"]})
    assert alerts.notify(config, event) == ["webhook", "email"]
    [post] = hook.posts
    assert post["json"] == {"kind": "source_missing", "business_date": "2026-11-20",
                            "title": "缺少对账单 bank_csv", "text": "bank_csv: no file",
                            "details": {"missing": ["bank_csv"]}}
    assert post["headers"]["Content-Type"].startswith("application/json")
    [mail] = smtp.messages
    assert mail["login"] == "alerts" and mail["from"] == "tally@example.org"
    assert mail["to"] == ["finance@example.org", "ops@example.org"]
    assert mail["message"]["Subject"] == "[Tally] 缺少对账单 bank_csv"
    assert "bank_csv: no file" in mail_text(mail)


def test_a_failing_channel_does_not_stop_the_other_and_is_reported(receivers):
    config, _, smtp = receivers
    with WebhookReceiver(status=500) as broken:
        event = alerts.Event("gate_failed", DAY, "Gate failed", "summary")
        with pytest.raises(alerts.AlertNotDelivered, match="webhook: HTTP Error 500"):
            alerts.notify(replace(config, webhook_url=broken.url), event)
        assert len(broken.posts) == 1
    assert len(smtp.messages) == 1
    with pytest.raises(alerts.AlertNotDelivered, match="email: .*535"):
        alerts.notify(replace(config, smtp_password="wrong"), event)


def test_settings_from_tally_alert_variables():
    config = alerts.AlertSettings.from_env({
        "TALLY_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "TALLY_ALERT_SMTP_HOST": "mail.internal", "TALLY_ALERT_SMTP_PORT": "587",
        "TALLY_ALERT_SMTP_STARTTLS": "true", "TALLY_ALERT_MAIL_TO": "a@x.org, b@x.org",
        "TALLY_ALERT_MAX_BREAKS": "platform_vs_bank=5,*=50",
        "TALLY_ALERT_MAX_BREAK_AMOUNT_MINOR": "1000000",
        "TALLY_ALERT_EXPECTED_SOURCES": "platform_ledger,bank_csv"})
    assert (config.smtp_port, config.smtp_starttls, config.mail_to) == (
        587, True, ("a@x.org", "b@x.org"))
    assert alerts.limit_for(config.max_breaks, "platform_vs_bank") == 5
    assert alerts.limit_for(config.max_breaks, "platform_vs_alipay") == 50
    assert alerts.limit_for(config.max_break_amount_minor, "any") == 1_000_000
    assert config.expected_sources == ("platform_ledger", "bank_csv")
    assert alerts.AlertSettings.from_env({}).max_breaks is None


def test_a_failed_gate_alerts_with_its_readable_summary(built, receivers):
    config, hook, smtp = receivers
    empty_day = DAY + timedelta(days=1)  # nothing landed: the gate must fail
    pipeline.start_run(built, "run-alert", empty_day)
    with pytest.raises(gate.GateFailed) as failed:
        pipeline.check_gate(built, "run-alert", empty_day)
    summary = alerts.gate_summary(built, "run-alert")
    assert summary == str(failed.value)
    alerts.on_gate_failed(config, empty_day, str(failed.value), "run-alert")
    [post] = hook.posts
    assert post["json"]["kind"] == "gate_failed"
    assert "The business date has transactions" in post["json"]["text"]
    assert post["json"]["details"] == {"run_id": "run-alert"}
    assert "The business date has transactions" in mail_text(smtp.messages[0])


def test_breaks_above_a_limit_alert_per_project(built, conn, receivers):
    config, hook, smtp = receivers
    counts = dict(conn.execute(
        "select project, sum(break_count)::bigint from reporting.daily_summary"
        " where business_date = %s group by project", (DAY,)).fetchall())
    project = max(counts, key=counts.get)
    assert counts[project] > 0

    # At the limit: no alert. One below it: an alert naming that project only.
    at_limit = replace(config, max_breaks={project: counts[project], "*": 10**6})
    assert alerts.check_breaks(built, at_limit, DAY) is None
    event = alerts.check_breaks(built, replace(at_limit, max_breaks={
        project: counts[project] - 1, "*": 10**6}), DAY)
    assert event.details["over"] == [{"project": project, "breaks": counts[project],
                                      "max_breaks": counts[project] - 1}]
    largest = event.details["largest_breaks"]
    assert largest and {b["project"] for b in largest} == {project}
    assert all(b["account"] is None or b["account"].startswith("****") for b in largest)

    amount, currency = conn.execute(
        "select sum(break_amount_minor)::bigint, min(currency) from reporting.daily_summary"
        " where business_date = %s and project = %s", (DAY, project)).fetchone()
    event = alerts.check_breaks(built, replace(config, max_break_amount_minor=amount - 1), DAY)
    over = [o for o in event.details["over"] if o["project"] == project]
    assert over == [{"project": project, "currency": currency, "break_amount_minor": amount,
                     "max_break_amount_minor": amount - 1,
                     "break_amount": f"{amount // 100}.{amount % 100:02d}"}]
    assert [p["json"]["kind"] for p in hook.posts] == ["breaks_above_limit"] * 2
    assert len(smtp.messages) == 2 and project in smtp.messages[1]["message"]["Subject"]


def test_a_source_missing_at_its_cut_off_is_named(built, conn, receivers):
    config, hook, smtp = receivers
    landed = sorted(s for (s,) in conn.execute(
        "select distinct source from tally.files where business_date = %s", (DAY,)))
    assert "platform_ledger" in landed and "wechatpay_fund_bill" not in landed
    config = replace(config, expected_sources=("platform_ledger", "bank_csv"))
    assert alerts.check_missing_sources(built, config, DAY) is None
    assert hook.posts == [] and smtp.messages == []

    event = alerts.check_missing_sources(
        built, config, DAY, expected=["platform_ledger", "wechatpay_fund_bill"])
    assert event.details["missing"] == ["wechatpay_fund_bill"]
    assert hook.posts[0]["json"]["text"] == "wechatpay_fund_bill: no file"
    # A day on which nothing arrived misses every expected source.
    event = alerts.check_missing_sources(built, config, date(2026, 11, 25))
    assert event.details["missing"] == ["platform_ledger", "bank_csv"]
    assert len(smtp.messages) == 2
