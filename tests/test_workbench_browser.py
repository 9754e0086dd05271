"""Working breaks in a real chromium against `tally web` on a reconciled generated day: sign in,
filter the queue, an operator proposes a manual match and cannot approve it, an approver
approves, the day runs again and the match holds; above the threshold a second approver is
needed; the inbox shows what happened. The tests run in order and share the day; each keeps a
screenshot (tests/browser.py)."""

from __future__ import annotations

from datetime import date

import pytest

from tally import pipeline
from tally.devtools import generator
from tally.services import postgres, web
from tally.workbench import queue, users
from tests.browser import keep_screenshot

DAY = date(2026, 10, 20)
PEOPLE = {"olga": "operator", "arun": "approver", "bea": "approver"}


@pytest.fixture(scope="module")
def workbench(request):
    from tests.conftest import reset

    settings = reset(request.getfixturevalue("settings"))
    generator.generate_day(DAY, 200, settings.inbox_dir, seed=23)
    pipeline.run_day(settings, DAY)
    with postgres.connect(settings, autocommit=True) as conn:
        passwords = {name: users.add(conn, name, role) for name, role in PEOPLE.items()}
    address = web.start(settings)
    state = {"settings": settings, "address": address, "passwords": passwords}
    yield state
    web.stop(settings)


def sign_in(page, workbench, name: str) -> None:
    # A decision asks for confirmation (it cannot be taken back): the person confirms.
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(workbench["address"] + "login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", workbench["passwords"][name])
    submit(page, "button[type=submit]")
    page.wait_for_url("**/queue**")


def submit(page, button) -> None:
    """Press a form's button and wait for the page the server answers with."""
    with page.expect_navigation():
        (page.locator(button) if isinstance(button, str) else button).click()


def amount_mismatch(conn) -> tuple[str, str, str]:
    """The first open amount difference of the day: its case and its two rows."""
    return conn.execute(
        "select break_key, left_key, right_key from marts.fct_breaks where as_of_date = %s"
        " and break_type = 'amount_mismatch' and needs_person order by break_key limit 1",
        (DAY,)).fetchone()


def test_sign_in_and_filter_the_queue(workbench, page, conn):
    label = conn.execute("select label_zh from reference.break_types"
                         " where break_type = 'amount_mismatch'").fetchone()[0]
    sign_in(page, workbench, "olga")  # olga reads Chinese
    everything = int(page.inner_text("#total"))
    page.fill("input[name=item_type]", "amount_mismatch")
    submit(page, "form.filters button[type=submit]")
    page.wait_for_url("**item_type=amount_mismatch**")
    shown = int(page.inner_text("#total"))
    keep_screenshot(page, "workbench_queue_filtered")
    assert 0 < shown < everything
    types = page.locator("#queue tbody tr td:nth-child(2)").all_inner_texts()
    assert len(types) == min(shown, queue.QueueFilter.page_size) and set(types) == {label}, types


def test_an_operator_proposes_a_manual_match_and_cannot_approve_it(workbench, page, conn):
    case_key, left, right = amount_mismatch(conn)
    sign_in(page, workbench, "olga")
    page.goto(workbench["address"] + f"cases/{case_key}")
    keep_screenshot(page, "workbench_case_detail")
    assert left in page.inner_text("body") and right in page.inner_text("body")
    page.select_option("select[name=action]", "manual_match")
    page.fill("input[name=left_keys]", left)
    page.fill("input[name=right_keys]", right)
    page.fill("textarea[name=reason]", "same order: the channel deducted its fee")
    submit(page, "form[action$='/propose'] button[type=submit]")
    proposal_id, status, proposer = conn.execute(
        "select proposal_id, status, proposer from workbench.proposals where case_key = %s",
        (case_key,)).fetchone()
    assert (status, proposer) == ("proposed", "olga")
    workbench["proposal"] = (proposal_id, case_key, left, right)
    # Not by hiding a button: the server refuses the approvals page and the approval itself.
    refused = page.goto(workbench["address"] + "approvals")
    assert refused.status == 403
    page.goto(workbench["address"] + "queue")
    csrf = page.get_attribute("input[name=csrf]", "value")  # her own session's token
    posted = page.request.post(workbench["address"] + f"proposals/{proposal_id}/approve",
                               form={"csrf": csrf, "reason": "looks fine to me"})
    assert posted.status == 403
    assert conn.execute("select status from workbench.proposals where proposal_id = %s",
                        (proposal_id,)).fetchone()[0] == "proposed"


