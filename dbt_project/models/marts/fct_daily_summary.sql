-- Per business date and project: how many rows and how much money ended in each outcome, and
-- the match rate (matched rows / all open rows).
with outcomes as (
    select * from {{ ref('fct_outcomes') }}
)

select
    as_of_date,
    project,
    currency,
    count(*) as row_count,
    count(*) filter (where outcome = 'matched') as matched_count,
    count(*) filter (where outcome = 'suspense') as suspense_count,
    count(*) filter (where outcome = 'break') as break_count,
    coalesce(sum(amount_minor) filter (where outcome = 'matched'), 0) as matched_amount_minor,
    coalesce(sum(amount_minor) filter (where outcome = 'suspense'), 0) as suspense_amount_minor,
    coalesce(sum(amount_minor) filter (where outcome = 'break'), 0) as break_amount_minor,
    round(count(*) filter (where outcome = 'matched') * 1.0 / count(*), 6) as match_rate
from outcomes
group by as_of_date, project, currency
