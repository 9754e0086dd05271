-- Per business date and side: how many rows and how much money ended in each outcome.
select
    business_date,
    project,
    side,
    outcome,
    currency,
    count(*) as row_count,
    sum(amount_minor) as amount_minor
from {{ ref('fct_reconciliation_outcomes') }}
group by business_date, project, side, outcome, currency
