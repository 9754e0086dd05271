"""Late files: a file delivered after its business day ran, and what re-running the day does."""

import json
from datetime import date
from pathlib import Path

from tally import pipeline, transform
from tally.devtools import generator

D1 = date(2026, 11, 20)

def test_a_late_file_clears_suspense_when_its_day_is_run_again(clean, conn):
    """The WeChat Pay bill of D1 arrives after D1 ran: the orders wait in suspense; once the
    file lands, re-running D1 matches them (docs/reconciliation.md, late files)."""
    settings = clean
    generated = generator.generate_day(D1, 400, settings.inbox_dir, seed=5,
                                      late=("wechatpay_trade_bill",))
    (late,) = [d for d in json.loads(generated.labels.read_text())["discrepancies"]
               if d["type"] == "late_file"]
    pipeline.land_day(settings, D1)
    pipeline.load_day(settings, D1)
    transform.build(settings, D1)
    query = ("select outcome, count(*) from marts.fct_outcomes where as_of_date = %s"
             " and project = 'platform_vs_wechatpay' group by outcome")
    assert dict(conn.execute(query, (D1,)).fetchall()) == {
        "suspense": conn.execute(
            "select count(*) from intermediate.int_recon__scope where as_of_date = %s"
            " and project = 'platform_vs_wechatpay'", (D1,)).fetchone()[0]}

    path = Path(late["file"])
    target = settings.inbox_dir / "wechatpay_trade_bill" / D1.isoformat() / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    pipeline.land_day(settings, D1)
    pipeline.load_day(settings, D1)
    transform.build(settings, D1)
    after = dict(conn.execute(query, (D1,)).fetchall())
    assert after["matched"] > 10 * after.get("break", 0) > 0