def test_an_approver_approves_and_the_match_holds_when_the_day_runs_again(workbench, page,
                                                                          conn):
    proposal_id, case_key, left, right = workbench["proposal"]
    sign_in(page, workbench, "arun")
    page.goto(workbench["address"] + "approvals")
    card = page.locator(f"#proposal-{proposal_id}")
    assert "olga" in card.inner_text()
    keep_screenshot(page, "workbench_approval")
    card.locator("input[name=reason]").first.fill("fee confirmed on the channel's bill")
    submit(page, card.locator("form[action$='/approve'] button[type=submit]"))
    assert conn.execute("select status from workbench.proposals where proposal_id = %s",
                        (proposal_id,)).fetchone()[0] == "approved"
    pipeline.run_in_order(workbench["settings"], DAY)
    rows = conn.execute(
        "select transaction_key, outcome, rule, decision_id from marts.fct_outcomes"
        " where as_of_date = %s and transaction_key in (%s, %s)", (DAY, left, right)).fetchall()
    assert sorted(rows) == sorted([(left, "matched", "manual", proposal_id),
                                   (right, "matched", "manual", proposal_id)])
    # The queue no longer lists the difference: it is matched now.
    page.goto(workbench["address"] + "queue?item_type=amount_mismatch")
    assert page.locator(f"tr[data-case='{case_key}']").count() == 0


def test_above_the_threshold_a_second_approver_is_needed(workbench, browser, conn):
    case_key = conn.execute(
        "select break_key from marts.fct_breaks where as_of_date = %s and needs_person"
        " and break_type = 'missing_on_statement' order by break_key limit 1",
        (DAY,)).fetchone()[0]
    pages = {}
    for name in ("olga", "arun", "bea"):
        pages[name] = browser.new_context().new_page()
        sign_in(pages[name], workbench, name)
    olga = pages["olga"]
    olga.goto(workbench["address"] + f"cases/{case_key}")
    olga.select_option("select[name=action]", "adjustment")
    olga.fill("input[name=amount]", "25000.00")  # above 10,000.00: two approvers
    olga.fill("input[name=account]", "6222020200112233445")
    olga.fill("textarea[name=reason]", "booked by the bank to the wrong account")
    submit(olga, "form[action$='/propose'] button[type=submit]")
    proposal_id, needed, amount = conn.execute(
        "select proposal_id, approvals_needed, amount_minor from workbench.proposals"
        " where case_key = %s", (case_key,)).fetchone()
    assert (needed, amount) == (2, 2_500_000)

    def approve(name):
        approver = pages[name]
        approver.goto(workbench["address"] + "approvals")
        submit(approver, approver.locator(
            f"#proposal-{proposal_id} form[action$='/approve'] button"))
        return conn.execute("select status from workbench.proposals where proposal_id = %s",
                            (proposal_id,)).fetchone()[0]

    assert approve("arun") == "proposed"  # one approval is not enough
    keep_screenshot(pages["arun"], "workbench_waiting_for_a_second_approver")
    assert approve("bea") == "approved"
    for opened in pages.values():
        opened.context.close()


def test_the_inbox_shows_the_events(workbench, page):
    sign_in(page, workbench, "olga")
    unread = int(page.inner_text("#unread"))
    assert unread >= 2  # both of olga's proposals were approved
    page.goto(workbench["address"] + "inbox")
    keep_screenshot(page, "workbench_inbox")
    text = page.inner_text("table.grid")
    proposal_id = workbench["proposal"][0]
    assert f"#{proposal_id}" in text
    submit(page, "form[action$='/inbox/read'] button[type=submit]")
    assert page.locator("#unread").count() == 0
