"""
### Tally re-run: reconcile dates again, in order

Each date's suspense carries into the next, so dates are reconciled in order, one task
running them one after another. Two ways in:

- **a late file or a changed date** (`from_date` only, triggered by `tally_daily`): reconcile
  `from_date`, then each following date that was reconciled before, for as long as the dates
  come out different from before; the first unchanged date ends it.
- **a backfill** (`from_date` and `to_date`): reconcile every date of the range, in order.

A run stops at the first date that fails, so no date is built on a broken one. Each date is a
full run (land, load, dbt build, gate, publish unless `dry_run`) recorded in tally.runs.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

from airflow.sdk import Param, dag, task

from tally import config

SETTINGS = config.load()
# dbt's profiles.yml reads the warehouse settings from these; they are never written to disk.
os.environ.update(SETTINGS.dbt_env())


@dag(
    dag_id="tally_rerun",
    doc_md=__doc__,
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["tally", "reconciliation", "backfill"],
    default_args={"owner": "finance-data", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "from_date": Param(type="string", format="date",
                           description="First business date to reconcile (YYYY-MM-DD)."),
        "to_date": Param(None, type=["null", "string"], format="date",
                         description="Last date of a backfill; empty: go on while dates "
                                     "change."),
        "dry_run": Param(False, type="boolean", description="Publish nothing."),
    },
)
def tally_rerun():
    @task
    def reconcile_in_order(params=None, run_id=None) -> list[dict]:
        from tally import pipeline

        last = params.get("to_date")
        return pipeline.run_in_order(
            SETTINGS, date.fromisoformat(params["from_date"]),
            date.fromisoformat(last) if last else None,
            dry_run=params["dry_run"], run_prefix=run_id)

    reconcile_in_order()


tally_rerun()
